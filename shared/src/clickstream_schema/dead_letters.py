"""What the dead-letter outbox's readers and its relay agree on.

The aggregator's relay copies ``dead_letters`` rows to the dead-letter topic
and counts Kafka's refusals of a copy in ``relay_attempts`` (migration 0005).
The operator commands (``clickstream-report``, ``clickstream-check``) read the
same rows and must count as set aside exactly the rows the relay leaves out.
"""

from typing import Final

#: Rows Kafka refused this many times are left out of relaying until an
#: operator resets ``relay_attempts`` to 0 (migration 0005).
RELAY_MAX_REFUSALS: Final = 2
