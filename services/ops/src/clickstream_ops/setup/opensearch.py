"""``clickstream-setup opensearch``: ingest pipeline, ISM policy, index template, dashboards.

Each resource is read first and written only when it differs from the asset
(see :mod:`compare`), so a second run changes nothing. Order matters: the
pipeline exists before the template that names it as ``default_pipeline``, and
the policy before new indices that its ``ism_template`` should catch.
"""

from __future__ import annotations

from typing import Any, Literal

import structlog

from clickstream_ops.setup.assets import (
    PIPELINE_ID,
    POLICY_ID,
    TEMPLATE_NAME,
    Assets,
    find_assets_dir,
    load_assets,
)
from clickstream_ops.setup.client import ApiClient, Backoff, Json, SetupError, Sleep
from clickstream_ops.setup.compare import contains
from clickstream_ops.setup.dashboards import import_saved_objects
from clickstream_ops.setup.settings import NOT_CONFIGURED, OpenSearchSettings
from clickstream_schema import INDEX_PATTERN

log = structlog.get_logger()

Outcome = Literal["created", "updated", "imported", "unchanged"]


async def setup_opensearch(settings: OpenSearchSettings, *, sleep: Sleep) -> dict[str, Outcome]:
    """Apply every asset; return what happened to each (for logs and tests)."""
    if settings.opensearch_uri is None:
        raise SetupError(NOT_CONFIGURED)
    assets = load_assets(
        find_assets_dir(settings.opensearch_assets_dir),
        retention_days=settings.opensearch_retention_days,
    )
    backoff = Backoff(budget_s=settings.opensearch_wait_s)
    outcomes: dict[str, Outcome] = {}
    async with ApiClient(settings.opensearch_endpoint()) as cluster:
        await cluster.wait_until_ready(
            "/_cluster/health", _cluster_usable, backoff=backoff, sleep=sleep
        )
        outcomes["ingest_pipeline"] = await ensure_pipeline(cluster, assets)
        outcomes["ism_policy"] = await ensure_ism_policy(cluster, assets)
        outcomes["index_template"] = await ensure_template(cluster, assets)
    dashboards = settings.dashboards_endpoint()
    if dashboards is None:
        log.warning("dashboards_skipped", reason="OPENSEARCH_DASHBOARDS_URL is not set")
    else:
        outcomes["saved_objects"] = await import_saved_objects(
            dashboards, assets, backoff=backoff, sleep=sleep
        )
    log.info("opensearch_ready", **outcomes)
    return outcomes


def _cluster_usable(body: Json) -> bool:
    # Yellow is fine: a single-node cluster never allocates replicas.
    return isinstance(body, dict) and body.get("status") in ("green", "yellow")


async def ensure_pipeline(cluster: ApiClient, assets: Assets) -> Outcome:
    path = f"/_ingest/pipeline/{PIPELINE_ID}"
    current = await cluster.request("GET", path, allow=(404,))
    existing = current.body.get(PIPELINE_ID) if isinstance(current.body, dict) else None
    return await _put_if_changed(cluster, path, "ingest_pipeline", existing, assets.pipeline)


async def ensure_template(cluster: ApiClient, assets: Assets) -> Outcome:
    path = f"/_index_template/{TEMPLATE_NAME}"
    current = await cluster.request("GET", path, allow=(404,))
    existing = None
    if current.status == 200 and isinstance(current.body, dict):
        for entry in current.body.get("index_templates", []):
            if entry.get("name") == TEMPLATE_NAME:
                existing = entry.get("index_template")
    outcome = await _put_if_changed(cluster, path, "index_template", existing, assets.template)
    if outcome != "unchanged":
        # Templates shape new indices only; today's index keeps its mapping until tomorrow.
        log.info("index_template_applies_to_new_indices", pattern=INDEX_PATTERN)
    return outcome


async def _put_if_changed(
    cluster: ApiClient, path: str, kind: str, existing: Json, desired: dict[str, Any]
) -> Outcome:
    if existing is not None and contains(existing, desired):
        log.info("resource_unchanged", kind=kind, path=path)
        return "unchanged"
    await cluster.request("PUT", path, json=desired)
    outcome: Outcome = "created" if existing is None else "updated"
    log.info("resource_written", kind=kind, path=path, outcome=outcome)
    return outcome


async def ensure_ism_policy(cluster: ApiClient, assets: Assets) -> Outcome:
    path = f"/_plugins/_ism/policies/{POLICY_ID}"
    current = await cluster.request("GET", path, allow=(404,))
    desired = assets.policy
    if current.status == 404:
        await cluster.request("PUT", path, json=desired)
        log.info("resource_written", kind="ism_policy", path=path, outcome="created")
        # ism_template catches indices created from now on; attach the ones that exist.
        await _attach_policy(cluster, "add")
        return "created"
    body = current.body if isinstance(current.body, dict) else {}
    if contains(body.get("policy"), desired["policy"]):
        log.info("resource_unchanged", kind="ism_policy", path=path)
        return "unchanged"
    # ISM refuses a blind overwrite: the update must name the version it replaces.
    params = {"if_seq_no": body["_seq_no"], "if_primary_term": body["_primary_term"]}
    await cluster.request("PUT", path, json=desired, params=params)
    log.info("resource_written", kind="ism_policy", path=path, outcome="updated")
    # Managed indices keep the policy version they started with; move them to the new one.
    await _attach_policy(cluster, "change_policy")
    return "updated"


async def _attach_policy(cluster: ApiClient, action: Literal["add", "change_policy"]) -> None:
    reply = await cluster.request(
        "POST",
        f"/_plugins/_ism/{action}/{INDEX_PATTERN}",
        json={"policy_id": POLICY_ID},
        allow=(404,),  # no index yet: nothing to attach
    )
    body = reply.body if isinstance(reply.body, dict) else {}
    # "add" reports indices that already have a policy as failures: expected, not an error.
    log.info(
        "ism_policy_attached",
        action=action,
        updated_indices=body.get("updated_indices", 0),
        skipped_indices=len(body.get("failed_indices", [])),
    )
