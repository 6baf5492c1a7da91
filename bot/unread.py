"""Orders seen but never applied, carried across `stockbot reset-state`.

A reset starts every channel clean: orders placed before the new start count as already in
Stock. That is true of the orders the bot applied, and of the ones placed before it ever ran,
but not of an order the bot saw and could not apply yet (a marketplace refusing to read it, a
line held on a broken cell): nobody counted it. SPEC section 4 says such an order is asked
again, or reported, never dropped. So before a reset forgets the state file, it gathers them
(`gather`):

- from the state file, when one is there (restored from a backup, of another sheet): the
  orders each channel's cursor still asks again (`WindowCursor.retry`), and those an earlier
  reset carried over that no cycle has applied yet;
- from the sheet's Log tabs (the `Log` tab and every rolled-over `Log until …`), which outlive
  a lost state file: orders named on an `error` row.

An order is left out when anything shows it was applied, in part at least: an `order`,
`change` or `cancel` row of the same channel and order on any Log tab, or the state file
holding it. A retry list holds applied orders too (an open order whose re-read was refused),
and a backup can predate an order's application that the Log recorded. Carrying an applied
order over would apply it twice; so a line held beside applied ones is lost to a reset (README
Known limits).

Only the Log tells an applied order from an unapplied one (a retry list holds both), so when
a Log tab cannot be read (renamed away, a header it needs renamed: `read_log`) nothing is
carried over: every order found is named for staff to check by hand instead (review 34).

Only channels whose adapter reads an order by its id carry orders over (`READ_BY_ID`):
Amazon's fetch only filters its `lastUpdatedAfter` search by id, so an Amazon order is named
for staff to check by hand instead.

The ledger keeps what was gathered (`Ledger.reset(..., owed)`); the cycle reads those orders
again with the open ones, applies them however long before the clean start they were placed,
and names each once a day in the Log while it is not read (`bot.sync`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.errors import SheetStructureError
from bot.rules import cell_text
from bot.sheet.client import SheetClient
from bot.sheet.layout import (
    LOG_HEADERS,
    a1_title,
    column_letters,
    event_key,
    find_tabs,
    header_key,
    is_log_archive,
)

Owed = dict[str, set[str]]  # channel -> order ids

# The adapters that read an open order by its id (getOrder, orderInfo, nodes(ids:)).
READ_BY_ID = frozenset({"rakuten", "yahoo", "shopify"})
_APPLIED = frozenset({"order", "change", "cancel"})
LOG_TITLE = "Log"  # how a missing Log tab is named in `read_log`'s unreadable list


@dataclass
class LogOrders:
    """What the Log tabs say of orders: named on an `error` row, and applied."""

    named: Owed = field(default_factory=dict)
    applied: Owed = field(default_factory=dict)


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


def from_log(rows: Iterable[Sequence[object]]) -> LogOrders:
    """The orders Log rows, given as (event, channel, order) cells in either language, name
    on an `error` row and on a row that applied them."""
    found = LogOrders()
    for event, channel, order in rows:
        kind = event_key(event)
        order_id = cell_text(order)
        name = cell_text(channel).lower()
        if not order_id or not name or kind is None:
            continue
        if kind == "error":
            found.named.setdefault(name, set()).add(order_id)
        elif kind in _APPLIED:
            found.applied.setdefault(name, set()).add(order_id)
    return found


def gather(*sources: Owed, logged: LogOrders, known: Mapping[str, set[str]]) -> Owed:
    """The orders to carry over: any source's, less those the Log or the file (`known`,
    channel -> the order ids it holds) shows were applied."""
    owed: Owed = {}
    for source in (*sources, logged.named):
        for channel, ids in source.items():
            owed.setdefault(channel, set()).update(ids)
    for channel, ids in owed.items():
        ids -= logged.applied.get(channel, set())
        ids -= known.get(channel, set())
    return {ch: ids for ch, ids in owed.items() if ids}


def read_log(
    sheet: SheetClient, metadata: Mapping[str, Any]
) -> tuple[list[tuple[object, ...]], list[str]]:
    """Every Log tab's (event, channel, order) cells, found by their headers (two reads), and
    the Log tabs that could not be read: the `Log` tab missing, or a tab without one of those
    three headers. Only those three are needed: staff may rename or delete the others."""
    try:
        current = str(find_tabs(metadata)["log"]["title"])
    except SheetStructureError:
        return [], [LOG_TITLE]
    titles = [current] + [
        str(s["properties"]["title"])
        for s in metadata.get("sheets", [])
        if is_log_archive(s["properties"]["title"])
        and header_key(s["properties"]["title"]) != header_key(current)
    ]
    heads = sheet.read([f"{a1_title(t)}!1:1" for t in titles])
    ranges: list[str] = []
    unreadable: list[str] = []
    for title, head in zip(titles, heads, strict=True):
        columns = _columns(head[0] if head else [])
        if columns is None:
            unreadable.append(title)
            continue
        ranges += [f"{a1_title(title)}!{c}2:{c}" for c in map(column_letters, columns)]
    grids = sheet.read(ranges, by_columns=True) if ranges else []
    rows: list[tuple[object, ...]] = []
    for at in range(0, len(grids), 3):
        events, channels, orders = (grid[0] if grid else [] for grid in grids[at : at + 3])
        size = max(len(events), len(channels), len(orders))
        rows += [(_at(events, i), _at(channels, i), _at(orders, i)) for i in range(size)]
    return rows, unreadable


def _columns(header: Sequence[object]) -> list[int] | None:
    """Where the Event, Channel and Order headers stand (either language), or None."""
    where = {header_key(cell): i for i, cell in reversed(list(enumerate(header)))}
    found = [
        next((where[header_key(n)] for n in LOG_HEADERS[key] if header_key(n) in where), None)
        for key in ("event", "channel", "order")
    ]
    return None if None in found else [i for i in found if i is not None]


def _at(column: Sequence[object], index: int) -> object:
    return column[index] if index < len(column) else ""
