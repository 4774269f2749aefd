"""A Dockerfile read as text (no Docker engine here): its stages and what a target inherits.

Enough of the format for the contract tests: line continuations, comments, ``ARG``
defaults, named stages (``FROM x AS name``) and stages built on an earlier one
(``FROM name``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple


class Instruction(NamedTuple):
    """One line of the file, continuations joined: ``RUN`` and what follows it."""

    keyword: str
    argument: str


@dataclass(frozen=True)
class Stage:
    """One ``FROM`` and the instructions up to the next."""

    name: str  # its AS name, else its index
    base: str  # the FROM image or stage, as written
    instructions: tuple[Instruction, ...]  # after the FROM


@dataclass(frozen=True)
class Dockerfile:
    args: dict[str, str]  # the global ARG defaults (before the first FROM)
    stages: tuple[Stage, ...]

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        text = re.sub(r"\\\n", " ", path.read_text())
        args: dict[str, str] = {}
        stages: list[Stage] = []
        current: list[Instruction] = []
        for line in text.splitlines():
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            keyword, _, argument = stripped.partition(" ")
            instruction = Instruction(keyword.upper(), " ".join(argument.split()))
            if instruction.keyword == "FROM":
                words = instruction.argument.split()
                name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
                current = []
                stages.append(Stage(name or str(len(stages)), words[0], ()))
            elif not stages and instruction.keyword == "ARG":
                arg, _, default = instruction.argument.partition("=")
                args[arg] = default
            elif stages:
                current.append(instruction)
                stages[-1] = Stage(stages[-1].name, stages[-1].base, tuple(current))
        return cls(args, tuple(stages))

    def arg_defaults(self) -> dict[str, str]:
        """Every ARG default, the global ones and those declared inside a stage."""
        found = dict(self.args)
        for stage in self.stages:
            for instruction in stage.instructions:
                if instruction.keyword == "ARG":
                    name, _, default = instruction.argument.partition("=")
                    found[name] = default
        return found

    def stage(self, name: str) -> Stage:
        (found,) = [s for s in self.stages if s.name == name]
        return found

    def names(self) -> set[str]:
        return {s.name for s in self.stages}

    def image(self, stage: Stage) -> str:
        """The external image a stage starts from (``ARG`` defaults resolved), following
        the stages it is built on."""
        while stage.base in self.names():
            stage = self.stage(stage.base)
        return re.sub(r"\$\{(\w+)\}", lambda m: self.args[m[1]], stage.base)

    def chain(self, target: str) -> list[Stage]:
        """The stages a target is built on, the external-image one first, the target last."""
        stages = [self.stage(target)]
        while stages[0].base in self.names():
            stages.insert(0, self.stage(stages[0].base))
        return stages

    def inherited(self, target: str) -> list[Instruction]:
        """Every instruction that went into the target's image, in order."""
        return [i for stage in self.chain(target) for i in stage.instructions]

    def last(self, target: str, keyword: str) -> Instruction:
        """The instruction of that kind the image ends up with (the latest one wins)."""
        found = [i for i in self.inherited(target) if i.keyword == keyword]
        assert found, f"{target} has no {keyword}"
        return found[-1]
