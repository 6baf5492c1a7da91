"""Review attacks 19, against 88e1f3b (an unchecked Stock write keeps the Stock its row held
before) and the `STOCK_HEADERS` part of 84dfb9f (a column move that put another column's write
into Stock cells marks those products suspect with the value that landed there). Whole cycles
of the real bot against the stand-ins, Rakuten and Yahoo, eight products of Stock 10 (`shop`).
The kill -9 between the commit and its landing check is `Cycle._check_landing` raising (the
commit was completed in the state file, as `Handover.recover` also leaves it); a failed repair
is every later batchUpdate answering 503 from the commit's instant on.

Attacks, change 1 (unchecked writes with their before value):
1. Three sales whose writes land on three swapped rows, kill; staff then type 30 over one
   product's own row, type exactly the before value (10) into another, leave the third.
   HELD: 30 kept and logged once; the before value typed back is indistinguishable from the
   untouched cell and is taken as untouched (SPEC exactly once: the sale is applied, 7; the
   cell did not change, so no edit was lost); the third restored; no invented `manual`.
2. The row that took the misplaced write already held that very value (its own Stock equals
   the value written, so equals its baseline). BROKE (older than 88e1f3b), FIXED.
3. Staff recount the row that took the misplaced write, after the kill. BROKE (older), FIXED.
4. Staff sort the rows again after the kill, before the next cycle. BROKE (older), FIXED.
5. A row deleted after the kill: the product meant (HELD) / the row that took its write
   (BROKE, older), FIXED.
6. The product meant copied into a second row after the kill (duplicates), then the copy
   deleted. HELD.
7. Two kills in a row: the second commit with no move (HELD) / with the rows swapped back in
   its instant (BROKE: restored rows save None, change 1's own choice; FIXED), then a staff
   recount.
8. A state file of an earlier version (3-element unchecked entries, written by hand) and a
   kill. HELD (read as None: set back from the state file; no edit typed, so nothing lost).

Attacks, change 2 (columns moved in the commit's instant), each of six arrangements: Shown on
Stock (6 columns inserted left of Stock), Status on Stock (7), Stock on Shown (Shown dragged
left of Stock), Stock on Name (a column inserted at A), Stock on Status (Status dragged left
of Stock), Shown on Rakuten (4 inserted). The cycle sells P-1, changes P-3's Shown (a margin)
and P-2's Status (a broken Display); staff recount P-2 and P-4 afterwards.
9. The repair fails (503), staff recount, two cycles: Stock, `manual` rows, orders. HELD for
   five arrangements (Shown on Stock fails with 84dfb9f's STOCK_HEADERS block removed);
   BROKE for Status on Stock (a regression of 84dfb9f: a Status text is saved as None,
   "unknown", so the recount typed over it is set back; it passes with the block removed),
   FIXED.
9b. Status on Stock, the repair fails, nobody types over the text: HELD (set back to 10, no
   `manual`; fails with the block removed: the text is left in Stock, unreadable).
10. Kill -9 instead of a failed repair (Shown on Stock, Stock on Name; Status on Stock, Stock
    on Shown, Stock on Status and Shown on Rakuten broke the same way in exploration). BROKE
    (older than both changes: nothing after a kill looks at where the columns were), FIXED for
    all six arrangements (Stock, `manual` rows, orders, staff columns, stores).
11. The same failed repair (Shown on Stock, Shown on Rakuten), then: do the staff columns
    (Name, Display, marketplace columns, the inserted ones) end holding what staff left
    there, and does every store show the Stock? BROKE (older than both changes; Stock on
    Name, Stock on Shown and Stock on Status leave "8" in Name/Shopify too). FIXED, for all
    six arrangements.

Fixed after this review (plain tests now; each failed before the fix):
- 2, 3, 5 (receiving row deleted): `_restore_suspects` found a misplaced write only by the
  very value at the very row index it was sent to, in another product's row whose baseline
  differs; when that row held the value anyway (2), was retyped (3) or deleted (5), the
  product meant was not suspect although its own cell still held the `before` the commit
  saved: its sale was lost and an invented `manual` 8 -> 10 logged. Now a write whose row no
  longer holds its product makes that product suspect with its saved `before`, which its cell
  holds unless staff typed over it (a write that landed right, rows sorted since, holds the
  value written and is left alone).
- 7 (swapped back): the second commit saved `before` None for the rows it restored; now the
  value the cell held before it was restored.
- 9 (Status on Stock): P-2 was suspect with None (its Status text landed in its Stock cell), so
  a recount typed over the text was set back; now suspect with the text, and a number typed
  over it is a staff edit.
- 11: a failed repair was never retried, so misplaced Shown, Status and Stock values stayed in
  staff columns for good. Now the cells it still owed are kept in the state file with the
  suspects, by the SKU of their row and the header of their column (`bot.owed`), and the next
  cycle that can write puts back those still holding the bot's value (tests/test_owed_cells.py).
  `_stores_off` now compares a product with a Display with what its Display shows.
- 10: the commit's unchecked record also keeps the column index of SKU and of each column it
  wrote, and its Shown and Status cells (`Changes.written_at`, `written_cells`). The next
  cycle's first read compares those indexes with the headers (`Cycle._columns_after_stop`, no
  request more): a product whose Stock write missed its column is suspect with the Stock its
  own cell kept; one whose Stock cell took a Shown or Status write, with that value; a write
  left in a column inserted meanwhile is owed blank (`bot.owed`, put back in that same cycle).
  A staff cell that took a write is owed back what the commit's first read held there, kept
  with the record for a commit of at most `NARROW_MAX_ROWS` rows (`Changes.written_lines`;
  a larger commit's staff cells are named in one Log row instead). Columns moved back before
  the next cycle keep their headers: the commit's own Shown and Status cells, not holding what
  it wrote, show the move (`sync._moved_back`, `_staff_cells_taken`). Added: every arrangement
  killed (Stock, staff columns, stores), with a staff recount of the two products hit, the
  inserted column cleared, the moved-back case, the lines not kept, a kill with no move (no
  repair, no request more), and state files of the version before (unchecked entries as a
  plain list; a pending row without the new fields).
- 4: P-1's own cell was found by its `before` (its sale kept), but the row that took its 8
  was known only by the row index written to, which after the sort held another product: P-5
  kept P-1's 8 as an invented `manual` 10 -> 8. Now, with the commit's columns found in place,
  the Shown and Status cells it wrote (`Changes.written_cells`, kept past the column check by
  `Ledger.columns_checked`) tell the row: a row at the index written to that lacks them did
  not take the write (`bot.unchecked.carries`: a staff edit sorted into that place is kept),
  and the one row elsewhere holding the Stock and Shown written there, a Shown its own Stock
  would not show, did (`took_after_sort`). Added: the receiving row recounted after the sort,
  another product typed the value written, two sold rows swapped then sorted. A write with no
  Shown beside it (the Shown did not change, e.g. a fixed Display) still cannot be told from a
  staff edit after a sort, and is left as one.

Not attacked: set products (a set row's Stock is recomputed every cycle, whatever is
restored), Amazon and Shopify adapters, the Japanese sheet.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from bot.errors import StockbotError
from bot.ledger import Changes, Ledger
from bot.rules import CellError, parse_display, shown_quantity
from bot.sync import Cycle
from tests.staff import at_commit, dimension, meta_value, put, row_number, stock
from tests.world import World, world

MARKETS = ("rakuten", "yahoo")
SKUS = [f"P-{i}" for i in range(8)]
OLDER = "older than 88e1f3b: "


def _open(w: World, stocks: dict[str, int] | None = None) -> None:
    got = stocks or {}
    w.create_sheet([[s, "", got.get(s, 10), ""] + [""] * 6 for s in SKUS])
    for market in w.markets.values():
        for s in SKUS:
            market.add_item(s, 0)
    assert w.sync().ok


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[World]:
    """Eight products of Stock 10 on Rakuten and Yahoo, synced once."""
    with world(tmp_path, MARKETS) as w:
        _open(w)
        yield w


class _Killed(Exception):
    """kill -9 right after the commit answered, before its landing was checked."""


def _killed(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """One cycle that stops right after its commit."""

    def killed(self: Cycle, *args: Any, **kwargs: Any) -> Any:
        raise _Killed

    with monkeypatch.context() as m:
        m.setattr(Cycle, "_check_landing", killed)
        with pytest.raises(_Killed):
            w.sync()


def _order(w: World) -> list[str]:
    return [str(r["SKU"]) for r in w.inventory() if r["SKU"] != ""]


def _put_order(w: World, order: list[str]) -> None:
    """Staff paste the product rows in this order (a sort): every cell moves with its row."""
    grid = w.sheets.get_values(w.sheet_id, "Inventory")
    width = len(grid[0])
    lines = {str(g[0]): [*g, *[""] * (width - len(g))] for g in grid[1:] if g and g[0] != ""}
    w.sheets.set_values(w.sheet_id, "Inventory", "A2", [lines[s] for s in order], raw=True)


def _swap(w: World, a: str, b: str) -> None:
    order = _order(w)
    i, j = order.index(a), order.index(b)
    order[i], order[j] = order[j], order[i]
    _put_order(w, order)


def _applied(w: World, sku: str) -> list[int]:
    return [int(e["Change"]) for e in w.log("order") if e["SKU"] == sku]


def _manual(w: World) -> list[tuple[str, Any, Any]]:
    return sorted((str(e["SKU"]), e["Before"], e["After"]) for e in w.log("manual"))


def _stores_off(w: World) -> dict[str, Any]:
    """Products whose store quantity is not what their Stock and Display show (no Display set:
    the Stock). A product whose Display cannot be read is not pushed (its Status says so)."""
    now = stock(w)
    shown: dict[str, int] = {}
    for row in w.inventory():
        if row["SKU"] in now:
            try:
                setting = parse_display(row["Display"] if row["Display"] != "" else None)
            except CellError:
                continue
            shown[row["SKU"]] = shown_quantity(now[row["SKU"]], setting)
    return {
        s: (now[s], *(w.markets[m].quantity(s) for m in MARKETS))
        for s, want in shown.items()
        if any(w.markets[m].quantity(s) != want for m in MARKETS)
    }


def _settle(
    w: World,
    stocks: dict[str, int],
    manual: list[tuple[str, Any, Any]] | None = None,
    applied: dict[str, list[int]] | None = None,
) -> None:
    """The next two cycles pass; then every Stock is 10 but `stocks`, the `manual` rows are
    exactly `manual`, each sale is applied once (P-1's 2 unless said) and every store shows
    the Stock."""
    assert w.sync().ok
    assert w.sync().ok
    assert _manual(w) == (manual or [])
    assert stock(w) == dict.fromkeys(SKUS, 10) | stocks
    for sku, changes in (applied or {"P-1": [-2]}).items():
        assert _applied(w, sku) == changes
    assert _stores_off(w) == {}


def _sell_swap_kill(
    w: World, monkeypatch: pytest.MonkeyPatch, sales: dict[str, int], swaps: list[tuple[str, str]]
) -> None:
    """Sales in the cycle; staff swap rows in its commit's round trip, so each sale's Stock
    write lands in the other product's row; the bot is killed before checking the landing."""
    for sku, quantity in sales.items():
        w.markets["rakuten"].place_order([(sku, quantity)])

    def staff() -> None:
        for a, b in swaps:
            _swap(w, a, b)

    at_commit(w, staff)
    _killed(w, monkeypatch)


# -- change 1: unchecked writes keep the Stock their row held before -----------------------------
def test_killed_after_swaps_keeps_a_recount_and_restores_the_rest(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = shop
    sales = {"P-1": 2, "P-2": 3, "P-3": 1}
    _sell_swap_kill(w, monkeypatch, sales, [("P-1", "P-5"), ("P-2", "P-6"), ("P-3", "P-7")])
    assert {s: stock(w)[s] for s in ("P-5", "P-6", "P-7")} == {"P-5": 8, "P-6": 7, "P-7": 9}
    put(w, "P-1", "Stock", 30)  # a recount of P-1's own row, over its untouched 10
    put(w, "P-2", "Stock", 10)  # typed exactly what the cell held: no change to keep
    applied = {"P-1": [-2], "P-2": [-3], "P-3": [-1]}
    _settle(w, {"P-1": 30, "P-2": 7, "P-3": 9}, [("P-1", 8, 30)], applied)


def test_killed_when_the_receiving_row_already_held_the_value_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with world(tmp_path, MARKETS) as w:
        _open(w, {"P-5": 8})
        _sell_swap_kill(w, monkeypatch, {"P-1": 2}, [("P-1", "P-5")])
        _settle(w, {"P-1": 8, "P-5": 8})


def test_killed_then_staff_recount_the_row_that_took_the_write(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = shop
    _sell_swap_kill(w, monkeypatch, {"P-1": 2}, [("P-1", "P-5")])
    put(w, "P-5", "Stock", 12)
    _settle(w, {"P-1": 8, "P-5": 12}, [("P-5", 10, 12)])


def test_killed_then_rows_sorted_before_the_next_cycle(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = shop
    _sell_swap_kill(w, monkeypatch, {"P-1": 2}, [("P-1", "P-5")])
    _put_order(w, SKUS[::-1])
    _settle(w, {"P-1": 8})


def test_killed_then_rows_sorted_and_the_receiving_row_recounted(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = shop
    _sell_swap_kill(w, monkeypatch, {"P-1": 2}, [("P-1", "P-5")])
    _put_order(w, SKUS[::-1])
    put(w, "P-5", "Stock", 12)
    _settle(w, {"P-1": 8, "P-5": 12}, [("P-5", 10, 12)])


def test_killed_then_rows_sorted_and_another_product_typed_the_value_written(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """P-6 recounted to 8, P-1's write: its Shown is still its own, so it is the staff's edit;
    P-5, which took the write and carries its Shown, is set back."""
    w = shop
    _sell_swap_kill(w, monkeypatch, {"P-1": 2}, [("P-1", "P-5")])
    _put_order(w, SKUS[::-1])
    put(w, "P-6", "Stock", 8)
    _settle(w, {"P-1": 8, "P-6": 8}, [("P-6", 10, 8)])


def test_killed_after_two_sold_rows_swapped_then_rows_sorted(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each row took the other's write: both are set back, no `manual`."""
    w = shop
    _sell_swap_kill(w, monkeypatch, {"P-1": 2, "P-2": 3}, [("P-1", "P-2")])
    assert {s: stock(w)[s] for s in ("P-1", "P-2")} == {"P-1": 7, "P-2": 8}
    _put_order(w, SKUS[::-1])
    _settle(w, {"P-1": 8, "P-2": 7}, applied={"P-1": [-2], "P-2": [-3]})


@pytest.mark.parametrize("deleted", ["meant", "receiving"])
def test_killed_then_a_row_deleted(
    shop: World, monkeypatch: pytest.MonkeyPatch, deleted: str
) -> None:
    w = shop
    _sell_swap_kill(w, monkeypatch, {"P-1": 2}, [("P-1", "P-5")])
    gone = "P-1" if deleted == "meant" else "P-5"
    dimension(w, "deleteDimension", "ROWS", row_number(w, gone))
    assert w.sync().ok
    assert w.sync().ok
    assert _manual(w) == []
    want = dict.fromkeys(SKUS, 10) | {"P-1": 8}
    del want[gone]
    assert stock(w) == want
    assert _applied(w, "P-1") == [-2]
    assert _stores_off(w) == {}


def test_killed_then_the_product_meant_copied_into_a_second_row_then_the_copy_deleted(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = shop
    _sell_swap_kill(w, monkeypatch, {"P-1": 2}, [("P-1", "P-5")])
    line = w.sheets.get_values(w.sheet_id, "Inventory")[row_number(w, "P-1")]
    w.sheets.set_values(w.sheet_id, "Inventory", "A11", [line], raw=True)  # below the table
    w.sync()
    dups = [r for r in w.inventory() if r["SKU"] == "P-1"]
    assert len(dups) == 2 and all(r["Status"] not in ("", "OK") for r in dups), dups
    w.sheets.set_values(w.sheet_id, "Inventory", "A11", [[None] * 10])
    _settle(w, {"P-1": 8})


@pytest.mark.parametrize("second", ["no_move", "swapped_back"])
def test_two_kills_in_a_row_then_a_staff_recount(
    shop: World, monkeypatch: pytest.MonkeyPatch, second: str
) -> None:
    w = shop
    _sell_swap_kill(w, monkeypatch, {"P-1": 2}, [("P-1", "P-5")])
    swaps = [("P-1", "P-5")] if second == "swapped_back" else []
    _sell_swap_kill(w, monkeypatch, {}, swaps)
    put(w, "P-1", "Stock", 30)
    _settle(w, {"P-1": 30}, [("P-1", 8, 30)])


def test_a_state_file_of_an_earlier_version_with_a_kill(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit's unchecked entries rewritten as an earlier version saved them (3 elements)."""
    w = shop
    _sell_swap_kill(w, monkeypatch, {"P-1": 2}, [("P-1", "P-5")])
    path = Path(w.env["STOCKBOT_STATE_PATH"])
    with sqlite3.connect(path) as db:
        (text,) = db.execute("SELECT value FROM meta WHERE key='unchecked'").fetchone()
        entries = json.loads(text)["rows"]  # with the column indexes since (attack 10)
        assert [e[1:] for e in entries] == [["P-1", 8, 10]]
        old = json.dumps([e[:3] for e in entries])
        db.execute("UPDATE meta SET value=? WHERE key='unchecked'", (old,))
    ledger = Ledger(path)
    assert [e[1:] for e in ledger.unchecked()] == [("P-1", 8, None)]
    ledger.close()
    _settle(w, {"P-1": 8})


# -- change 2: a column move that put another column's write into Stock cells --------------------
def _move_column(w: World, src: int, dst: int) -> None:
    """Staff drag one column to another place: every row's cell moves with it."""
    grid = w.sheets.get_values(w.sheet_id, "Inventory")
    width = max(len(g) for g in grid)
    out = []
    for g in grid:
        line = [*g, *[""] * (width - len(g))]
        line.insert(dst, line.pop(src))
        out.append([None if c == "" else c for c in line])
    w.sheets.set_values(w.sheet_id, "Inventory", "A1", out, raw=True)


def _insert_columns(w: World, at: int, n: int) -> None:
    sheet_id = w.sheets.tab_ids(w.sheet_id)["Inventory"]
    rng = {"sheetId": sheet_id, "dimension": "COLUMNS", "startIndex": at, "endIndex": at + n}
    w.sheets.batch_update(w.sheet_id, [{"insertDimension": {"range": rng}}])


# SKU A, Name B, Stock C, Display D, Rakuten E, Yahoo F, Amazon G, Shopify H, Shown I, Status J
MOVES: dict[str, Callable[[World], None]] = {
    "shown_on_stock": lambda w: _insert_columns(w, 2, 6),
    "status_on_stock": lambda w: _insert_columns(w, 2, 7),
    "stock_on_shown": lambda w: _move_column(w, 8, 2),
    "stock_on_name": lambda w: _insert_columns(w, 0, 1),
    "stock_on_status": lambda w: _move_column(w, 9, 2),
    "shown_on_rakuten": lambda w: _insert_columns(w, 2, 4),
}


def _columns_moved(
    w: World,
    move: str,
    how: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    recount: bool = True,
    after: Callable[[World], None] | None = None,
) -> list[Any]:
    """P-1 sells 2, P-3 gets a margin (Shown 8), P-2 a broken Display (a Status text); staff
    move columns in the commit's round trip; the repair fails ("fail") or the bot is killed
    before checking ("kill"); staff do `after`, then recount P-2 and P-4. The grid right after
    the move."""
    put(w, "P-2", "Display", "abc")
    put(w, "P-3", "Display", "-2")
    w.markets["rakuten"].place_order([("P-1", 2)])
    moved: list[Any] = []

    def staff() -> None:
        MOVES[move](w)
        moved.extend(w.sheets.get_values(w.sheet_id, "Inventory"))
        if how == "fail":
            w.sheets.fail(503, times=1_000, match=":batchUpdate")

    at_commit(w, staff)
    if how == "fail":
        with pytest.raises(StockbotError):
            w.sync()
        with w.sheets.lock:
            w.sheets.faults.clear()
    else:
        _killed(w, monkeypatch)
    if after is not None:
        after(w)
    if recount:
        put(w, "P-2", "Stock", 26)
    put(w, "P-4", "Stock", 25)
    w.sync()
    w.sync()
    return moved


def _stock_kept(w: World, *, recount: bool = True) -> None:
    p2 = 26 if recount else 10
    assert stock(w) == dict.fromkeys(SKUS, 10) | {"P-1": 8, "P-2": p2, "P-4": 25}
    manual = [("P-2", 10, 26)] if recount else []
    assert _manual(w) == [*manual, ("P-4", 10, 25)]
    assert _applied(w, "P-1") == [-2]


@pytest.mark.parametrize("move", MOVES)
def test_columns_moved_in_the_commits_instant_then_the_repair_fails(
    shop: World, monkeypatch: pytest.MonkeyPatch, move: str
) -> None:
    _columns_moved(shop, move, "fail", monkeypatch)
    _stock_kept(shop)


def test_a_status_text_in_stock_after_a_failed_repair_is_set_back_when_nobody_typed(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Status on Stock, the repair fails, nobody types over P-2's text: set back to 10, no
    `manual` row, no Status complaining of an unreadable Stock."""
    _columns_moved(shop, "status_on_stock", "fail", monkeypatch, recount=False)
    _stock_kept(shop, recount=False)
    assert str(shop.row("P-2")["Status"]).startswith('Display "abc"'), shop.row("P-2")


@pytest.mark.parametrize("move", ["shown_on_stock", "stock_on_name"])
def test_columns_moved_in_the_commits_instant_then_the_bot_is_killed(
    shop: World, monkeypatch: pytest.MonkeyPatch, move: str
) -> None:
    _columns_moved(shop, move, "kill", monkeypatch)
    _stock_kept(shop)


@pytest.mark.parametrize("move", MOVES)
def test_columns_moved_then_killed_every_arrangement_keeps_stock_and_staff_recounts(
    shop: World, monkeypatch: pytest.MonkeyPatch, move: str
) -> None:
    """Each of the six arrangements, killed: the Stock written where it belongs, no `manual`
    invented; staff then recount the two products the move hit (P-1, whose Stock write missed
    its column, and P-3, whose Shown may have landed in Stock): their values are kept."""

    def recount(w: World) -> None:
        put(w, "P-1", "Stock", 30)
        put(w, "P-3", "Stock", 12)

    _columns_moved(shop, move, "kill", monkeypatch, after=recount)
    assert stock(shop) == dict.fromkeys(SKUS, 10) | {"P-1": 30, "P-2": 26, "P-3": 12, "P-4": 25}
    want = [("P-1", 8, 30), ("P-2", 10, 26), ("P-3", 10, 12), ("P-4", 10, 25)]
    assert _manual(shop) == want
    assert _applied(shop, "P-1") == [-2]


def test_columns_moved_then_killed_a_column_inserted_meanwhile_is_blank_again(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shown on Stock: P-1's Stock write landed in one of the six columns inserted in the
    commit's instant; the next cycle clears it (the cell still holds the bot's 8)."""
    w = shop
    _columns_moved(w, "shown_on_stock", "kill", monkeypatch)
    grid = w.sheets.get_values(w.sheet_id, "Inventory")
    line = grid[row_number(w, "P-1")]
    assert all(c in ("", None) for c in line[2:8]), line


def _drop_kept_lines(w: World) -> None:
    """The commit's record as for a commit of over `NARROW_MAX_ROWS` rows: no lines kept."""
    with sqlite3.connect(w.env["STOCKBOT_STATE_PATH"]) as db:
        (text,) = db.execute("SELECT value FROM meta WHERE key='unchecked'").fetchone()
        record = json.loads(text)
        assert record["lines"]["rows"]
        record["lines"] = {}
        db.execute("UPDATE meta SET value=? WHERE key='unchecked'", (json.dumps(record),))


@pytest.mark.parametrize("move", ["stock_on_name", "shown_on_rakuten"])
def test_columns_moved_then_killed_names_the_staff_cells_whose_values_were_not_kept(
    shop: World, monkeypatch: pytest.MonkeyPatch, move: str
) -> None:
    """A staff column that took a bot value after a kill, when the commit wrote too many rows
    to keep their lines: what it held is not known, so the cells still holding the bot's value
    are named in one Log row for staff to check; Stock is set right all the same."""
    _columns_moved(shop, move, "kill", monkeypatch, after=_drop_kept_lines)
    _stock_kept(shop)
    named = [e["Detail"] for e in shop.log("error") if "check them" in str(e["Detail"])]
    assert len(named) == 1, named
    assert "I3" in named[0], named


def _delete_columns(w: World, at: int, n: int) -> None:
    sheet_id = w.sheets.tab_ids(w.sheet_id)["Inventory"]
    rng = {"sheetId": sheet_id, "dimension": "COLUMNS", "startIndex": at, "endIndex": at + n}
    w.sheets.batch_update(w.sheet_id, [{"deleteDimension": {"range": rng}}])


@pytest.mark.parametrize(
    ("move", "inserted"), [("shown_on_stock", (2, 6)), ("stock_on_name", (0, 1))]
)
def test_columns_moved_then_killed_then_moved_back_before_the_next_cycle(
    shop: World, monkeypatch: pytest.MonkeyPatch, move: str, inserted: tuple[int, int]
) -> None:
    """Staff delete the columns they inserted in the commit's instant before the next cycle:
    every header is where the commit wrote, but P-1's Stock write is gone with the deleted
    column (Stock on Name: it sits in Name) and (Shown on Stock) P-3's Shown 8 is in its Stock.
    The commit's own Shown and Status cells, not holding what it wrote, show it: no `manual`
    invented, and the staff cells it took (Name, Shopify) hold what staff left there again."""
    w = shop
    staff: dict[str, dict[str, Any]] = {}

    def back(w: World) -> None:
        _delete_columns(w, *inserted)

    def before(w: World) -> None:
        staff.update({r["SKU"]: r for r in w.inventory()})

    put(w, "P-1", "Name", "Sencha")
    before(w)
    _columns_moved(w, move, "kill", monkeypatch, after=back)
    _stock_kept(w)
    for row in w.inventory():
        was = staff[row["SKU"]]
        assert [row[h] for h in ("Name", "Rakuten", "Yahoo", "Amazon", "Shopify")] == [
            was[h] for h in ("Name", "Rakuten", "Yahoo", "Amazon", "Shopify")
        ], row
    assert _stores_off(w) == {}


def _sold_and_killed(w: World, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Any]:
    """P-1 sells 2 and the bot is killed after the commit: the state file and its unchecked
    record."""
    w.markets["rakuten"].place_order([("P-1", 2)])
    _killed(w, monkeypatch)
    path = Path(w.env["STOCKBOT_STATE_PATH"])
    return path, json.loads(meta_value(path, "unchecked") or "null")


def test_killed_after_a_commit_whose_columns_did_not_move_changes_nothing(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No move: the kept column indexes match the headers; no repair, no request more than a
    cycle after a kill made before, and the record is dropped."""
    w = shop
    path, record = _sold_and_killed(w, monkeypatch)
    assert record["at"] == {"sku": 0, "stock": 2, "shown": 8}
    errors = len(w.log("error"))
    report = w.sync()
    assert report.ok and report.repaired == []
    assert report.sheet_reads + report.sheet_writes <= 5
    assert len(w.log("error")) == errors
    with sqlite3.connect(path) as db:
        kept = dict(db.execute("SELECT key, value FROM meta").fetchall())
    assert kept.get("unchecked", "") == "" and kept.get("owed_cells", "") == ""
    _settle(w, {"P-1": 8})


def test_a_state_file_of_an_earlier_version_without_the_columns_with_a_kill(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unchecked record rewritten as the version before the column indexes saved it (a
    list of 4-element entries): read as before, the kill's sale kept."""
    w = shop
    path, record = _sold_and_killed(w, monkeypatch)
    rows = record["rows"]
    assert [e[1:] for e in rows] == [["P-1", 8, 10]]
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE meta SET value=? WHERE key='unchecked'", (json.dumps(rows),))
    ledger = Ledger(path)
    assert [e[1:] for e in ledger.unchecked()] == [("P-1", 8, 10)]
    assert ledger.unchecked_columns() is None
    ledger.close()
    _settle(w, {"P-1": 8})


def test_a_pending_commit_of_an_earlier_version_reads_without_the_columns() -> None:
    """A pending row saved before `written_at` and `written_cells` existed."""
    data = json.loads(Changes(written=[[3, "P-1", 8, 10]]).to_json())
    assert "written_at" not in data and "written_cells" not in data  # left out while empty
    back = Changes.from_json(json.dumps(data))
    assert (back.written, back.written_at, back.written_cells) == ([[3, "P-1", 8, 10]], {}, {})


@pytest.mark.parametrize("move", MOVES)
def test_a_failed_repair_leaves_no_bot_value_in_staff_columns(
    shop: World, monkeypatch: pytest.MonkeyPatch, move: str
) -> None:
    _staff_columns_kept(shop, move, "fail", monkeypatch)


@pytest.mark.parametrize("move", MOVES)
def test_a_kill_after_columns_moved_leaves_no_bot_value_in_staff_columns(
    shop: World, monkeypatch: pytest.MonkeyPatch, move: str
) -> None:
    """What the staff cells held is kept with the commit (`Changes.written_lines`): the cells
    the bot's writes took are put back by the next cycle, and every store shows the Stock."""
    _staff_columns_kept(shop, move, "kill", monkeypatch)
    _stock_kept(shop)


def _staff_columns_kept(w: World, move: str, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    moved = _columns_moved(w, move, how, monkeypatch)
    head = [str(h) for h in moved[0]]
    bot = {head.index(h) for h in ("Stock", "Shown", "Status")}
    now = w.sheets.get_values(w.sheet_id, "Inventory")
    width = len(head)

    def staff_cells(grid: list[Any]) -> list[list[Any]]:
        padded = [[*g, *[""] * (width - len(g))] for g in grid]
        return [[c for i, c in enumerate(g) if i not in bot] for g in padded]

    assert staff_cells(now) == staff_cells(moved)
    assert _stores_off(w) == {}
