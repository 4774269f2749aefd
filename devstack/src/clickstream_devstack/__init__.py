"""The servers and commands behind ``make demo``, ``make bench`` and the tests, without Docker.

One folder per job: ``servers`` (Tansu, PostgreSQL and the JVM servers as child
processes), ``demo``, ``bench``, ``images`` (podman) and ``terraform`` (the
offline check). At the top, what they share: ``environment``, ``services``,
``interrupts`` and ``stack`` (``clickstream-stack``). Never imported by the services.
"""
