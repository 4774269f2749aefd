"""Generate the checked-in JSON Schema of the event from the model.

Run ``python -m clickstream_schema.jsonschema PATH`` to rewrite it; a test fails
when the file and the model drift apart.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from clickstream_schema.event import ClickEvent


def event_json_schema() -> dict[str, Any]:
    schema = ClickEvent.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def render() -> str:
    return json.dumps(event_json_schema(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    target = sys.argv[1] if len(sys.argv) > 1 else "shared/event.schema.json"
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(render())


if __name__ == "__main__":
    main()
