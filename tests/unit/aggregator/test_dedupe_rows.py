"""A batch's dedupe rows, packed at once, are the rows of its ids, sorted by id."""

from __future__ import annotations

from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from clickstream_aggregator import dedupe_rows


@given(st.lists(st.uuids(), unique=True, max_size=300))
def test_packed_rows_are_each_ids_row_in_id_order(ids: list[UUID]) -> None:
    text = [str(i) for i in ids]
    packed = dedupe_rows.packed(text)
    # Each row: one field, 16 bytes long, the id's bytes (binary COPY's row format).
    rows = sorted(dedupe_rows.ROW.pack(1, 16, i.bytes) for i in ids)
    assert packed == b"".join(rows)
    # Sorted as PostgreSQL sorts uuid: by their bytes.
    assert dedupe_rows.event_ids(packed) == sorted(ids, key=lambda i: i.bytes)
