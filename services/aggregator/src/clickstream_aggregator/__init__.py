"""Kafka → validate → aggregate → PostgreSQL, exactly once."""
