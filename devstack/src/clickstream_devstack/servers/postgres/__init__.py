"""PostgreSQL of the dev stack, one job a module.

``binaries`` (which build), ``cluster`` (its data directory), ``server`` (the process).
"""

from clickstream_devstack.servers.postgres.binaries import Binaries, find_ssl_capable
from clickstream_devstack.servers.postgres.server import (
    EmbeddedPostgres,
    PostgresCommandError,
    StopMode,
)

__all__ = ["Binaries", "EmbeddedPostgres", "PostgresCommandError", "StopMode", "find_ssl_capable"]
