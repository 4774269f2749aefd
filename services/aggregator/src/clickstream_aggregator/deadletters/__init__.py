"""The dead-letter relay: outbox rows in PostgreSQL → the dead-letter topic (see ``relay``)."""

from clickstream_aggregator.deadletters.producers import RelayProducers
from clickstream_aggregator.deadletters.relay import DeadLetterRelay

__all__ = ["DeadLetterRelay", "RelayProducers"]
