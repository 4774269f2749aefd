"""``clickstream-bench`` (``make bench``): the pipeline's performance figures in one table.

Every scenario runs the real console scripts against the embedded broker and a
durable PostgreSQL, measures from the services' own log events where it can,
and never asserts: the targets are printed next to the figures.
"""


class BenchError(RuntimeError):
    """A scenario could not produce its figure; the message says why and where to look."""
