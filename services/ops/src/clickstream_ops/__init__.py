"""Operator commands: set up topics and OpenSearch, check, write .env, verify, report."""
