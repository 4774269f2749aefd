"""Create the pipeline's topics when they are missing.

Idempotent: existing topics are left as they are (a differing partition count is
reported, never changed, because repartitioning moves keys between partitions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

log = structlog.get_logger()


async def ensure_topics(
    client_options: dict[str, Any],
    topics: Mapping[str, int],
    *,
    replication: int = 1,
) -> list[str]:
    """Create each missing topic ``name -> partitions``; return the names created.

    ``client_options`` is what ``KafkaSettings.kafka_client_options()`` returns.
    """
    admin = AIOKafkaAdminClient(**client_options)
    await admin.start()
    try:
        existing = await _partition_counts(admin)
        for name, partitions in topics.items():
            if name in existing and existing[name] != partitions:
                log.warning(
                    "topic_partitions_differ", topic=name, wanted=partitions, actual=existing[name]
                )
        missing = [
            NewTopic(name, partitions, replication)
            for name, partitions in topics.items()
            if name not in existing
        ]
        created = await _create(admin, missing) if missing else []
    finally:
        await admin.close()
    log.info("topics_ensured", created=created, existing=sorted(set(topics) & set(existing)))
    return created


async def _partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    described = await admin.describe_topics()
    return {
        topic["topic"]: len(topic["partitions"])
        for topic in described
        if topic.get("error_code", 0) == 0
    }


async def _create(admin: AIOKafkaAdminClient, new_topics: list[NewTopic]) -> list[str]:
    response = await admin.create_topics(new_topics)
    created: list[str] = []
    for name, error_code, *rest in response.topic_errors:
        if error_code == 0:
            created.append(name)
        elif error_code == TopicAlreadyExistsError.errno:
            # Another process created it between our metadata read and the request.
            continue
        else:
            message = rest[0] if rest else None
            raise for_code(error_code)(f"cannot create topic {name!r}: {message}")
    return created
