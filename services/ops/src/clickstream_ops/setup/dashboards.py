"""Import the shipped Dashboards saved objects (index pattern, visualizations, dashboard).

The import API with ``overwrite=true`` replaces objects by id, so stable ids
mean re-running never duplicates. Before importing, the objects are fetched
with ``_bulk_get``: when every one already holds our attributes and references,
nothing is written at all. Attributes that hold JSON in strings are compared
parsed (:func:`compare.decode_json_strings`), so Dashboards re-saving an object
in its own formatting does not count as a change.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import structlog

from clickstream_ops.setup.assets import SAVED_OBJECTS_FILE, Assets
from clickstream_ops.setup.client import ApiClient, Backoff, Json, SetupError, Sleep
from clickstream_ops.setup.compare import contains, decode_json_strings
from clickstream_ops.setup.endpoint import Endpoint

log = structlog.get_logger()

#: Dashboards refuses state-changing API calls without it (CSRF protection).
XSRF_HEADERS: Final = {
    "osd-xsrf": "true",
    # With the security plugin's multi-tenancy (Aiven), share the objects with every
    # user instead of the set-up user's private tenant; ignored where there is none.
    "securitytenant": "global",
}


async def import_saved_objects(
    endpoint: Endpoint, assets: Assets, *, backoff: Backoff, sleep: Sleep
) -> Literal["imported", "unchanged"]:
    async with ApiClient(endpoint, headers=XSRF_HEADERS) as dashboards:
        await dashboards.wait_until_ready("/api/status", _status_ok, backoff=backoff, sleep=sleep)
        if await _up_to_date(dashboards, assets.saved_objects):
            log.info("saved_objects_unchanged", count=len(assets.saved_objects))
            return "unchanged"
        reply = await dashboards.request(
            "POST",
            "/api/saved_objects/_import",
            params={"overwrite": "true"},
            files={
                "file": (
                    "clickstream-live.ndjson",
                    assets.saved_objects_ndjson,
                    "application/ndjson",
                )
            },
        )
    _check_import(reply.body)
    log.info("saved_objects_imported", count=reply.body.get("successCount"))
    return "imported"


def _status_ok(body: Json) -> bool:
    # 200 is enough: while starting, /api/status answers 503 (retried by the caller).
    return body is not None


async def _up_to_date(dashboards: ApiClient, objects: list[dict[str, Any]]) -> bool:
    wanted = [{"type": obj["type"], "id": obj["id"]} for obj in objects]
    reply = await dashboards.request("POST", "/api/saved_objects/_bulk_get", json=wanted)
    found = reply.body.get("saved_objects", []) if isinstance(reply.body, dict) else []
    current = {(obj.get("type"), obj.get("id")): obj for obj in found if "error" not in obj}
    for obj in objects:
        have = current.get((obj["type"], obj["id"]))
        if have is None or not contains(
            decode_json_strings(have.get("attributes")), decode_json_strings(obj["attributes"])
        ):
            return False
        if _refs(have) != _refs(obj):
            return False
    return True


def _refs(obj: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(ref["name"], ref["type"], ref["id"]) for ref in obj.get("references", [])}


def _check_import(body: Json) -> None:
    """Fail with one line when Dashboards rejected any object."""
    if not isinstance(body, dict):
        raise SetupError(f"saved objects import answered an unexpected body: {body!r:.200}")
    errors = body.get("errors") or []
    if body.get("success") is True and not errors:
        return
    details = "; ".join(_describe_error(error) for error in errors) or "no details given"
    raise SetupError(f"Dashboards rejected saved objects from {SAVED_OBJECTS_FILE}: {details}")


def _describe_error(error: dict[str, Any]) -> str:
    what = error.get("error", {})
    kind = what.get("type", "error")
    extra = ""
    if kind == "missing_references":
        missing = what.get("references", [])
        extra = " " + ", ".join(f"{ref.get('type')}/{ref.get('id')}" for ref in missing)
    elif "message" in what:
        extra = f" {what['message']}"
    return f"{error.get('type')}/{error.get('id')} ({kind}{extra})"
