"""Every link and every command the documentation quotes still resolves.

Covered: README.md, DEPLOY.md, CONTRIBUTING.md, docs/*.md, terraform/README.md and
opensearch/README.md.

- A relative link ``[text](path#anchor)`` names a file or folder that exists and, for
  a Markdown target, an anchor that one of its headings produces (GitHub's slug rules:
  lower case, punctuation dropped, spaces to hyphens, ``-1``, ``-2`` for repeats).
- A quoted command is a code span, or a line of a shell code block (or a ``$ `` line of
  any block), that starts with ``make`` or a ``clickstream-*`` name (after ``$ ``,
  ``VAR=value`` assignments and ``.venv/bin/``): every ``make`` target must be a target
  of the Makefile, every ``clickstream-*`` name a console script declared in a
  ``pyproject.toml``, its sub-command one its parser offers, and every ``--flag`` quoted
  for it one that its ``--help`` lists. Flags count as quoted for a command when they
  follow it in the same span or line, sit in the same table row as a command in the
  row's first cell, or are in ``DEMO_ARGS="…"`` (which ``make demo`` hands to
  ``clickstream-demo``).
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import sys
import tomllib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted(
    [
        ROOT / "README.md",
        ROOT / "DEPLOY.md",
        ROOT / "CONTRIBUTING.md",
        ROOT / "terraform" / "README.md",
        ROOT / "opensearch" / "README.md",
        *(ROOT / "docs").glob("*.md"),
    ]
)

#: ``clickstream-*`` names the documents quote that are not commands: topics, indices,
#: saved objects, the local password, the search node's system account.
NOT_COMMANDS = frozenset(
    {
        "clickstream-events",
        "clickstream-events-dlq",
        "clickstream-events-connect-dlq",
        "clickstream-events-ingested",
        "clickstream-live",
        "clickstream-funnel",
        "clickstream-local",
        "clickstream-search",
    }
)
#: A make target that runs a console script with the flags of a variable.
MAKE_RUNS = {"demo": "clickstream-demo"}
SHELL_BLOCKS = frozenset({"bash", "sh", "shell", "console"})

FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
COMMAND_NAME = re.compile(r"clickstream-[a-z]+(?:-[a-z]+)*")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
FLAG = re.compile(r"(?<![\w-])--[a-z0-9][a-z0-9-]*")
DEMO_ARGS = re.compile(r"DEMO_ARGS=\"([^\"]*)\"")


@dataclass(frozen=True)
class Quote:
    """One command as the documents quote it, with where."""

    where: str
    command: str  # "make" or a clickstream-* name
    words: tuple[str, ...]  # make: targets; else: the sub-command candidate and flags


# --- reading the documents --------------------------------------------------------


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def prose_and_blocks(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str, str]]]:
    """The lines outside code blocks, and the lines inside them with their block's language."""
    prose: list[tuple[int, str]] = []
    block: list[tuple[int, str, str]] = []
    fence: str | None = None
    language = ""
    for number, line in enumerate(text.splitlines(), start=1):
        opened = FENCE.match(line)
        if opened and (fence is None or opened.group(1) == fence):
            if fence is None:
                fence, language = opened.group(1), opened.group(2).lower()
            else:
                fence = None
            continue
        if fence is None:
            prose.append((number, line))
        else:
            block.append((number, line, language))
    return prose, block


def paragraphs(prose: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Prose joined into the units a code span or link can run across lines in:
    paragraphs and list items; a heading or table row is one on its own."""
    joined: list[tuple[int, str]] = []
    previous = 0
    for number, line in prose:
        stripped = line.strip()
        alone = stripped.startswith(("|", "#"))
        starts = alone or re.match(r"^([-*+]|\d+\.)\s", stripped) is not None
        if not stripped:
            previous = 0
            continue
        if (
            previous
            and previous == number - 1
            and not starts
            and not joined[-1][1].startswith(("|", "#"))
        ):
            joined[-1] = (joined[-1][0], f"{joined[-1][1]} {stripped}")
        else:
            joined.append((number, stripped))
        previous = number
    return joined


def without_code_spans(line: str) -> str:
    return CODE_SPAN.sub("", line)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading (before the -1, -2 of repeats)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    kept = (
        ch
        for ch in text.lower()
        if ch in " -" or unicodedata.category(ch)[0] in "LMN" or unicodedata.category(ch) == "Pc"
    )
    return "".join(kept).replace(" ", "-")


@functools.cache
def anchors(path: Path) -> frozenset[str]:
    prose, _ = prose_and_blocks(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose:
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        repeat = seen.get(slug, 0)
        seen[slug] = repeat + 1
        found.add(slug if repeat == 0 else f"{slug}-{repeat}")
    return frozenset(found)


def broken_links(path: Path) -> Iterator[str]:
    prose, _ = prose_and_blocks(path.read_text(encoding="utf-8"))
    for number, line in paragraphs(prose):
        for match in LINK.finditer(without_code_spans(line)):
            target = match.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: …
                continue
            file_part, _, anchor = target.partition("#")
            where = f"{shown(path)}:{number}: ({target})"
            resolved = (path.parent / file_part).resolve() if file_part else path
            if not resolved.exists():
                yield f"{where} {file_part} does not exist"
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                yield f"{where} {shown(resolved)} has no heading #{anchor}"


# --- the commands they quote ------------------------------------------------------


def split_words(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=True)
    except ValueError:  # an unbalanced quote in an output line
        return text.split()


def quote_of(words: list[str], where: str, first_cell_only: bool = False) -> Quote | None:
    """The command a span or command line starts with, if it starts with one."""
    words = list(words)
    if words and words[0] == "$":
        words = words[1:]
    while words and ASSIGNMENT.match(words[0]):
        words = words[1:]
    if not words:
        return None
    head = words[0].removeprefix(".venv/bin/")
    if head == "make" and not first_cell_only:
        targets = tuple(w for w in words[1:] if not w.startswith("-") and "=" not in w)
        return Quote(where, "make", targets)
    if COMMAND_NAME.fullmatch(head) and head not in NOT_COMMANDS:
        return Quote(where, head, tuple(words[1:]))
    return None


def quotes_in(path: Path) -> Iterator[Quote]:
    text = path.read_text(encoding="utf-8")
    name = shown(path)
    prose, blocks = prose_and_blocks(text)
    for number, line in paragraphs(prose):
        where = f"{name}:{number}"
        in_table = line.startswith("|")  # a row's flags: the row's own rule below
        last: Quote | None = None  # the paragraph's latest command, which a lone `--flag` is for
        spans = [m.group(2).strip() for m in CODE_SPAN.finditer(line)]
        for span in spans:
            words = split_words(span)
            quote = quote_of(words, where)
            if quote and quote.command == "make":
                targets = [MAKE_RUNS[t] for t in quote.words if t in MAKE_RUNS]
                last = Quote(where, targets[0], ()) if targets else None
            elif quote:
                last = quote
            elif last and not in_table and span.startswith("--"):
                yield Quote(where, last.command, tuple(f for f in words if FLAG.fullmatch(f)))
            if quote:
                yield quote
        if line.lstrip().startswith("|"):
            first_cell = line.strip().strip("|").split("|")[0]
            owner = next((m.group(2).strip() for m in CODE_SPAN.finditer(first_cell)), "")
            words = split_words(owner)
            command = MAKE_RUNS.get(words[1], "") if words[:1] == ["make"] and words[1:] else ""
            quote = quote_of(words, where) if not command else Quote(where, command, ())
            if quote and quote.command != "make":
                flags = [f for span in spans for f in FLAG.findall(span) if span.startswith("--")]
                yield Quote(where, quote.command, (*quote.words, *flags))
    for number, line, language in blocks:
        stripped = line.strip()
        if language in SHELL_BLOCKS or stripped.startswith("$ "):
            for part in re.split(r"&&|;|\|\|?", stripped):
                quote = quote_of(split_words(part), f"{name}:{number}")
                if quote:
                    yield quote
    for number, line in enumerate(text.splitlines(), start=1):
        for args in DEMO_ARGS.findall(line):
            yield Quote(f"{name}:{number}", MAKE_RUNS["demo"], tuple(split_words(args)))


# --- what the repository declares -------------------------------------------------


@functools.cache
def make_targets() -> frozenset[str]:
    targets: set[str] = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.%/ -]+?)\s*:(?![:=])", line)
        if match and not line.startswith("\t"):
            targets.update(match.group(1).split())
    return frozenset(targets)


@functools.cache
def console_scripts() -> frozenset[str]:
    names: set[str] = set()
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]  # .venv, .cache, .git
        if "pyproject.toml" not in files:
            continue
        pyproject = Path(folder) / "pyproject.toml"
        scripts = tomllib.loads(pyproject.read_text()).get("project", {}).get("scripts", {})
        names.update(scripts)
    return frozenset(names)


@functools.cache
def help_text(command: str, *sub: str) -> str:
    executable = Path(sys.executable).parent / command
    done = subprocess.run(
        [str(executable), *sub, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, f"{command} {' '.join(sub)} --help failed: {done.stderr[-2000:]}"
    return done.stdout


def subcommands(command: str) -> frozenset[str]:
    usage = help_text(command).split("\n\n")[0]
    choices = re.search(r"\{([\w,-]+)\}", usage)
    return frozenset(choices.group(1).split(",")) if choices else frozenset()


def problems_with(quote: Quote) -> Iterator[str]:
    if quote.command == "make":
        for target in quote.words:
            if target not in make_targets():
                yield f"{quote.where}: `make {target}`: no such target in the Makefile"
        return
    if quote.command not in console_scripts():
        yield f"{quote.where}: `{quote.command}` is not a console script of any pyproject.toml"
        return
    known = set(FLAG.findall(help_text(quote.command)))
    offered = subcommands(quote.command)
    positional = [w for w in quote.words if not w.startswith("-")]
    if offered and positional and not quote.words[0].startswith("-"):
        sub = quote.words[0]
        if sub not in offered:
            yield f"{quote.where}: `{quote.command} {sub}`: no such sub-command ({sorted(offered)})"
            return
        known |= set(FLAG.findall(help_text(quote.command, sub)))
    elif offered:
        for sub in offered:
            known |= set(FLAG.findall(help_text(quote.command, sub)))
    for word in quote.words:
        flag = word.split("=", 1)[0]
        if FLAG.fullmatch(flag) and flag not in known:
            yield f"{quote.where}: `{quote.command} {flag}`: {quote.command} has no such flag"


# --- the tests --------------------------------------------------------------------


def test_the_documents_exist() -> None:
    assert (ROOT / "docs").is_dir()
    for path in DOCUMENTS:
        assert path.is_file(), path


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    assert list(broken_links(path)) == []


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_quoted_command_resolves(path: Path) -> None:
    quotes = list(quotes_in(path))
    assert [problem for quote in quotes for problem in problems_with(quote)] == []


def test_the_documents_quote_commands_the_checks_see() -> None:
    """The extraction finds what README quotes, so an empty result above means something."""
    quotes = list(quotes_in(ROOT / "README.md"))
    commands = {quote.command for quote in quotes}
    assert {"make", "clickstream-demo", "clickstream-producer", "clickstream-verify"} <= commands
    assert {"demo", "test"} <= {target for q in quotes if q.command == "make" for target in q.words}
    assert any("--rate" in q.words for q in quotes if q.command == "clickstream-producer")


def test_a_broken_link_anchor_command_or_flag_is_reported(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# Title\n\n## Architecture\n", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "probe.md"
    page.write_text(
        "# Probe\n\n"
        "[gone](missing.md) [no anchor](../README.md#no-such-heading) "
        "[fine](../README.md#architecture) [self](#probe) `[code](not-a-link.md)`\n\n"
        "Run `make no-such-target`, `clickstream-nonesuch` and "
        "`clickstream-producer --no-such-flag`; a span across lines: `clickstream-report\n"
        "--no-such-report-flag`.\n\n"
        "| `clickstream-verify` | `--json`, `--not-a-verify-flag` |\n\n"
        '```bash\nmake demo DEMO_ARGS="--not-a-demo-flag"\n```\n',
        encoding="utf-8",
    )
    links = list(broken_links(page))
    problems = [p for quote in quotes_in(page) for p in problems_with(quote)]
    assert [link.split(": ", 1)[1] for link in links] == [
        "(missing.md) missing.md does not exist",
        "(../README.md#no-such-heading) README.md has no heading #no-such-heading",
    ]
    joined = "\n".join(problems)
    for expected in (
        "`make no-such-target`: no such target",
        "`clickstream-nonesuch` is not a console script",
        "`clickstream-producer --no-such-flag`",
        "`clickstream-verify --not-a-verify-flag`",
        "`clickstream-demo --not-a-demo-flag`",
        "`clickstream-report --no-such-report-flag`",
    ):
        assert expected in joined
    assert "--json" not in joined
    assert len(problems) == 6, problems


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        (
            "Verifying a deployment: `clickstream-verify`",
            "verifying-a-deployment-clickstream-verify",
        ),
        ("2. Write `.env`", "2-write-env"),
        (
            "Real servers: Apache Kafka, Kafka Connect and OpenSearch (`tests/real`)",
            "real-servers-apache-kafka-kafka-connect-and-opensearch-testsreal",
        ),
        ("snake_case stays", "snake_case-stays"),
        ("terraform/ — the Aiven services", "terraform--the-aiven-services"),
    ],
)
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug
