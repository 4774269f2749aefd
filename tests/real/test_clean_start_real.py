"""A normal run has no error-level line on Apache Kafka either (see the integration test)."""

from integration.test_clean_start import (  # noqa: F401 - collected here on Apache Kafka
    test_a_normal_run_has_no_error_line,
)
