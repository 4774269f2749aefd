"""OpenSearch and its Dashboards: settings → file → DNS → TCP → TLS → login → what they say."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from clickstream_ops.check.files import CertFile, check_files
from clickstream_ops.check.network import check_dns, check_tcp, check_tls
from clickstream_ops.check.results import Result, ServiceChecks
from clickstream_ops.check.settings import OpenSearchCheckSettings, Section
from clickstream_ops.setup.endpoint import Endpoint, EndpointError, parse_endpoint
from clickstream_schema import INDEX_PATTERN

OPENSEARCH_STEPS = ("settings", "certificates", "dns", "tcp", "tls", "auth", "cluster", "index")
DASHBOARDS_STEPS = (
    "settings",
    "certificates",
    "dns",
    "tcp",
    "tls",
    "auth",
    "status",
    "index_pattern",
)

Probe = Callable[[ServiceChecks, httpx.AsyncClient], Awaitable[None]]


async def check_opensearch(
    section: Section[OpenSearchCheckSettings], wait_s: float
) -> list[Result]:
    checks = ServiceChecks("opensearch", OPENSEARCH_STEPS)
    await _run(checks, section, "OPENSEARCH_URI", "OpenSearch", "/", cluster_and_index, wait_s)
    return checks.results()


async def check_dashboards(
    section: Section[OpenSearchCheckSettings], wait_s: float
) -> list[Result]:
    checks = ServiceChecks("dashboards", DASHBOARDS_STEPS)
    await _run(
        checks,
        section,
        "OPENSEARCH_DASHBOARDS_URL",
        "OpenSearch Dashboards",
        "/api/status",
        status_and_index_pattern,
        wait_s,
    )
    return checks.results()


def _endpoint(s: OpenSearchCheckSettings, variable: str, name: str) -> Endpoint:
    uri = s.opensearch_uri if variable == "OPENSEARCH_URI" else s.opensearch_dashboards_url
    assert uri is not None
    password = s.opensearch_password.get_secret_value() if s.opensearch_password else None
    return parse_endpoint(
        name, variable, uri, user=s.opensearch_user, password=password, ca_file=s.opensearch_ca_file
    )


async def _reachable(
    checks: ServiceChecks, endpoint: Endpoint, variable: str, wait_s: float
) -> bool:
    """CA file, DNS, TCP and TLS (for https), stopping at the first failure."""
    ca = endpoint.ca_file
    check_files(checks, [CertFile("OPENSEARCH_CA_FILE", ca)] if ca else [])
    parts = urlsplit(endpoint.url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if checks.blocked or not await check_dns(checks, [host], variable):
        return False
    if not await check_tcp(checks, [(host, port)], variable, wait_s):
        return False
    if parts.scheme != "https":
        checks.skip("tls", "http:// URL: not encrypted")
        return True
    verify = endpoint.verify()
    context = verify if isinstance(verify, ssl.SSLContext) else ssl.create_default_context()
    return await check_tls(checks, host, port, context, "OPENSEARCH_CA_FILE", wait_s)


async def _run(
    checks: ServiceChecks,
    section: Section[OpenSearchCheckSettings],
    variable: str,
    name: str,
    login_path: str,
    probe: Probe,
    wait_s: float,
) -> None:
    if section.settings is None:
        checks.fail("settings", section.error or "invalid", "fix the variable named")
        return
    try:
        endpoint = _endpoint(section.settings, variable, name)
    except EndpointError as exc:
        checks.fail("settings", str(exc), f"{variable} looks like https://host:port")
        return
    login = "with a user and password" if endpoint.auth else "without a login"
    checks.ok("settings", f"{variable}={endpoint.url} ({login})")
    if not await _reachable(checks, endpoint, variable, wait_s):
        return
    async with httpx.AsyncClient(
        base_url=endpoint.url, auth=endpoint.auth, verify=endpoint.verify(), timeout=wait_s
    ) as client:
        try:
            response = await client.get(login_path)
        except httpx.HTTPError as exc:
            checks.fail("auth", f"{type(exc).__name__}: {exc}", f"check {variable}")
            return
        if response.status_code in (401, 403):
            checks.fail(
                "auth",
                f"{name} answered {response.status_code} to the login",
                "check OPENSEARCH_USER and OPENSEARCH_PASSWORD (Aiven: avnadmin)",
            )
            return
        checks.ok("auth", f"{name} accepted the login (HTTP {response.status_code})")
        try:
            await probe(checks, client)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            # An unexpected answer belongs to the step that was being checked.
            checks.fail(
                checks.pending(), f"{type(exc).__name__}: {exc}", f"is {variable} really {name}?"
            )


async def cluster_and_index(checks: ServiceChecks, client: httpx.AsyncClient) -> None:
    health = (await client.get("/_cluster/health")).raise_for_status().json()
    status = health["status"]
    detail = (
        f"cluster {health.get('cluster_name')}: {status}, {health.get('number_of_nodes')} node(s)"
    )
    if status == "red":
        checks.fail("cluster", detail, "some primary shards are unassigned: see the Aiven console")
        return
    checks.ok("cluster", detail)
    indices = await client.get(f"/_cat/indices/{INDEX_PATTERN}", params={"format": "json"})
    listed = indices.json() if indices.status_code == 200 else []
    if not listed:
        checks.fail(
            "index",
            f"no index matches {INDEX_PATTERN}",
            "is the OpenSearch sink connector running? (Aiven console → Kafka Connect)",
        )
        return
    count = (await client.get(f"/{INDEX_PATTERN}/_count")).raise_for_status().json()["count"]
    checks.ok("index", f"{len(listed)} index(es) match {INDEX_PATTERN}, {count} document(s)")


async def status_and_index_pattern(checks: ServiceChecks, client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/status")).raise_for_status().json()
    overall = body.get("status", {}).get("overall", {})
    state = overall.get("state", "unknown")
    version = body.get("version", {}).get("number", "?")
    if state not in ("green", "yellow"):
        checks.fail(
            "status",
            f"Dashboards {version}: {state} ({overall.get('title', '')})",
            "see the Dashboards status page; OpenSearch itself may be down",
        )
        return
    checks.ok("status", f"Dashboards {version}: {state}")
    found = (
        (
            await client.get(
                "/api/saved_objects/_find",
                params={
                    "type": "index-pattern",
                    "search_fields": "title",
                    "search": f'"{INDEX_PATTERN}"',
                },
            )
        )
        .raise_for_status()
        .json()
    )
    titles = [o.get("attributes", {}).get("title") for o in found.get("saved_objects", [])]
    if INDEX_PATTERN not in titles:
        checks.fail(
            "index_pattern",
            f"no index pattern {INDEX_PATTERN}",
            "create it with `clickstream-setup opensearch` (imports the saved objects)",
        )
        return
    checks.ok("index_pattern", f"index pattern {INDEX_PATTERN} present")
