"""Names every component must agree on: topics, consumer group, OpenSearch indices."""

from typing import Final

#: Raw events, keyed by ``session_id`` so a session's events share a partition
#: (``user_id`` keys, as the design's producer uses, keep that for a user's sessions).
EVENTS_TOPIC: Final = "clickstream-events"
#: Messages the aggregator could not accept, with Kafka Connect's error headers.
DLQ_TOPIC: Final = "clickstream-events-dlq"
#: Records the OpenSearch sink connector could not index.
CONNECT_DLQ_TOPIC: Final = "clickstream-events-connect-dlq"
#: The aggregator replicas' consumer group.
CONSUMER_GROUP: Final = "clickstream-aggregator"
#: Daily indices are ``clickstream-events-YYYY.MM.DD``.
INDEX_PREFIX: Final = "clickstream-events-"
INDEX_PATTERN: Final = f"{INDEX_PREFIX}*"
