"""Embedded Kafka-compatible broker (Tansu) and PostgreSQL, started without Docker.

Used by ``make demo``, ``make bench`` and the integration tests; never imported
by the services themselves.
"""
