"""Building the `spreadsheets.batchUpdate` requests of a commit.

Values go in as typed `userEnteredValue`s (stringValue, numberValue, boolValue): the API
stores a stringValue as text, never parsing it as a formula, which is the RAW behaviour the
SPEC requires. Changed cells of one column are grouped into runs of consecutive rows, so a
commit stays a handful of requests even when every row changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["COMMIT_KEY", "LEASE_KEY", "append_rows", "cell", "column_runs", "set_metadata"]

COMMIT_KEY = "stockbot.commit"
LEASE_KEY = "stockbot.lease"


def cell(value: object) -> dict[str, Any]:
    """A CellData with the value typed as Sheets stores it; None clears the cell."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"userEnteredValue": {"boolValue": value}}
    if isinstance(value, int | float):
        return {"userEnteredValue": {"numberValue": value}}
    return {"userEnteredValue": {"stringValue": str(value)}}


def column_runs(sheet_id: int, column: int, values: Mapping[int, object]) -> list[dict[str, Any]]:
    """updateCells requests setting `values` {0-based row: value} in one column."""
    requests: list[dict[str, Any]] = []
    rows = sorted(values)
    # Many cells hold the same value (Status "OK", small quantities): their RowData is built
    # once and shared. The JSON encoder writes a shared object as many times as it is listed,
    # and a first cycle of 100,000 rows then needs a few MB instead of hundreds (issue 8).
    shared: dict[tuple[type, object], dict[str, Any]] = {}

    def row_data(value: object) -> dict[str, Any]:
        key = (type(value), value)
        if key not in shared:
            shared[key] = {"values": [cell(value)]}
        return shared[key]

    start = 0
    while start < len(rows):
        end = start
        while end + 1 < len(rows) and rows[end + 1] == rows[end] + 1:
            end += 1
        first = rows[start]
        requests.append(
            {
                "updateCells": {
                    "start": {"sheetId": sheet_id, "rowIndex": first, "columnIndex": column},
                    "rows": [row_data(values[r]) for r in rows[start : end + 1]],
                    "fields": "userEnteredValue",
                }
            }
        )
        start = end + 1
    return requests


def append_rows(sheet_id: int, rows: Sequence[Sequence[object]]) -> list[dict[str, Any]]:
    """An appendCells request adding `rows` after the tab's last row with data."""
    if not rows:
        return []
    return [
        {
            "appendCells": {
                "sheetId": sheet_id,
                "rows": [{"values": [cell(v) for v in row]} for row in rows],
                "fields": "userEnteredValue",
            }
        }
    ]


def set_metadata(key: str, value: str, exists: bool) -> dict[str, Any]:
    """Create or update a spreadsheet-level developer-metadata entry."""
    metadata = {
        "metadataKey": key,
        "metadataValue": value,
        "location": {"spreadsheet": True},
        "visibility": "DOCUMENT",
    }
    if not exists:
        return {"createDeveloperMetadata": {"developerMetadata": metadata}}
    return {
        "updateDeveloperMetadata": {
            "dataFilters": [{"developerMetadataLookup": {"metadataKey": key}}],
            "developerMetadata": {"metadataKey": key, "metadataValue": value},
            "fields": "metadataValue",
        }
    }
