"""Operator commands: set up topics and OpenSearch, check connectivity, write .env."""
