"""The Log tab rolled over before it grows too big (SPEC.md section 7).

The Log is append-only and never rewritten, so a shop that runs for years fills it. When the
Log tab's grid (rows x columns, as the spreadsheet's metadata reports it in `gridProperties`)
reaches `LOG_ROLL_CELLS`, the cycle's commit renames it (`Log until 2026-11-30`) and adds a new
tab under the old title with the same header row. The rename, the new tab, its header row and
the cycle's first Log rows go in the same atomic `spreadsheets.batchUpdate` as the rest of the
commit and its marker: either all of it lands or none of it does, so a crash at any instant can
neither lose nor double a Log row across the rollover (rows of a lost report commit wait in the
state file's outbox and go to whichever tab is `Log` when they are sent).

Why 1,000,000 cells: Google allows 10 million cells per spreadsheet, and the Inventory tab of
100,000 products with their columns takes about 1.5 to 2 million of them. A Log tab of 1 million
cells (about 110,000 rows at 9 columns: months of a busy shop) stays quick to open and filter in
a browser and is one handy unit to archive. Renaming does not free cells: the old tabs still
count towards the 10 million, so from `WARN_TOTAL_CELLS` on the Log says, once a day, to move
old `Log until …` tabs to another spreadsheet.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from bot.i18n import _
from bot.sheet.layout import Tab
from bot.sheet.writes import cell

__all__ = [
    "GOOGLE_CELL_LIMIT",
    "LOG_ROLL_CELLS",
    "WARN_TOTAL_CELLS",
    "Rollover",
    "cells_warning",
    "plan_rollover",
    "total_cells",
]

GOOGLE_CELL_LIMIT = 10_000_000  # cells per spreadsheet, all tabs together
LOG_ROLL_CELLS = 1_000_000  # a Log tab this big is renamed and a new one started
WARN_TOTAL_CELLS = 8_000_000  # from here staff are asked to move old Log tabs out


@dataclass(frozen=True)
class Rollover:
    """The requests that rename the full Log tab and start a new one, and the new tab's id."""

    old_title: str  # what the full tab is renamed to
    sheet_id: int  # the new Log tab's id: the cycle's Log rows go there
    requests: list[dict[str, Any]]


def total_cells(metadata: Mapping[str, Any]) -> int:
    """Cells of every tab of the spreadsheet together, as Google counts them for its limit."""
    total = 0
    for sheet in metadata.get("sheets", []):
        grid = sheet.get("properties", {}).get("gridProperties", {})
        total += int(grid.get("rowCount", 0)) * int(grid.get("columnCount", 0))
    return total


def plan_rollover(
    metadata: Mapping[str, Any],
    log: Tab,
    header: Sequence[object],
    day: date,
    *,
    limit: int | None = None,
) -> Rollover | None:
    """The rollover of the Log tab when its grid holds `limit` cells or more, else None."""
    if log.rows * log.cols < (LOG_ROLL_CELLS if limit is None else limit):
        return None
    sheets = [s.get("properties", {}) for s in metadata.get("sheets", [])]
    titles = {str(p.get("title", "")).casefold() for p in sheets}
    ids = {int(p.get("sheetId", 0)) for p in sheets}
    base = _("{log} until {date}").format(log=log.title, date=day.isoformat())
    title, n = base, 1
    while title.casefold() in titles:  # a second rollover on the same day
        n += 1
        title = f"{base} ({n})"
    new_id = random.randrange(1, 2**31 - 1)
    while new_id in ids:
        new_id = random.randrange(1, 2**31 - 1)
    width = max(len(header), 1)
    requests: list[dict[str, Any]] = [
        {
            "updateSheetProperties": {
                "properties": {"sheetId": log.sheet_id, "title": title},
                "fields": "title",
            }
        },
        {
            "addSheet": {
                "properties": {
                    "sheetId": new_id,
                    "title": log.title,
                    "gridProperties": {
                        "rowCount": 2,
                        "columnCount": max(width, log.cols),
                        "frozenRowCount": 1,
                    },
                }
            }
        },
        {
            "updateCells": {
                "start": {"sheetId": new_id, "rowIndex": 0, "columnIndex": 0},
                "rows": [{"values": [cell(h) for h in header]}],
                "fields": "userEnteredValue",
            }
        },
    ]
    return Rollover(title, new_id, requests)


def cells_warning(cells: int, log_title: str) -> str:
    """The Log text that asks staff to move old Log tabs out of a nearly full spreadsheet."""
    return _(
        "The spreadsheet holds {cells} of the {limit} cells Google allows. Move old Log tabs "
        "('{log} until …') to another spreadsheet (right-click the tab, Copy to, then delete "
        "it here) before the bot can no longer write"
    ).format(cells=f"{cells:,}", limit=f"{GOOGLE_CELL_LIMIT:,}", log=log_title)
