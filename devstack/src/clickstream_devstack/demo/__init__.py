"""``clickstream-demo`` (``make demo``): the whole pipeline on embedded servers.

Starts Tansu and PostgreSQL in ``--dir`` (``.demo/``), creates the topics, runs
``clickstream-aggregator`` (``--replicas`` of them), a backfill of
``--backfill`` events of sessions that began an hour ago, and
``clickstream-producer`` at ``--rate`` events/s for ``--duration`` seconds with
a live display; stops the producer, waits until the aggregators have committed
every message on the topic, stops them and prints ``clickstream-report``. With
``--chaos`` it injects faults while the traffic runs and ends with the verdict
of ``clickstream-verify``. Every process it started is gone when it exits, on
success, on error and on Ctrl-C alike; the work directory is removed after a
success unless ``--keep`` is given (kept after a failure, for its logs).

Modules: ``cli`` (flags, summary, exit status), ``session`` (servers and
services, start to report), ``phases`` (starting, producing, catching up,
stopping), ``screen`` (the live display), ``verdict`` (the chaos verdict),
``options`` (what they share), ``progress`` (rates and lag read from the
broker and the database), ``chaos`` and ``chaos_messages`` (the faults of
``--chaos`` and the messages they inject).
"""

from clickstream_devstack.demo.cli import main

__all__ = ["main"]
