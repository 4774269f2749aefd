"""``clickstream-demo --chaos``: faults while the live traffic runs.

On a fixed schedule (fractions of ``--duration``) it SIGKILLs and restarts
aggregator replicas, restarts PostgreSQL (immediate mode: a crash for the
clients), freezes one replica with SIGSTOP for a while and resumes it, and
publishes duplicates, late events and malformed messages next to the
producer's. Each step is recorded with the time it happened, for the screen
and for the verdict that ``clickstream-verify`` computes afterwards.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from clickstream_devstack.demo import chaos_messages
from clickstream_devstack.environment import KafkaTopics
from clickstream_devstack.servers.postgres import EmbeddedPostgres
from clickstream_devstack.services import Service, ServiceGroup
from clickstream_schema import decode

#: Group timings that let a killed replica's partitions move within seconds.
CHAOS_ENV = {
    "KAFKA_SESSION_TIMEOUT_MS": "6000",
    "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
    "AGGREGATOR_RETRY_MAX_S": "2",
    "AGGREGATOR_MAX_MESSAGE_BYTES": str(chaos_messages.CHAOS_MAX_MESSAGE_BYTES),
}

_SAMPLE_WAIT_S = 15.0
#: characters of a crashed replica's last error shown on screen
_SHOWN = 300


@dataclass
class Injected:
    duplicates: int = 0
    late: int = 0
    malformed: int = 0
    kills: int = 0
    postgres_restarts: int = 0
    freezes: int = 0


@dataclass
class Replicas:
    """The aggregator replicas by name; a restart replaces the service under the same name."""

    services: ServiceGroup
    env: Mapping[str, str]
    running: dict[str, Service] = field(default_factory=dict)
    generation: dict[str, int] = field(default_factory=dict)
    #: replicas that died without being killed: how each one died
    crashes: list[str] = field(default_factory=list)

    def start(self, name: str) -> Service:
        n = self.generation.get(name, 0)
        self.generation[name] = n + 1
        service = self.services.launch(
            "clickstream-aggregator",
            env={**self.env, "AGGREGATOR_REPLICA_ID": name},
            name=name if n == 0 else f"{name}.{n}",
        )
        self.running[name] = service
        return service

    def revive(self) -> list[str]:
        """Start again, as a supervisor would, replicas that died on their own; say how.

        Under chaos a crash is a finding, not the end of the demo: the verdict
        still shows whether anything was lost, and the demo fails afterwards.
        """
        found = []
        for name, service in list(self.running.items()):
            if service.running or service.stopping:
                continue
            service.stopping = True
            found.append(
                f"{service.name} died on its own (exit code {service.process.returncode}): "
                f"{_last_error(service)}; log {service.log_path}"
            )
            self.start(name)
        self.crashes += found
        return found

    def kill_and_restart(self, name: str) -> None:
        victim = self.running[name]
        victim.stopping = True  # its death is the point, not a failure
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(timeout=10)
        self.start(name)


def _last_error(service: Service) -> str:
    """The error a service logged last (its ``service_failed`` line), else its last line."""
    lines = service.log_path.read_text(errors="replace").splitlines()
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("level") in ("error", "critical"):
                return str(entry.get("error") or entry.get("event"))[:_SHOWN]
    return f"no error logged (last line: {lines[-1][:_SHOWN] if lines else 'none'})"


Log = Callable[[str], None]


class Chaos:
    def __init__(
        self,
        replicas: Replicas,
        postgres: EmbeddedPostgres,
        bootstrap: str,
        topics: KafkaTopics,
        *,
        duration: float,
        seed: int,
        scale: int,
        log: Log,
    ) -> None:
        self._replicas = replicas
        self._postgres = postgres
        self._bootstrap = bootstrap
        self._topics = topics
        self._duration = duration
        self._rng = random.Random(seed)
        #: how many duplicates and late events each injection sends
        self._scale = max(10, scale)
        self._log = log
        self.injected = Injected()
        self._frozen: Service | None = None

    def schedule(self) -> list[tuple[float, str, Callable[[], Awaitable[None]]]]:
        names = sorted(self._replicas.running)
        first, second, last = names[0], names[1 % len(names)], names[-1]
        return [
            (0.15, "duplicates", self._duplicates),
            (0.25, f"SIGKILL {first}", lambda: self._kill(first)),
            (0.35, "malformed messages", self._malformed),
            (0.45, "restart PostgreSQL", self._restart_postgres),
            (0.55, f"freeze {second}", lambda: self._freeze(second)),
            (0.70, "late events", self._late),
            (0.80, f"SIGKILL {last}", lambda: self._kill(last)),
            (0.90, "duplicates", self._duplicates),
        ]

    async def run(self, started: float) -> None:
        """Every step at its time; a frozen replica is always resumed."""
        try:
            for fraction, _name, step in self.schedule():
                await asyncio.sleep(
                    max(0.0, started + fraction * self._duration - time.monotonic())
                )
                await step()
        finally:
            self._thaw()

    def _say(self, text: str) -> None:
        self._log(text)

    async def _kill(self, name: str) -> None:
        self._replicas.kill_and_restart(name)
        self.injected.kills += 1
        self._say(f"SIGKILL {name}, started again")

    async def _restart_postgres(self) -> None:
        took = time.monotonic()
        await asyncio.to_thread(self._postgres.restart, "immediate")
        self.injected.postgres_restarts += 1
        self._say(f"PostgreSQL restarted (immediate stop), down {time.monotonic() - took:.1f} s")

    async def _freeze(self, name: str) -> None:
        service = self._replicas.running[name]
        freeze_s = min(5.0, 0.1 * self._duration)
        service.process.send_signal(signal.SIGSTOP)
        self._frozen = service
        self._say(f"SIGSTOP {name} for {freeze_s:.0f} s")
        try:
            await asyncio.sleep(freeze_s)
        finally:
            self._thaw()
        self.injected.freezes += 1
        self._say(f"SIGCONT {name}")

    def _thaw(self) -> None:
        if self._frozen is not None:
            self._frozen.process.send_signal(signal.SIGCONT)
            self._frozen = None

    async def _duplicates(self) -> None:
        found = await self._sample(self._scale)
        await self._publish(found)
        self.injected.duplicates += len(found)
        self._say(f"{len(found)} duplicates (same event_id, same bytes) published")

    async def _late(self) -> None:
        found = await self._sample(self._scale)
        messages = [chaos_messages.late(decode(value), self._rng) for _key, value in found]
        await self._publish(messages)
        self.injected.late += len(messages)
        self._say(f"{len(messages)} late events (2–6 h before their session) published")

    async def _malformed(self) -> None:
        found = await self._sample(1)
        if not found:
            self._say("no event on the topic yet: malformed messages skipped")
            return
        messages = chaos_messages.malformed(decode(found[0][1]))
        await self._publish(messages)
        self.injected.malformed += len(messages)
        self._say(f"{len(messages)} malformed messages published (every kind)")

    async def _sample(self, count: int) -> list[chaos_messages.Message]:
        """``count`` events from the topic; the producers may still be starting (or one
        read, bounded in time, may see only a few on a slow machine), so this waits (up
        to :data:`_SAMPLE_WAIT_S`) until it has ``count``; then it takes what there is."""
        deadline = time.monotonic() + _SAMPLE_WAIT_S
        while True:
            found = await chaos_messages.sample(
                self._bootstrap, self._topics.events, self._topics.partitions, count * 4
            )
            if len(found) >= count or time.monotonic() > deadline:
                return self._rng.sample(found, min(count, len(found)))

    async def _publish(self, messages: list[chaos_messages.Message]) -> None:
        await chaos_messages.publish(self._bootstrap, self._topics.events, messages)
