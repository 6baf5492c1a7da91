"""A stop made visible in the sheet (SPEC.md section 4, "Nothing silent").

When the bot stops on a configuration or sheet-structure error, nothing of the cycle is
written; only the stop itself is, where those tabs are intact: the reason in the Channels tab's
`Last error` and one `error` row in the Log. A tab that is missing or lacks a header is left
alone (the stop may be about that very tab). One `spreadsheets.batchUpdate`, written as typed
values (never parsed as formulas), outside the commit protocol: it changes nothing the state
file tracks.

A stop may come before any cycle read the sheet (a setting is wrong), so `read_stop` works out
the sheet's language from the Inventory tab's row 1 in the same read as the Channels tab and
the Log's header: the stop's text is rendered after it, in that language (`bot.i18n.Later`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.errors import SheetStructureError
from bot.sheet.client import SheetClient
from bot.sheet.layout import (
    TABS,
    a1_title,
    event_name,
    header_key,
    map_columns,
    sheet_language,
)
from bot.sheet.writes import append_rows, column_runs

__all__ = ["StopSheet", "read_stop", "record_stop"]

log = logging.getLogger("stockbot")


@dataclass(frozen=True)
class StopSheet:
    """What a stop can be written to, as one read found it, and the sheet's language."""

    tabs: dict[str, Mapping[str, Any]]  # "channels", "log" -> the tab's properties, if present
    grids: dict[str, list[list[Any]]]  # the whole Channels tab; the Log's row 1
    language: str  # `en` or `ja`


def read_stop(sheet: SheetClient, setting: str) -> StopSheet:
    """The tabs a stop is written to and the language (`setting`, or what the sheet says).

    One metadata request and one read: the Channels tab (a handful of rows), the Log's and the
    Inventory's row 1.
    """
    by_key = {
        header_key(s["properties"]["title"]): s["properties"]
        for s in sheet.metadata().get("sheets", [])
    }
    tabs: dict[str, Mapping[str, Any]] = {}
    for key in ("inventory", "channels", "log"):
        found = [by_key[header_key(n)] for n in TABS[key] if header_key(n) in by_key]
        if found:
            tabs[key] = found[0]
    keys = list(tabs)
    ranges = [a1_title(tabs[k]["title"]) + ("" if k == "channels" else "!1:1") for k in keys]
    grids = dict(zip(keys, sheet.read(ranges), strict=True)) if keys else {}
    inventory = tabs.pop("inventory", None)
    header = grids.pop("inventory", None) or [[]]
    if inventory is not None:
        title = str(inventory["title"])
    else:
        # No Inventory tab (the stop may be about it): a sheet whose other tabs have their
        # Japanese names (ログ, チャネル) is a Japanese sheet.
        japanese = any(header_key(p["title"]) == header_key(TABS[k][1]) for k, p in tabs.items())
        title = TABS["inventory"][1] if japanese else ""
    return StopSheet(tabs, grids, sheet_language(setting, header[0], title))


def record_stop(
    sheet: SheetClient, found: StopSheet, detail: str, channels: Sequence[str], stamp: str
) -> list[str]:
    """Write `detail` where the sheet can take it; return the tabs written to."""
    requests: list[dict[str, Any]] = []
    written: list[str] = []
    for key, tab in found.tabs.items():
        grid = found.grids.get(key, [])
        try:
            cols = map_columns(key, tab["title"], grid[0] if grid else [])
        except SheetStructureError:
            continue  # a tab without its headers is not intact: leave it as it is
        sheet_id = int(tab.get("sheetId", 0))
        if key == "channels":
            rows: dict[int, object] = {}
            for index in range(1, len(grid)):
                line = grid[index]
                name = header_key(line[cols["channel"]]) if cols["channel"] < len(line) else ""
                if name and (not channels or name in channels):
                    rows[index] = detail
            if rows:
                requests += column_runs(sheet_id, cols["last_error"], rows)
                written.append(tab["title"])
        else:
            entry: list[object] = [None] * (max(cols.values()) + 1)
            entry[cols["time"]] = stamp
            entry[cols["event"]] = event_name("error", found.language)
            entry[cols["detail"]] = detail
            requests += append_rows(sheet_id, [entry])
            written.append(tab["title"])
    if requests:
        sheet.batch_update(requests)
    return written
