"""A stop made visible in the sheet (SPEC.md section 4, "Nothing silent").

When the bot stops on a configuration or sheet-structure error, nothing of the cycle is
written; only the stop itself is, where those tabs are intact: the reason in the Channels tab's
`Last error` and one `error` row in the Log. A tab that is missing or lacks a header is left
alone (the stop may be about that very tab). One `spreadsheets.batchUpdate`, written as typed
values (never parsed as formulas), outside the commit protocol: it changes nothing the state
file tracks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from bot.errors import SheetStructureError
from bot.i18n import language
from bot.sheet.client import SheetClient
from bot.sheet.layout import TABS, event_name, header_key, map_columns
from bot.sheet.writes import append_rows, column_runs

__all__ = ["record_stop"]

log = logging.getLogger("stockbot")


def record_stop(sheet: SheetClient, detail: str, channels: Sequence[str], stamp: str) -> list[str]:
    """Write `detail` where the sheet can take it; return the tabs written to."""
    by_key = {
        header_key(s["properties"]["title"]): s["properties"]
        for s in sheet.metadata().get("sheets", [])
    }
    tabs = {}
    for key in ("channels", "log"):
        found = [by_key[header_key(n)] for n in TABS[key] if header_key(n) in by_key]
        if found:
            tabs[key] = found[0]
    if not tabs:
        return []
    keys = list(tabs)
    # The whole Channels tab (a handful of rows); only the Log's header row.
    quoted = [
        "'" + tabs[k]["title"].replace("'", "''") + "'" + ("!1:1" if k == "log" else "")
        for k in keys
    ]
    grids = dict(zip(keys, sheet.read(quoted), strict=True))
    requests: list[dict[str, Any]] = []
    written: list[str] = []
    for key in keys:
        grid = grids[key]
        try:
            cols = map_columns(key, tabs[key]["title"], grid[0] if grid else [])
        except SheetStructureError:
            continue  # a tab without its headers is not intact: leave it as it is
        sheet_id = int(tabs[key].get("sheetId", 0))
        if key == "channels":
            rows: dict[int, object] = {}
            for index in range(1, len(grid)):
                line = grid[index]
                name = header_key(line[cols["channel"]]) if cols["channel"] < len(line) else ""
                if name and (not channels or name in channels):
                    rows[index] = detail
            if rows:
                requests += column_runs(sheet_id, cols["last_error"], rows)
                written.append(tabs[key]["title"])
        else:
            entry: list[object] = [None] * (max(cols.values()) + 1)
            entry[cols["time"]] = stamp
            entry[cols["event"]] = event_name("error", language())
            entry[cols["detail"]] = detail
            requests += append_rows(sheet_id, [entry])
            written.append(tabs[key]["title"])
    if requests:
        sheet.batch_update(requests)
    return written
