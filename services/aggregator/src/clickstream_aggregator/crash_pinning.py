"""Pin a decode worker's death to the message that caused it, never to its batch.

A worker process can die while it prepares a batch: a crash in a native
extension, memory exhaustion, or a kill from outside (the OOM killer choosing
it, an operator). The :class:`~clickstream_aggregator.workers.Preparer`
replaces the pool and prepares the batch once more, in a pool of its own (one
worker that no other batch uses, started afresh after every death), since the
death may have nothing to do with the batch. Only when the worker dies on the
batch a second time are its messages suspected: :func:`crashing` prepares
halves of it in that pool, halving any part that kills its worker until a
single message is left, which is tried once more alone. Those messages are
dead-lettered with reason ``crashed_decoder`` and never decoded again (they
join the batch's ``rejects``); the rest of the batch is applied as if they had
never been there.

The search is bounded. One culprit among n messages costs about log2(n) + 1
deaths, each followed by a worker start (0.2 to 1 s), and the parts that live
are prepared again (about twice the batch's work). A batch with more than
:data:`MAX_CULPRITS` culprits, a pool whose workers cannot start, or a batch
that kills its worker whole while none of its messages alone does stops the
service with :class:`DecodeWorkersFailed` (the policy's ``STOP``): that is a
broken deployment or a batch too large for the worker's memory, not a message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import structlog

from clickstream_aggregator.batch import Batch
from clickstream_aggregator.policy import Verdict, verdict
from clickstream_aggregator.records import MessageKey, RawPartition, Refusal
from clickstream_runtime.workers import WorkerDied

log = structlog.get_logger()

#: Dead-letter reason of a message whose preparing kills the worker process.
CRASHED_DECODER: Final = "crashed_decoder"
#: More culprits than this in one batch means the workers are broken, not the messages.
MAX_CULPRITS: Final = 8

#: Prepares the partitions in a worker, dead-lettering the rejected messages
#: unread; raises ``WorkerDied`` (with a started pool in place again) if it died.
Attempt = Callable[[list[RawPartition], Mapping[MessageKey, Refusal]], Awaitable[object]]


class DecodeWorkersFailed(RuntimeError):
    """Decode workers keep dying in a way no message explains: the service stops."""


async def crashing(batch: Batch, attempt: Attempt, died: WorkerDied) -> dict[MessageKey, Refusal]:
    """The messages of ``batch`` that kill the worker preparing them, each found alone.

    Called after the whole batch killed its worker twice (the second time:
    ``died``). Preparing is per message (see ``pinning.unpreparable``), so a
    part without a culprit lets its worker live.
    """
    culprits: dict[MessageKey, Refusal] = {}

    async def dies(keys: list[MessageKey]) -> WorkerDied | None:
        try:
            await attempt(batch.only(keys), {**batch.rejects, **culprits})
        except WorkerDied as death:
            log.info(
                "decode_worker_died",
                partition=keys[0][0],
                offset=keys[0][1],
                messages=len(keys),
                exit_codes=death.exit_codes,
                action="halving",
            )
            return death
        except Exception as error:
            # The worker lived: a value it refused is pinning's to find, later.
            if verdict(error) is not Verdict.PIN:
                raise
        return None

    async def split(keys: list[MessageKey]) -> None:
        middle = len(keys) // 2
        for half in (keys[:middle], keys[middle:]):
            if (death := await dies(half)) is None:
                continue
            if len(half) > 1:
                await split(half)
            # Alone, once more: a kill from outside must not make a culprit.
            elif (death := await dies(half)) is not None:
                found(half[0], death)

    def found(key: MessageKey, death: WorkerDied) -> None:
        codes = ", ".join(map(str, death.exit_codes)) or "unknown"
        culprits[key] = Refusal(
            f"{WorkerDied.__module__}.{WorkerDied.__qualname__}",
            "the decode worker process died preparing this message alone, twice, after "
            f"dying on its batch twice (exit codes: {codes})",
            CRASHED_DECODER,
        )
        log.warning(
            "decode_culprit_found",
            partition=key[0],
            offset=key[1],
            exit_codes=death.exit_codes,
            action="dead_lettered",
        )
        if len(culprits) > MAX_CULPRITS:
            reason = (
                f"more than {MAX_CULPRITS} messages of one batch kill the decode worker, "
                f"each alone (the last: partition {key[0]} offset {key[1]}): the workers "
                "are broken, not the messages"
            )
            log.error("decode_workers_failed", reason=reason, action="stopping")
            raise DecodeWorkersFailed(reason)

    suspects = [key for key in batch.message_keys() if key not in batch.rejects]
    if len(suspects) > 1:
        await split(suspects)
    elif suspects:
        # A batch of one message that killed its worker twice: no need to try it a third time.
        found(suspects[0], died)
    return culprits
