"""Orders seen but never applied, carried across `stockbot reset-state`.

A reset starts every channel clean: orders placed before the new start count as already in
Stock. That is true of the orders the bot applied, and of the ones placed before it ever ran,
but not of an order the bot saw and could not apply yet (a marketplace refusing to read it, a
line held on a broken cell): nobody counted it. SPEC section 4 says such an order is asked
again, or reported, never dropped. So before a reset forgets the state file, it gathers them:

- from the state file, when one is there (restored from a backup, of another sheet): the
  orders each channel's cursor still asks again (`WindowCursor.retry`);
- from the sheet's Log tab, which outlives a lost state file: orders named on an `error` row
  with no `order`, `change` or `cancel` row of the same channel and order. An order with any
  such row was applied, in part at least, and is left out, so a reset never applies an order
  twice; a line held beside applied ones is lost to a reset (README Known limits).

The ledger keeps what was gathered (`Ledger.owe`) and the cycle reads those orders again with
the open ones and applies them however long before the clean start they were placed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.rules import cell_text
from bot.sheet.client import SheetClient
from bot.sheet.layout import a1_title, column_letters, event_key, find_tabs, map_columns

Owed = dict[str, set[str]]  # channel -> order ids

_APPLIED = frozenset({"order", "change", "cancel"})


def from_cursors(cursors: Mapping[str, str]) -> Owed:
    """The orders each stored cursor (channel -> its JSON text) still asks again."""
    owed: Owed = {}
    for channel, text in cursors.items():
        try:
            data = json.loads(text)
        except ValueError:
            continue  # a time-only cursor (Amazon, Shopify): nothing to ask again
        retry = data.get("retry") if isinstance(data, dict) else None
        if isinstance(retry, dict) and retry:
            owed.setdefault(channel, set()).update(str(n) for n in retry)
    return owed


def from_log(rows: Iterable[Sequence[object]]) -> Owed:
    """Orders named by an `error` row and by no row that applied them, from Log rows given
    as (event, channel, order) cells in either language."""
    named: Owed = {}
    applied: Owed = {}
    for event, channel, order in rows:
        kind = event_key(event)
        order_id = cell_text(order)
        if not order_id or kind is None:
            continue
        if kind == "error":
            named.setdefault(cell_text(channel).lower(), set()).add(order_id)
        elif kind in _APPLIED:
            applied.setdefault(cell_text(channel).lower(), set()).add(order_id)
    owed = {ch: ids - applied.get(ch, set()) for ch, ids in named.items() if ch}
    return {ch: ids for ch, ids in owed.items() if ids}


def read_log(sheet: SheetClient, metadata: Mapping[str, Any]) -> list[tuple[object, ...]]:
    """The Log tab's (event, channel, order) cells, found by their headers (two reads)."""
    title = str(find_tabs(metadata)["log"]["title"])
    quoted = a1_title(title)
    (head,) = sheet.read([f"{quoted}!1:1"])
    columns = map_columns("log", title, head[0] if head else [])
    wanted = [columns["event"], columns["channel"], columns["order"]]
    ranges = [f"{quoted}!{column_letters(c)}2:{column_letters(c)}" for c in wanted]
    events, channels, orders = (
        grid[0] if grid else [] for grid in sheet.read(ranges, by_columns=True)
    )
    size = max(len(events), len(channels), len(orders))
    return [(_at(events, i), _at(channels, i), _at(orders, i)) for i in range(size)]


def _at(column: Sequence[object], index: int) -> object:
    return column[index] if index < len(column) else ""


def merge(*parts: Owed) -> Owed:
    """One channel -> order ids map out of several."""
    owed: Owed = {}
    for part in parts:
        for channel, ids in part.items():
            owed.setdefault(channel, set()).update(ids)
    return owed
