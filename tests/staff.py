"""What staff and operators do to a sheet at exact moments of a cycle, for whole-cycle tests.

Staff act through the Sheets stand-in (its Python accessors and its hooks, which run inside the
stand-in's lock just before a request is handled), never through the bot's own code.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.app import open_app
from bot.handover import StateMismatchError
from bot.ledger import LATER_FIELDS, TALLY_SQL, Changes
from bot.sheet.layout import column_letters
from bot.sync import Cycle
from tests.world import World, world

ROWS = [
    # SKU, Name, Stock, Display, Rakuten, Yahoo, Amazon, Shopify, Shown, Status
    ["TEA-001", "Sencha", 30, "+20", "", "", "", "", "", ""],
    ["TEA-002", "Gyokuro", 30, "-10", "", "", "", "", "", ""],
    ["TEA-003", "Matcha", 30, "3", "", "", "", "", "", ""],
    ["CUP-001", "Cup", 12, "", "cup-001:white", "", "", "", "", ""],
]
ITEMS = ("TEA-001", "TEA-002", "TEA-003", "cup-001:white")  # their Rakuten items


# Three products, the stories' usual shop (tests/conftest.py `shop`).
SHOP = [
    ["TEA-001", "Sencha", 10, "", "", "", "", "", "", ""],
    ["CUP-001", "Cup", 7, "", "", "", "", "", "", ""],
    ["POT-001", "Pot", 5, "", "", "", "", "", "", ""],
]


def rakuten_shop(tmp_path: Path) -> Iterator[World]:
    """A Rakuten world with `ROWS` in the sheet and their items on the store (a fixture body)."""
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(ROWS)
        for item in ITEMS:
            w.markets["rakuten"].add_item(item, 0)
        yield w


def shipped_order(w: World, channel: str) -> str:
    """TEA-001 with Stock 10 on `channel`, an order of 2 synced, then shipped and synced: its id.

    The start of the stories about orders closed long ago (pruned, archived, cancelled late).
    """
    w.create_sheet([["TEA-001", "", 10, "", "", "", "", "", "", ""]])
    store = w.markets[channel]
    store.add_item("TEA-001", 0)
    w.sync()
    order = store.place_order([("TEA-001", 2)])
    w.sync()
    store.ship(order)
    w.sync()
    return order


# SKU, Name, Stock, Display, Rakuten, Yahoo, Amazon, Shopify, Shown, Status, then Set (K)
SET_ROWS = [
    ["TEA-001", "Sencha", 10, "", "", "", "", "", "", ""],
    ["CUP-001", "Cup", 7, "", "", "", "", "", "", ""],
    ["GIFT-001", "Gift box", 0, "", "", "", "", "", "", ""],
]


def set_shop(tmp_path: Path) -> Iterator[World]:
    """Rakuten and Yahoo with a gift box made of two TEA-001 and a CUP-001 (a fixture body)."""
    with world(tmp_path, ("rakuten", "yahoo")) as w:
        w.create_sheet(SET_ROWS)
        w.sheets.set_value(w.sheet_id, "Inventory", "K1", "Set", raw=True)
        w.sheets.set_value(w.sheet_id, "Inventory", "K4", "TEA-001*2 + CUP-001", raw=True)
        for market in w.markets.values():
            for item in ("TEA-001", "CUP-001", "GIFT-001"):
                market.add_item(item, 0)
        yield w


def dimension(w: World, op: str, dimension: str, start: int) -> None:
    """Staff insert or delete one row or column (0-based index) of the Inventory tab."""
    sheet_id = w.sheets.tab_ids(w.sheet_id)["Inventory"]
    rng = {"sheetId": sheet_id, "dimension": dimension, "startIndex": start, "endIndex": start + 1}
    w.sheets.batch_update(w.sheet_id, [{op: {"range": rng}}])


def at_read(w: World, n: int, action: Callable[[], Any]) -> None:
    """Run `action` just before the cycle's `n`th values read is handled."""
    reads: list[str] = []

    def hook(request: Any) -> None:
        if "values:batchGet" in request.path:
            reads.append(request.path)
            if len(reads) == n:
                w.sheets.remove_hook(hook)
                action()

    w.sheets.add_hook(hook)


def at_commit(w: World, action: Callable[[], Any]) -> None:
    """Run `action` just before the cycle's commit (its first write with Stock) is handled."""

    def hook(request: Any) -> None:
        if request.path.endswith(":batchUpdate") and b"stockbot.commit" in request.body:
            w.sheets.remove_hook(hook)
            action()

    w.sheets.add_hook(hook)


def stock(w: World) -> dict[str, Any]:
    """Stock by SKU, as the sheet shows it now."""
    return {str(r["SKU"]): r["Stock"] for r in w.inventory() if r["SKU"]}


def backup(src: Path, dst: Path) -> None:
    """Copy a state file the way an operator's backup would (SQLite's online backup).

    Both connections are closed here: `with` on a connection only ends its transaction, and
    a connection left open (freed only by the cycle collector, through its statement cache)
    keeps the state file's WAL mapped when a test then puts a file over it.
    """
    with closing(sqlite3.connect(src)) as a, closing(sqlite3.connect(dst)) as b:
        a.backup(b)


def checkpoint(state: Path) -> None:
    """What SQLite does by itself once the WAL holds 1,000 pages (every large push), by hand:
    a small sheet writes few pages a cycle."""
    other = sqlite3.connect(state)
    other.execute("PRAGMA wal_checkpoint(PASSIVE)")
    other.close()


def put_over(saved: Path, state: Path, how: str) -> None:
    """The operator's mistake: a file put over the state file of a running bot, by a plain
    copy (`cp`) or a rename of a copy onto its name (`mv`), not SQLite's backup API."""
    if how == "cp":
        shutil.copyfile(saved, state)
    else:
        copy = state.with_name("copy.sqlite3")
        shutil.copyfile(saved, copy)
        os.replace(copy, state)


def tally(state: Path) -> tuple[str | None, str]:
    """The state file's kept tally of its order tables, and what those tables sum to now."""
    db = sqlite3.connect(state)
    try:
        row = db.execute("SELECT value FROM meta WHERE key='tally'").fetchone()
        return (None if row is None else str(row[0]), str(db.execute(TALLY_SQL).fetchone()[0]))
    finally:
        db.close()


def pushed_quantities(state: Path, channel: str) -> dict[str, int]:
    """Every quantity the state file records as pushed to `channel`, settled or not."""
    db = sqlite3.connect(state)
    try:
        return dict(
            db.execute(
                "SELECT item, quantity FROM pushes WHERE channel=? AND quantity IS NOT NULL",
                (channel,),
            )
        )
    finally:
        db.close()


def run_on(w: World, cycle: Cycle, refused: list[str]) -> None:
    """The running bot's next two cycles (after a state file was put over it): a refusal of
    the file stops it and is collected; applying an order again is for the caller to see."""
    for _ in range(2):
        next_cycle(w)
        try:
            cycle.run()
        except StateMismatchError as exc:
            refused.append(str(exc))
            break


def restart(w: World, refused: list[str]) -> None:
    """Two fresh `sync`s after the bot was stopped, refusals collected."""
    for _ in range(2):
        try:
            w.sync()
        except StateMismatchError as exc:
            refused.append(str(exc))


def check_traced(w: World, trace: Callable[[str], None]) -> StateMismatchError | None:
    """`stockbot check` (the app opened without the state file's lock, a dry run) with an
    SQLite trace callback on its state file connection, so a test can land another bot's
    commit at an exact statement of its look; the refusal it raised, if any."""
    app = open_app(w.settings(), lock=False)
    try:
        app.ledger._db.set_trace_callback(trace)
        try:
            app.cycle.run(dry_run=True)
        except StateMismatchError as exc:
            return exc
        return None
    finally:
        app.ledger._db.set_trace_callback(None)
        app.close()


def put_lease(w: World, lease: dict[str, str], *, create: bool = False) -> None:
    """Another bot's lease entry appears on the sheet (created beside ours, or replacing it)."""
    value = json.dumps(lease)
    if create:
        request = {
            "createDeveloperMetadata": {
                "developerMetadata": {
                    "metadataKey": "stockbot.lease",
                    "metadataValue": value,
                    "location": {"spreadsheet": True},
                    "visibility": "DOCUMENT",
                }
            }
        }
    else:
        request = {
            "updateDeveloperMetadata": {
                "dataFilters": [{"developerMetadataLookup": {"metadataKey": "stockbot.lease"}}],
                "developerMetadata": {"metadataValue": value},
                "fields": "metadataValue",
            }
        }
    w.sheets.batch_update(w.sheet_id, [request])


# Three products at 4 on the shelf, for stories over the cycles of one long `run`.
RUN_SHOP = [
    ["TEA-001", "Sencha", 4, "", "", "", "", "", "", ""],
    ["CUP-001", "Cup", 4, "", "", "", "", "", "", ""],
    ["POT-001", "Pot", 4, "", "", "", "", "", "", ""],
]
RUN_SKUS = ("TEA-001", "CUP-001", "POT-001")


def run_shop(w: World) -> None:
    """`RUN_SHOP` in the sheet, each SKU listed on every marketplace of the world."""
    w.create_sheet(RUN_SHOP)
    for market in w.markets.values():
        for sku in RUN_SKUS:
            market.add_item(sku, 0)


def restock(w: World, value: int) -> None:
    """Staff set every product of `RUN_SHOP` to `value`."""
    for sku in RUN_SKUS:
        w.set_stock(sku, value)


def next_cycle(w: World, seconds: int = 150) -> None:
    """The time a `run` loop waits between two cycles passes, on every clock of the world."""
    w.time.offset += timedelta(seconds=seconds)
    w.time.advance(seconds)


class VMClock:
    """Moves the bot's wall clock alone: the VM's clock stepped by NTP or a bad RTC, while the
    marketplaces keep the right time. `World` shares one wall clock between the bot and the
    stand-ins; this points the stand-ins' clocks at the world's time less what the VM's clock
    was moved by, so their order times, `Date` headers and windows stay where they were."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.ahead = timedelta(0)
        for name, market in w.markets.items():
            setattr(market, "clock" if name == "amazon" else "now", self.market_now)

    def market_now(self) -> datetime:
        """The marketplaces' time: the world's, less the VM's error."""
        return self.w.time.now() - self.ahead

    def move(self, delta: timedelta) -> None:
        """The VM's clock steps by `delta` (back to right when `ahead` is zero again)."""
        self.ahead += delta
        self.w.time.offset += delta


def settled_then_restocked(w: World, cycle: Cycle, value: int = 10) -> None:
    """Two cycles of a `run` on `run_shop` (the second quiet: what the bot keeps of the stores
    says 4 for every item), then staff restock every product to `value`; the next cycle is due.
    """
    assert cycle.run().ok
    next_cycle(w)
    assert cycle.run().ok
    restock(w, value)
    next_cycle(w)


def row_number(w: World, sku: str) -> int:
    """The 0-based grid row (the header row is 0) holding `sku` now."""
    grid = w.sheets.get_values(w.sheet_id, "Inventory")
    at = [str(h) for h in grid[0]].index("SKU")
    return next(i for i, r in enumerate(grid) if i and len(r) > at and str(r[at]) == sku)


def put(w: World, sku: str, header: str, value: object, *, raw: bool | None = None) -> None:
    """Staff type into the column headed `header` of `sku`'s row, wherever both are now
    (`raw`: as typed, a text by default; False: as entered in the UI, so "=A1" is a formula)."""
    head = [str(h) for h in w.sheets.get_values(w.sheet_id, "Inventory")[0]]
    a1 = f"{column_letters(head.index(header))}{row_number(w, sku) + 1}"
    w.sheets.set_value(
        w.sheet_id, "Inventory", a1, value, raw=isinstance(value, str) if raw is None else raw
    )


def sort_rows(w: World, key: Callable[[dict[str, Any]], Any]) -> None:
    """Staff sort the Inventory rows (a paste of the same rows in a new order)."""
    grid = w.sheets.get_values(w.sheet_id, "Inventory")
    head = [str(h) for h in grid[0]]
    rows = [[*r, *[""] * (len(head) - len(r))] for r in grid[1:] if any(c != "" for c in r)]
    rows.sort(key=lambda r: key(dict(zip(head, r, strict=False))))
    w.sheets.set_values(w.sheet_id, "Inventory", "A2", rows, raw=True)


def wait_for(until: Callable[[], bool], seconds: float = 60) -> None:
    """Poll `until` (a background bot's log, an alert received) until it holds, or fail."""
    end = time.monotonic() + seconds
    while not until():
        assert time.monotonic() < end, "gave up waiting"
        time.sleep(0.05)


def asdict_text(changes: Changes) -> str:
    """A pending commit's text as `dataclasses.asdict` writes it, the later fields left out
    while empty (`Changes.to_json`: as versions before them wrote a commit)."""
    data = asdict(changes)
    for name, empty in LATER_FIELDS.items():
        if data[name] == empty:
            del data[name]
    return json.dumps(data, ensure_ascii=False)


def meta_value(state: Path, key: str) -> str | None:
    """A value of the state file's `meta` table, on a connection closed at once (an open one
    keeps the file's WAL mapped until the cycle collector frees it)."""
    with closing(sqlite3.connect(state)) as db:
        row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return None if row is None else str(row[0])
