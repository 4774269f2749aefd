"""The design producer's events counted exactly, on Apache Kafka (see the integration test).

clickstream-verify's half (``test_verify_recomputes_the_derived_ids_and_agrees``)
joins here once verify reads topic metadata on Apache Kafka (issue 16).
"""

from integration.test_design_producer import (  # noqa: F401 - collected here on Apache Kafka
    test_the_design_producers_events_are_counted_exactly,
)
