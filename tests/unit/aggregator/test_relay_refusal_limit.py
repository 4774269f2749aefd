"""The relay and the operator commands agree on when a dead letter is set aside.

The aggregator's relay leaves a row out of relaying after RELAY_MAX_REFUSALS
refusals; ``clickstream-report`` and ``clickstream-check`` (clickstream-ops,
which never imports the aggregator) count such rows as set aside by the limit
in the shared contract. If the two numbers differ, the report and the check
call rows stuck that the relay still retries, or miss rows it gave up on.
"""

from __future__ import annotations

from clickstream_aggregator import repository
from clickstream_schema.dead_letters import RELAY_MAX_REFUSALS


def test_the_relay_sets_rows_aside_at_the_limit_the_operator_commands_count() -> None:
    assert repository.RELAY_MAX_REFUSALS == RELAY_MAX_REFUSALS
