"""Review attacks 38: the kill-after-column-move repair (`git diff b8cac55 HEAD -- bot/`:
`Cycle._columns_after_stop`, `_moved_back`, `_staff_cells_taken`, `_held_before` (since
moved to bot/unchecked.py, without the underscore), the
`Changes.written_at/written_cells/written_lines` record, `Ledger.unchecked_columns`,
`columns_checked`, `LATER_FIELDS`, `positions.moved_columns`) with the owed cells it feeds
(bot/owed.py, `Cycle._put_back_owed`). Whole cycles of the real bot against the stand-ins
(Rakuten and Yahoo, eight products of Stock 10: `tests.test_review_attacks_19`); the kill -9
between the commit and its landing check is `Cycle._check_landing` raising (`_killed`); the
column moves are review 19's `MOVES` (SKU A, Name B, Stock C, Display D, Rakuten E, Yahoo F,
Amazon G, Shopify H, Shown I, Status J) and `_columns_moved` (P-1 sells 2, P-3 gets Display -2
so Shown 8, P-2 a broken Display so a Status text; staff recount P-2 and P-4 afterwards).

Attacks:
1. (new arrangement) Staff drag the SKU column from A to C, right of Stock, in the commit's
   instant: P-1's Stock write (8) lands in P-1's SKU cell. No kill: HELD (`_check_landing`
   puts "P-1" back). Killed: BROKE, then FIXED (fix9: `_sku_cells_taken` owes the SKU cell
   back by position, `Owed.check` the row's Stock cell holding what the state file expects;
   `locate` puts such cells back first). It was: P-1's row is renamed "8" for good:
   `_columns_after_stop` skips every write whose column is one of the bot's columns *now*
   (bot/sync.py:455-461, `ours` includes now["sku"]), on the premise that the suspects set
   Stock right and "the others [are] rewritten"; nothing rewrites a SKU cell, and
   `owed_cells` refuses SKU cells anyway (bot/owed.py:113). P-1 drops out of the sync (its
   sale, its orders), a new product "8" appears.
2. (f) Columns moved in the instant, killed, moved back; then staff set P-1's Display to a
   fixed "8" (the value the commit wrote to P-1's Stock). BROKE, then FIXED (fix9: a staff
   cell is owed only at a written index less a shift witnessed by a whole column holding
   every Shown, or every Status, the commit wrote; here only P-2's Status in Display, shift 6,
   so no write could reach P-1's Display). It was a lost staff edit:
   `_staff_cells_taken` (bot/sync.py:1446-1459) takes any headed staff cell of a written row
   that now holds a value the commit wrote to that row and held something else at the first
   read as a misplaced write, so staff's Display 8 is owed back to blank and put back by
   `_put_back_owed` in the same cycle; no `manual`/Log row says so. In the moved-back case
   the inserted columns that took the writes are gone, so nothing in a staff column is the
   bot's (the check cannot tell a staff edit from a landing).
3. (b) Columns moved in the instant (Shown on Rakuten), killed, then rows sorted Z-A before
   the next cycle. BROKE, then FIXED (fix9: each written row is found by its SKU where it
   is now). It was an oversell: the undo in `_columns_after_stop` looks at
   `sheet.grid[index]` by the commit's row index (bot/sync.py:463-466), which now holds another
   product, so P-1's and P-3's Rakuten ids keep the bot's Shown 8; both rows are refused as
   naming the same item and P-1's Yahoo keeps showing 10 while Stock is 8. Same root cause as
   review 19's attack 4 (still xfail), now for staff cells.
4. (d) An order for each hit product (P-1, P-3) arrives between the kill and the next cycle
   (Shown on Stock, Stock on Name, Stock on Shown). HELD: applied once on top of the Stock
   set back, no `manual` invented, stores right.
5. (e) A commit of more than 2,000 rows (`NARROW_MAX_ROWS`): the record keeps neither lines
   nor Shown/Status cells (bot/sync.py:915). Simulated by blanking both in the record the
   bot wrote, as review 19's `_drop_kept_lines` blanks the lines only (which is why review
   19's "names the staff cells" test passes: with the cells still kept it is not what the bot
   writes for such a commit). BROKE for five of the six arrangements: without `written_cells`
   `_columns_after_stop` knows only the Stock writes, so (shown_on_stock) P-3's Shown 8 in its
   Stock is taken as Stock (P-3 10 -> 8, the margin silently applied to real stock), and in the
   others (Status on Stock HELD: no Shown write lands in a staff column there) the
   Shown/Status writes left in staff columns (Shopify/Rakuten ids, Display) are
   neither put back nor named in the Log, although the `_columns_after_stop` docstring and
   README say those staff cells are named for staff to check; rows are refused and their
   stores left stale (P-1: Stock 8, Yahoo 10: oversell).
5b. (e, real) A real first cycle of 2,001 rows (Stock on Name in its instant, killed):
   BROKE the same way, confirmed without touching the record: all 2,001 Shopify id cells
   take the bot's Shown, every Shown cell an "OK", and not one Log row names them; every row
   is refused (one id shared) but Q-3, whose unique id "8" (its Shown) is another listing.
   Fix9: the staff columns now at the indexes a large commit wrote Shown or Status to are
   named whole in one Log row (no per-row data kept), so 5b's assertion (filled, or named in
   one Log row) now holds; the ids are still not put back and the rows still refused, so 5
   stays an expected failure (README Known limits and `_columns_after_stop` say so).
6. (h) `sync(dry_run=True)` (what `stockbot check` runs) after a kill with moved columns:
   HELD, nothing written to the sheet or the state file's meta.
7. (c) Two kills in a row, the first after a column move (Shown on Rakuten), the second with
   no move: HELD (the first record is consumed before the second commit; staff cells and
   Stock right, sale once).
8. (j) A column moved in the commit's instant with no kill, every arrangement: HELD, the next
   cycle makes at most 5 requests, repairs nothing, the record is gone.

Not attacked (time): Japanese headers (read only: `moved_columns` and `_held_before` compare
by `header_key` against `INVENTORY_HEADERS`, as the rest of the bot), restored backups and
`reset-state` (read only: `reset_state` deletes 'unchecked' with the record, bot/ledger.py:745,
so a reset after such a kill leaves misplaced writes in staff columns, as the reset "starts
afresh from the sheet as it is now").
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.staff import at_commit, put, stock
from tests.test_review_attacks_19 import (
    MARKETS,
    MOVES,
    SKUS,
    _applied,
    _columns_moved,
    _delete_columns,
    _killed,
    _manual,
    _move_column,
    _open,
    _put_order,
    _stock_kept,
    _stores_off,
)
from tests.world import World, world


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[World]:
    """Eight products of Stock 10 on Rakuten and Yahoo, synced once."""
    with world(tmp_path, MARKETS) as w:
        _open(w)
        yield w


def _grid(w: World) -> list[Any]:
    return w.sheets.get_values(w.sheet_id, "Inventory")


def _meta(w: World) -> dict[str, str]:
    with sqlite3.connect(w.env["STOCKBOT_STATE_PATH"]) as db:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())


def _ids_clean(w: World) -> None:
    """No marketplace id cell holds a bot value: every id blank, as `_open` left them."""
    for row in w.inventory():
        assert [row[h] for h in ("Rakuten", "Yahoo", "Amazon", "Shopify")] == [""] * 4, row


# -- 1. the SKU column dragged onto the Stock index ------------------------------------------
def _sku_on_stock(w: World, monkeypatch: pytest.MonkeyPatch, *, kill: bool) -> None:
    w.markets["rakuten"].place_order([("P-1", 2)])
    at_commit(w, lambda: _move_column(w, 0, 2))  # Name A, Stock B, SKU C
    if kill:
        _killed(w, monkeypatch)
    else:
        w.sync()
    assert w.sync().ok
    assert w.sync().ok
    assert sorted(stock(w)) == sorted(SKUS)
    assert stock(w) == dict.fromkeys(SKUS, 10) | {"P-1": 8}
    assert _manual(w) == []
    assert _applied(w, "P-1") == [-2]
    assert _stores_off(w) == {}


def test_sku_column_moved_onto_stock_in_the_commits_instant_is_repaired(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sku_on_stock(shop, monkeypatch, kill=False)


def test_sku_column_moved_onto_stock_then_killed_keeps_the_product(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sku_on_stock(shop, monkeypatch, kill=True)


# -- 2. moved back, then staff type the very value the commit wrote --------------------------
def test_moved_back_then_a_staff_edit_equal_to_a_written_value_is_kept(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = shop

    def after(w: World) -> None:
        _delete_columns(w, 2, 6)  # the inserted columns (and the writes they took) deleted
        put(w, "P-1", "Display", "8")

    _columns_moved(w, "shown_on_stock", "kill", monkeypatch, after=after)
    assert str(w.row("P-1")["Display"]) == "8", _grid(w)


def test_moved_back_then_a_staff_edit_of_another_value_is_kept(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = shop

    def after(w: World) -> None:
        _delete_columns(w, 2, 6)
        put(w, "P-1", "Display", "7")
        put(w, "P-1", "Name", "Sencha")

    _columns_moved(w, "shown_on_stock", "kill", monkeypatch, after=after)
    assert (str(w.row("P-1")["Display"]), w.row("P-1")["Name"]) == ("7", "Sencha")
    _stock_kept(w)


# -- 3. rows sorted as well as columns moved -------------------------------------------------
def test_columns_moved_then_killed_then_rows_sorted(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = shop
    _columns_moved(
        w, "shown_on_rakuten", "kill", monkeypatch, after=lambda w: _put_order(w, SKUS[::-1])
    )
    _ids_clean(w)
    _stock_kept(w)
    assert _stores_off(w) == {}


# -- 4. an order between the kill and the next cycle -----------------------------------------
@pytest.mark.parametrize("move", ["shown_on_stock", "stock_on_name", "stock_on_shown"])
def test_an_order_between_the_kill_and_the_next_cycle_is_applied_once(
    shop: World, monkeypatch: pytest.MonkeyPatch, move: str
) -> None:
    w = shop

    def after(w: World) -> None:
        w.markets["yahoo"].place_order([("P-1", 1)])
        w.markets["yahoo"].place_order([("P-3", 1)])

    _columns_moved(w, move, "kill", monkeypatch, after=after)
    assert stock(w) == dict.fromkeys(SKUS, 10) | {"P-1": 7, "P-2": 26, "P-3": 9, "P-4": 25}
    assert _manual(w) == [("P-2", 10, 26), ("P-4", 10, 25)]
    assert _applied(w, "P-1") == [-2, -1]
    assert _applied(w, "P-3") == [-1]
    assert _stores_off(w) == {}


# -- 5. a commit of more than NARROW_MAX_ROWS rows -------------------------------------------
def _as_a_large_commit(w: World) -> None:
    """The record as the bot writes it for a commit of over 2,000 rows (bot/sync.py:915): the
    column indexes and Stock rows only, no Shown/Status cells, no lines."""
    with sqlite3.connect(w.env["STOCKBOT_STATE_PATH"]) as db:
        (text,) = db.execute("SELECT value FROM meta WHERE key='unchecked'").fetchone()
        record = json.loads(text)
        assert record["at"] and record["cells"] and record["lines"]
        record["cells"], record["lines"] = {}, {}
        db.execute("UPDATE meta SET value=? WHERE key='unchecked'", (json.dumps(record),))


LARGE_BROKE = pytest.mark.xfail(
    strict=True,
    reason="a commit of over 2,000 rows keeps no Shown/Status cells (bot/sync.py:915), so "
    "_columns_after_stop knows only its Stock writes: Shown writes left in Stock are taken as "
    "Stock (P-3 10 -> 8), and Shown/Status writes left in staff columns are neither put back "
    "nor named in the Log (only Stock cells reach `named`, bot/sync.py:458-473): rows refused, "
    "stores stale (P-1 Stock 8, Yahoo 10: oversell)",
)


@pytest.mark.parametrize(
    "move",
    [pytest.param(m, marks=[] if m == "status_on_stock" else [LARGE_BROKE]) for m in MOVES],
)
def test_a_large_commit_killed_after_columns_moved(
    shop: World, monkeypatch: pytest.MonkeyPatch, move: str
) -> None:
    w = shop
    _columns_moved(w, move, "kill", monkeypatch, after=_as_a_large_commit)
    _stock_kept(w)
    assert _stores_off(w) == {}


def test_a_real_first_cycle_of_2001_rows_killed_after_columns_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    skus = [f"Q-{i}" for i in range(2001)]
    with world(tmp_path, MARKETS) as w:
        w.create_sheet([[s, "", 10, "-2" if s == "Q-3" else ""] + [""] * 6 for s in skus])
        for market in w.markets.values():
            for s in skus:
                market.add_item(s, 0)
        at_commit(w, lambda: MOVES["stock_on_name"](w))
        _killed(w, monkeypatch)
        w.sync()
        w.sync()
        filled = [r["SKU"] for r in w.inventory() if r["Shopify"] != ""]
        named = [e for e in w.log("error") if "check them" in str(e["Detail"])]
        assert filled == [] or len(named) == 1, (len(filled), named)


# -- 6. a dry run after the kill ------------------------------------------------------------
def test_a_dry_run_after_the_kill_writes_nothing(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = shop
    put(w, "P-3", "Display", "-2")
    w.markets["rakuten"].place_order([("P-1", 2)])
    at_commit(w, lambda: MOVES["shown_on_rakuten"](w))
    _killed(w, monkeypatch)
    grid, meta, log = _grid(w), _meta(w), w.log()
    w.sync(dry_run=True)
    assert (_grid(w), _meta(w), w.log()) == (grid, meta, log)


# -- 7. two kills in a row ------------------------------------------------------------------
def test_two_kills_in_a_row_after_a_column_move(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = shop

    def again(w: World) -> None:
        w.markets["yahoo"].place_order([("P-5", 1)])
        _killed(w, monkeypatch)
        # The first record was consumed: the second commit's own record, at today's columns.
        assert json.loads(_meta(w)["unchecked"])["at"]["stock"] == 6

    _columns_moved(w, "shown_on_rakuten", "kill", monkeypatch, after=again)
    _ids_clean(w)
    assert stock(w) == dict.fromkeys(SKUS, 10) | {"P-1": 8, "P-2": 26, "P-4": 25, "P-5": 9}
    assert _manual(w) == [("P-2", 10, 26), ("P-4", 10, 25)]
    assert (_applied(w, "P-1"), _applied(w, "P-5")) == ([-2], [-1])
    assert _stores_off(w) == {}


# -- 8. the normal path, no kill ------------------------------------------------------------
@pytest.mark.parametrize("move", list(MOVES))
def test_a_column_move_without_a_kill_costs_nothing_later(
    shop: World, monkeypatch: pytest.MonkeyPatch, move: str
) -> None:
    w = shop
    put(w, "P-3", "Display", "-2")
    w.markets["rakuten"].place_order([("P-1", 2)])
    at_commit(w, lambda: MOVES[move](w))
    assert w.sync().repaired
    assert _meta(w).get("unchecked", "") == ""
    for _ in range(2):
        report = w.sync()
        assert report.ok and report.repaired == []
        assert report.sheet_reads + report.sheet_writes <= 5
    assert _manual(w) == []
    assert _applied(w, "P-1") == [-2]
    assert _stores_off(w) == {}
