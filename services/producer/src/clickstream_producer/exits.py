"""The producer's exit codes beyond the shared ones of ``clickstream_runtime.entrypoint``.

* ``0`` — the ``--events`` were sent and acknowledged, or a stop (SIGINT/SIGTERM)
  left nothing unacknowledged.
* ``1`` — a failure: a batch the broker did not take after the client's own
  retries (``delivery_failed``), or an unexpected error (``service_failed``).
* ``3`` — the process did not end within 9 s of the stop (``shutdown_timeout``).
* ``4`` — :data:`EXIT_KAFKA_UNREACHABLE`: Kafka did not answer within
  ``PRODUCER_STARTUP_TIMEOUT_S`` (``kafka_unreachable``, one line with the reason).
* ``5`` — :data:`EXIT_UNACKNOWLEDGED`: stopped while events were still waiting
  for the broker's acknowledgement and the bounded flush did not get them
  (``events_not_acknowledged`` with their number); they may or may not be on
  the topic.
* ``130`` / ``143`` — a second SIGINT / SIGTERM ended the process at once.
"""

from __future__ import annotations

from typing import Final

EXIT_KAFKA_UNREACHABLE: Final = 4
EXIT_UNACKNOWLEDGED: Final = 5
