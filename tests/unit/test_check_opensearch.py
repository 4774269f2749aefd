"""What OpenSearch and Dashboards say, judged from canned HTTP answers."""

from __future__ import annotations

from typing import Any

import httpx

from clickstream_ops.check.opensearch import (
    DASHBOARDS_STEPS,
    OPENSEARCH_STEPS,
    cluster_and_index,
    status_and_index_pattern,
)
from clickstream_ops.check.results import ServiceChecks, Verdict


def client(routes: dict[str, Any]) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        body = routes.get(request.url.path)
        if body is None:
            return httpx.Response(404, json={"error": "no such route"})
        return httpx.Response(200, json=body)

    return httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="https://os.test")


def results(checks: ServiceChecks) -> dict[str, tuple[Verdict, str]]:
    return {r.step: (r.verdict, r.detail) for r in checks.results()}


async def test_green_cluster_with_indices_and_documents() -> None:
    checks = ServiceChecks("opensearch", OPENSEARCH_STEPS)
    async with client({
        "/_cluster/health": {"cluster_name": "c1", "status": "green", "number_of_nodes": 3},
        "/_cat/indices/clickstream-events-*": [{"index": "clickstream-events-2024.05.01"}],
        "/clickstream-events-*/_count": {"count": 1234},
    }) as http:  # fmt: skip
        await cluster_and_index(checks, http)
    got = results(checks)
    assert got["cluster"] == (Verdict.OK, "cluster c1: green, 3 node(s)")
    assert got["index"] == (Verdict.OK, "1 index(es) match clickstream-events-*, 1234 document(s)")


async def test_red_cluster_and_missing_indices_fail() -> None:
    red = ServiceChecks("opensearch", OPENSEARCH_STEPS)
    async with client({"/_cluster/health": {"status": "red"}}) as http:
        await cluster_and_index(red, http)
    assert results(red)["cluster"][0] is Verdict.FAIL

    empty = ServiceChecks("opensearch", OPENSEARCH_STEPS)
    async with client({
        "/_cluster/health": {"status": "yellow"}, "/_cat/indices/clickstream-events-*": [],
    }) as http:  # fmt: skip
        await cluster_and_index(empty, http)
    verdict, detail = results(empty)["index"]
    assert verdict is Verdict.FAIL
    assert "no index matches clickstream-events-*" in detail


async def test_dashboards_status_and_index_pattern() -> None:
    checks = ServiceChecks("dashboards", DASHBOARDS_STEPS)
    async with client({
        "/api/status": {"version": {"number": "2.13.0"}, "status": {"overall": {"state": "green"}}},
        "/api/saved_objects/_find": {
            "saved_objects": [{"attributes": {"title": "clickstream-events-*"}}]
        },
    }) as http:  # fmt: skip
        await status_and_index_pattern(checks, http)
    got = results(checks)
    assert got["status"] == (Verdict.OK, "Dashboards 2.13.0: green")
    assert got["index_pattern"][0] is Verdict.OK


async def test_dashboards_without_the_index_pattern_points_at_setup() -> None:
    checks = ServiceChecks("dashboards", DASHBOARDS_STEPS)
    async with client({
        "/api/status": {"status": {"overall": {"state": "green"}}},
        "/api/saved_objects/_find": {"saved_objects": []},
    }) as http:  # fmt: skip
        await status_and_index_pattern(checks, http)
    [failure] = [r for r in checks.results() if r.verdict is Verdict.FAIL]
    assert failure.step == "index_pattern"
    assert "clickstream-setup opensearch" in failure.fix
