"""Helpers shared by the tests (not a library: only tests import this)."""
