"""Review attacks 37: today's work (`git diff 6cbe0b5 HEAD -- bot/`), attacked the way staff and
operators cause mess. Whole cycles of the real bot through its real client code against the
stand-ins (Rakuten and Yahoo, eight products of Stock 10: `tests.test_review_attacks_19`); a
failed repair is `tests.test_owed_cells._failed_repair` (four columns inserted left of Stock in
the commit's instant, every batchUpdate answering 503 from then on: P-1's Stock 8 in C3, its
Shown 8 in its Rakuten id I3, P-3's Shown 8 in I5, P-2's Status text in its Yahoo id J4), or a
variant of it. Pure rewrites are compared with the old code by hypothesis.

Attacks, owed cells (bot/owed.py, bot/sync.py `_put_back_owed`):
1. Staff sort the rows (Z to A) between the failed repair and the retry. HELD: every owed
   cell is found under its product's row and put back.
2. Staff rename P-1's SKU (a typo fixed) before the retry. BROKE: the owed cells of P-1's row
   are dropped silently (`locate` finds no row named P-1: bot/owed.py:134-140), so the bot's 8
   stays in P-1X's Rakuten id and the next cycles push P-1X's quantity to Rakuten item "8",
   another listing. FIXED IN PART the same day: each lost cell is named once in the Log, with
   the bot's value and what to type back (`bot.owed.lost_text`); still a strict xfail, since
   nothing puts them back.
2b. Staff retype the header "Rakuten" as "rakuten " (the same column to the bot, SPEC 2)
   before the retry. BROKE: `locate` compares header text exactly (bot/owed.py:138), drops the
   owed cell silently, and P-1's quantity is pushed to Rakuten item "8" (50 -> 8). FIXED the
   same day: headers compared by `header_key`.
3. Staff copy P-3's row (a duplicate SKU) before the retry, then delete the copy. HELD: kept
   while the SKU is in two rows, put back once one row is left.
4. Staff delete the inserted column that held P-1's Stock 8 before the retry. HELD: the
   cell is gone, the others are put back where they are now.
5. The put-back fails (three 503s) and the cycle's own commit then lands. BROKE: the cycle
   goes on with the grid as read (bot/sync.py:361-365 returns, then `parse_inventory` at
   bot/sync.py:258 reads P-1's Rakuten id from the cell still holding the bot's Shown 8), so
   P-1's quantity is pushed to Rakuten item "8", another product's listing (50 -> 8). FIXED
   the same day: the rows still holding the bot's values are held back that cycle (a Status
   problem, nothing pushed, no order matched through the marketplace column: `_held_back`).
6. State file restored from a backup that holds owed cells (taken after the failed repair),
   bot refuses, operator runs `reset-state`. BROKE: `reset_state` deletes 'owed_cells'
   (bot/ledger.py:691-695) while it keeps owed orders; the bot's values stay in the staff
   columns for good (Rakuten ids "8" of P-1 and P-3: both rows then refused as naming the same
   item, P-1's later recount never pushed to Rakuten). FIXED the same day: the reset keeps
   them. (The test typed the recount into column C, where the inserted columns had pushed
   Stock away from; it now types by header.)
7. Odd staff values under the misplaced writes (boolean, float, Japanese text with U+2028, a
   NUL, a text "'0012"; Stock landing on Name). HELD: each put back exactly, same type.
8. A formula in the staff cell the bot's write landed on. BROKE (older than today: the
   immediate repair, `repair_cells`, does the same): the first read asks values only, so the
   put-back writes the formula's result as a plain value (bot/owed.py keeps `back` from the
   UNFORMATTED read; bot/sync.py:352 writes it RAW): staff's formula is lost for good.
9. Kill -9 after the put-back landed (Ledger.complete raising for it), then staff sort the
   rows before the restart. HELD: finished from the marker, nothing put back twice, the staff
   cells as staff left them, in the new order.
10. A first cycle's commit (Shown and Status to all 300 rows) lands on four inserted columns
    and its repair fails: 600 owed cells. HELD: one put-back, a Log row naming 20 cells and
    "and 580 more", staff columns as staff left them, every store right.
11. A blank row holding a product's misplaced writes (a row deleted in the commit's
    instant) is sorted to the bottom (Sheets sorts blank SKUs last) before the retry. HELD in
    the sense that nothing lands in a product row (the anchor row + 1 now holds a SKU, so the
    cell is skipped); the bot's values are left in the blank row at the bottom (cosmetic).

Attacks, rewrites (hypothesis, old vs new):
12. `misplaced` against `git show 6cbe0b5:bot/positions.py` on random answers (several data
    blocks, overlapping, ragged rows, offsets past the SKU column). HELD.
13. Amazon's feed text against json.dumps of the old message dicts for any SKU text and
    quantities. HELD.
14. Yahoo `_root_name` against `_xml(...).tag` on random, often malformed, XML. HELD.
15. `_inflated` on gzip (several members) and zlib streams cut at random points: the data
    back, no piece over DOWNLOAD_CHUNK. HELD.
16. orjson bodies (`encode_update`, `_json_for_sqlite`) against json.dumps: the same JSON
    values for any text without lone surrogates (NUL, U+2028, Japanese, floats, booleans), a
    NUL still detected. HELD. (A lone surrogate, which json.dumps escaped, makes orjson raise
    TypeError; not reachable through the Sheets stand-in, which cannot serve one either, nor
    through the real API as far as is known, so not written as a test.)

Read, not tested: `_report`'s pushed set, `push_all`'s recorded dict and `record_pushes`
(the shortcuts taken when nothing is typed, failed or stale give the same sets: `PushPlan.sku`
is `typed.get(item, item)`), `StockUpdate` no longer frozen (nothing assigns to one).

Not attacked (time): two bots racing on the put-back, a Log tab at Google's cell cap during
the put-back, the alerts' disk-full mark, the Shopify export listing, the EC key message
(review 35 covers it). Noticed by reading: the disk-full mark was read only when the incidents
file was missing, not beside an earlier version's short file; FIXED the same day (the mark is
added to what the file says: tests/test_review_attacks_32.py).
"""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import json
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.channels.amazon import _feed_content
from bot.channels.base import StockUpdate
from bot.channels.shopify_bulk import DOWNLOAD_CHUNK, _inflated
from bot.channels.yahoo import _root_name, _xml
from bot.cli import cmd_reset_state
from bot.errors import StockbotError
from bot.handover import StateMismatchError
from bot.ledger import _json_for_sqlite
from bot.positions import Writes, misplaced
from bot.sheet.client import encode_update
from bot.sheet.layout import Tab
from tests.staff import at_commit, backup, dimension, put, rakuten_shop, row_number, stock
from tests.test_amazon import old_feed_text
from tests.test_owed_cells import (
    _cell,
    _failed_repair,
    _grid,
    _network_back,
    _owed,
    _put_back_rows,
    _staff_cells,
    stopped_after_the_put_back,
)
from tests.test_review_attacks_4 import _a_row_deleted_in_the_commit_and_the_repair_refused
from tests.test_review_attacks_19 import (
    MARKETS,
    MOVES,
    _applied,
    _open,
    _order,
    _put_order,
    _stores_off,
)
from tests.world import World, world


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[World]:
    """Eight products of Stock 10 on Rakuten and Yahoo, synced once."""
    with world(tmp_path, MARKETS) as w:
        _open(w)
        yield w


def _settled(w: World) -> None:
    assert w.sync().ok
    assert w.sync().ok


# -- 1. rows sorted before the retry --------------------------------------------------------
def test_owed_cells_follow_their_rows_through_a_sort(shop: World) -> None:
    w = shop
    moved = _failed_repair(w)
    _network_back(w)
    order = list(reversed(_order(w)))
    _put_order(w, order)
    _settled(w)
    by_sku = {str(line[0]): line for line in moved[1:]}
    expected = [moved[0], *(by_sku[s] for s in order)]
    assert _staff_cells(_grid(w), moved[0]) == _staff_cells(expected, moved[0])
    assert _owed(w) == []
    assert len(_put_back_rows(w)) == 1
    assert _applied(w, "P-1") == [-2]
    assert _stores_off(w) == {}


def _shown_in_rakuten_id(w: World) -> None:
    """P-1 sells 2; its Shown 8 lands in its Rakuten id (I3) and the repair fails."""
    w.markets["rakuten"].place_order([("P-1", 2)])

    def staff() -> None:
        MOVES["shown_on_rakuten"](w)
        w.sheets.fail(503, times=1_000, match=":batchUpdate")

    at_commit(w, staff)
    with pytest.raises(StockbotError):
        w.sync()
    assert _cell(w, "I3") == 8
    assert [e[2] for e in _owed(w)] == ["Name", "Rakuten"]


# -- 2. a SKU renamed before the retry ------------------------------------------------------
def test_owed_cells_of_a_renamed_sku_are_named_in_the_log(shop: World) -> None:
    """Fixed in part after this review: each lost cell gets a Log row saying where it was,
    the bot's wrong value and what to type back; the cells are then forgotten."""
    w = shop
    _failed_repair(w)
    _network_back(w)
    put(w, "P-1", "SKU", "P-1X")
    assert w.sync().ok
    lost = [str(e["Detail"]) for e in w.log("error") if "could not be found" in str(e["Detail"])]
    assert len(lost) == 2, lost
    assert all("the row of P-1," in text and "holds 8" in text for text in lost), lost
    assert _owed(w) == []
    assert w.sync().ok  # said once
    assert len([e for e in w.log("error") if "could not be found" in str(e["Detail"])]) == 2


@pytest.mark.xfail(
    strict=True,
    reason="bot/owed.py `locate` names a product row only by the SKU it held; staff renamed "
    "P-1 to P-1X (a typo fixed) before the retry, so P-1's owed cells are lost: since this "
    "review a Log row names each one (`lost_text`, test below), but nothing puts them back, "
    "the bot's 8 stays in P-1X's Rakuten id (I3) and the inserted column (C3) until staff act "
    "on it, and the next cycles push P-1X's quantity to Rakuten item '8', another listing",
)
def test_owed_cells_of_a_renamed_sku_are_put_back_or_said(shop: World) -> None:
    w = shop
    w.markets["rakuten"].add_item("8", 50)  # a listing the sheet does not manage
    moved = _failed_repair(w)
    _network_back(w)
    put(w, "P-1", "SKU", "P-1X")
    w.sync()
    w.sync()
    assert w.markets["rakuten"].quantity("8") == 50
    assert (_cell(w, "C3"), _cell(w, "I3")) == ("", "")
    moved[2][0] = "P-1X"
    assert _staff_cells(_grid(w), moved[0]) == _staff_cells(moved, moved[0])


def test_an_owed_cell_under_a_header_retyped_in_another_case_is_put_back(shop: World) -> None:
    w = shop
    w.markets["rakuten"].add_item("8", 50)  # a listing the sheet does not manage
    _shown_in_rakuten_id(w)
    _network_back(w)
    w.sheets.set_value(w.sheet_id, "Inventory", "I1", "rakuten ", raw=True)
    _settled(w)
    assert _cell(w, "I3") == ""
    assert w.markets["rakuten"].quantity("8") == 50
    assert w.markets["rakuten"].quantity("P-1") == 8


# -- 3. a duplicate row, then the copy deleted ----------------------------------------------
def test_an_owed_cell_of_a_duplicated_sku_waits_for_one_row_then_is_put_back(shop: World) -> None:
    w = shop
    moved = _failed_repair(w)
    _network_back(w)
    grid = _grid(w)
    copy = grid[row_number(w, "P-3")]
    w.sheets.set_values(w.sheet_id, "Inventory", f"A{len(grid) + 1}", [copy], raw=True)
    w.sync()
    assert [e[0] for e in _owed(w)] == ["P-3"]  # kept while P-3 is in two rows
    assert _cell(w, "I5") == 8
    dimension(w, "deleteDimension", "ROWS", len(grid))  # staff delete the copy
    _settled(w)
    assert _owed(w) == []
    assert _staff_cells(_grid(w), moved[0]) == _staff_cells(moved, moved[0])
    assert _stores_off(w) == {}


# -- 4. the inserted column deleted before the retry ----------------------------------------
def test_an_owed_cell_whose_column_staff_deleted_owes_nothing(shop: World) -> None:
    w = shop
    moved = _failed_repair(w)
    _network_back(w)
    dimension(w, "deleteDimension", "COLUMNS", 2)  # the column that held P-1's 8 (C3)
    _settled(w)
    expected = [[c for i, c in enumerate(line) if i != 2] for line in moved]
    assert _staff_cells(_grid(w), expected[0]) == _staff_cells(expected, expected[0])
    assert _owed(w) == []
    assert _stores_off(w) == {}


# -- 5. the put-back fails and the cycle's commit lands -------------------------------------
def test_a_failed_put_back_pushes_nothing_from_the_cells_still_owed(shop: World) -> None:
    w = shop
    w.markets["rakuten"].add_item("8", 50)  # a listing the sheet does not manage
    _shown_in_rakuten_id(w)
    _network_back(w)
    w.sheets.fail(503, times=3, match=":batchUpdate")  # the put-back's three tries
    w.sync()
    assert w.markets["rakuten"].quantity("8") == 50
    _settled(w)
    assert w.markets["rakuten"].quantity("8") == 50
    assert w.markets["rakuten"].quantity("P-1") == 8


# -- 6. a backup holding owed cells, reset-state --------------------------------------------
def test_reset_state_keeps_the_cells_a_backup_still_owes(
    shop: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = shop
    moved = _failed_repair(w)
    state = Path(w.env["STOCKBOT_STATE_PATH"])
    backup(state, tmp_path / "backup.sqlite3")
    _network_back(w)
    w.sheets.fail(503, times=3, match=":batchUpdate")  # the put-back fails, the commit lands
    w.sync()
    assert len(_owed(w)) == 4
    backup(tmp_path / "backup.sqlite3", state)  # the operator restores last night's backup
    with pytest.raises(StateMismatchError):
        w.sync()
    assert cmd_reset_state(w.settings()) == 0
    capsys.readouterr()
    _settled(w)
    assert _staff_cells(_grid(w), moved[0]) == _staff_cells(moved, moved[0])
    put(w, "P-1", "Stock", 5)  # by its header: four columns were inserted left of Stock
    w.sync()
    assert w.markets["rakuten"].quantity("P-1") == 5


# -- 7, 8. odd values and a formula under the misplaced writes ------------------------------
ODD = {
    "P-2": True,
    "P-3": 1.5,
    "P-4": "緑茶\u2028玉露",
    "P-5": "a\x00b",
    "P-6": "'0012",
    "P-7": "=名前",
}


def _stock_on_name(w: World, names: dict[str, object], formula: str | None = None) -> None:
    """Staff Names (`formula` typed into P-1's), every product sells 1, and the commit's Stock
    lands on Name (a column inserted at A in its instant); the repair fails."""
    for sku, value in names.items():
        w.sheets.set_value(w.sheet_id, "Inventory", f"B{row_number(w, sku) + 1}", value, raw=True)
    if formula is not None:
        w.sheets.set_value(w.sheet_id, "Inventory", "B3", formula, raw=False)
    for sku in [*names, "P-1"]:
        w.markets["rakuten"].place_order([(sku, 1)])

    def staff() -> None:
        MOVES["stock_on_name"](w)
        w.sheets.fail(503, times=1_000, match=":batchUpdate")

    at_commit(w, staff)
    with pytest.raises(StockbotError):
        w.sync()
    _network_back(w)


def test_odd_staff_values_under_misplaced_writes_come_back_exactly(shop: World) -> None:
    w = shop
    _stock_on_name(w, ODD)
    _settled(w)
    grid = _grid(w)
    assert grid[0][:3] == ["", "SKU", "Name"]
    got = {str(line[1]): line[2] for line in grid[1:]}
    for sku, value in ODD.items():
        assert got[sku] == value and type(got[sku]) is type(value), sku
    assert _owed(w) == []
    assert stock(w) == {"P-0": 10, **dict.fromkeys([f"P-{i}" for i in range(1, 8)], 9)}


@pytest.mark.xfail(
    strict=True,
    reason="older than today (repair_cells does the same): the read the put-back works from "
    "holds values, not formulas, so `back` is the formula's result and bot/sync.py:352 writes "
    'it as a plain value; staff\'s formula in their Name column (=LEN(B3)&"x") is replaced '
    "by the text '3x' for good (a lost staff edit in a staff column)",
)
def test_a_staff_formula_under_a_misplaced_write_is_put_back_as_a_formula(shop: World) -> None:
    w = shop
    _stock_on_name(w, {}, formula='=LEN(A3)&"x"')
    _settled(w)
    formulas = w.sheets.get_values(w.sheet_id, "Inventory", render="FORMULA")
    assert formulas[2][:2] == ["", "P-1"]
    assert str(formulas[2][2]).startswith("=LEN(")  # =LEN(B3)&"x" once the column moved


# -- 9. kill after the put-back landed, then a sort -----------------------------------------
def test_a_kill_after_the_put_back_then_a_sort_puts_nothing_back_twice(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = shop
    moved = _failed_repair(w)
    _network_back(w)
    stopped_after_the_put_back(w, monkeypatch)
    order = list(reversed(_order(w)))
    _put_order(w, order)
    # Staff then type the bot's old value into P-3's Rakuten id (its real id happens to be 8).
    put(w, "P-3", "Rakuten", "8")
    w.markets["rakuten"].add_item("8", 3)
    _settled(w)
    by_sku = {str(line[0]): line for line in moved[1:]}
    by_sku["P-3"][8] = "8"
    expected = [moved[0], *(by_sku[s] for s in order)]
    assert _staff_cells(_grid(w), moved[0]) == _staff_cells(expected, moved[0])
    assert len(_put_back_rows(w)) == 1
    assert _owed(w) == []
    assert w.markets["rakuten"].quantity("8") == 8  # P-3's Stock 10 with Display -2


# -- 10. very many owed cells ---------------------------------------------------------------
def test_six_hundred_owed_cells_are_put_back_in_one_commit(tmp_path: Path) -> None:
    skus = [f"Q-{i:03d}" for i in range(300)]
    with world(tmp_path, MARKETS) as w:
        w.create_sheet([[s, "茶", 10, "", "", "", "", "", "", ""] for s in skus])
        for market in w.markets.values():
            for s in skus:
                market.add_item(s, 0)
        staff_grid: list[list[Any]] = []

        def staff() -> None:
            MOVES["shown_on_rakuten"](w)
            staff_grid.extend(_grid(w))
            w.sheets.fail(503, times=1_000, match=":batchUpdate")

        at_commit(w, staff)
        with pytest.raises(StockbotError):
            w.sync()
        assert len(_owed(w)) == 600
        assert {m.quantity(s) for m in w.markets.values() for s in skus} == {0}
        _network_back(w)
        _settled(w)
        rows = _put_back_rows(w)
        assert len(rows) == 1 and rows[0].endswith("and 580 more)")
        assert _staff_cells(_grid(w), staff_grid[0]) == _staff_cells(staff_grid, staff_grid[0])
        assert _owed(w) == []
        assert {m.quantity(s) for m in w.markets.values() for s in skus} == {10}


# -- 11. a blank row owed, sorted to the bottom ---------------------------------------------
def test_a_blank_row_owed_sorted_to_the_bottom_writes_into_no_product_row(
    tmp_path: Path,
) -> None:
    for w in rakuten_shop(tmp_path):
        w.sync()
        w.markets["rakuten"].place_order([("cup-001:white", 2)])
        _a_row_deleted_in_the_commit_and_the_repair_refused(w, 2)
        assert [e[:2] for e in _owed(w)] == [["CUP-001", 1]] * 2
        grid = _grid(w)
        blank = [g for g in grid[1:] if not g or g[0] == ""]
        products = sorted((g for g in grid[1:] if g and g[0] != ""), key=lambda g: str(g[0]))
        lines = [*products, *blank]
        width = max(len(g) for g in lines)
        w.sheets.set_values(
            w.sheet_id,
            "Inventory",
            "A2",
            [[*g, *[""] * (width - len(g))] for g in lines],
            raw=True,
        )
        before = {str(r["SKU"]): r for r in w.inventory() if r["SKU"]}
        assert w.sync().ok
        assert w.sync().ok
        after = {str(r["SKU"]): r for r in w.inventory() if r["SKU"]}
        for sku, row in before.items():
            for key in ("Name", "Display", "Rakuten", "Yahoo", "Amazon", "Shopify"):
                assert after[sku][key] == row[key], (sku, key)
        assert stock(w) == {"TEA-001": 30, "TEA-003": 30, "CUP-001": 10}
        assert _owed(w) == []


# -- 12. misplaced, old vs new --------------------------------------------------------------
def _old_positions() -> Any:
    text = subprocess.run(
        ["git", "show", "6cbe0b5:bot/positions.py"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    spec = importlib.util.spec_from_loader("old_positions_37", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_positions_37"] = module
    exec(compile(text, "old_positions_37", "exec"), module.__dict__)
    return module


OLD_POSITIONS = _old_positions()
HEADERS = ["SKU", "Name", "Stock", "Display", "Shown", "Status", "Memo", "在庫数", "商品コード"]
cell_value = st.one_of(
    st.sampled_from(HEADERS).map(lambda t: {"effectiveValue": {"stringValue": t}}),
    st.sampled_from(["P-1", "p-1", "P-2", "", " P-1 "]).map(
        lambda t: {"effectiveValue": {"stringValue": t}}
    ),
    st.integers(0, 3).map(lambda n: {"effectiveValue": {"numberValue": n}}),
    st.just({"effectiveValue": {"boolValue": True}}),
    st.just({}),
)
block = st.fixed_dictionaries(
    {
        "startRow": st.integers(0, 3),
        "startColumn": st.integers(0, 4),
        "rowData": st.lists(
            st.fixed_dictionaries({"values": st.lists(cell_value, max_size=7)}), max_size=5
        ),
    }
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    blocks=st.lists(block, max_size=4),
    sku_col=st.integers(0, 3),
    skus=st.dictionaries(st.integers(1, 6), st.sampled_from(["P-1", "P-2", "p-2"]), max_size=4),
)
def test_misplaced_is_the_old_function(
    blocks: list[dict[str, Any]], sku_col: int, skus: dict[int, str]
) -> None:
    others = [c for c in range(6) if c != sku_col]
    columns = {"sku": sku_col, "stock": others[0], "shown": others[1], "status": others[2]}
    tab = Tab("Inventory", 7, 100, 10, columns)
    writes = Writes(skus=dict(skus))
    answer = {"updatedSpreadsheet": {"sheets": [{"properties": {"sheetId": 7}, "data": blocks}]}}
    new = misplaced(answer, tab, writes)
    old = OLD_POSITIONS.misplaced(answer, tab, writes)
    assert (new.rows, new.columns) == (old.rows, old.columns)  # type: ignore[union-attr]


# -- 13. Amazon's feed text -----------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(st.tuples(st.text(), st.integers(0, 99_999)), max_size=12),
    seller=st.text(max_size=8),
)
def test_amazon_feed_is_json_dumps_of_the_old_dicts(
    items: list[tuple[str, int]], seller: str
) -> None:
    header = {"sellerId": seller, "version": "2.0", "issueLocale": "ja_JP"}
    chunk = [StockUpdate(item, quantity) for item, quantity in items]
    assert _feed_content(header, chunk) == old_feed_text(header, chunk)


# -- 14. Yahoo's root name ------------------------------------------------------------------
xml_piece = st.sampled_from(
    [
        "<ResultSet>",
        "</ResultSet>",
        "<ResultSet/>",
        "<Error>",
        "</Error>",
        '<y:ResultSet xmlns:y="urn:yahoo:api">',
        "</y:ResultSet>",
        "<y:Result>",
        '<ResultSet xmlns="urn:x">',
        "<Result>",
        "</Result>",
        "<!-- c -->",
        "<![CDATA[<x>]]>",
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<?xml version="1.0" encoding="Shift_JIS"?>',
        "<?pi data?>",
        "&amp;",
        "&nbsp;",
        "&#0;",
        "&#x41;",
        "東",
        "\u2028",
        "\x00",
        "\ufeff",
        " ",
        "\n",
        "<",
        ">",
        "a",
        '<a b="1" b="2"/>',
        "<!DOCTYPE ResultSet>",
    ]
)


@settings(max_examples=600, deadline=None)
@given(pieces=st.lists(xml_piece, max_size=8), encoding=st.sampled_from(["utf-8", "shift_jis"]))
def test_root_name_is_the_tag_of_the_full_parse(pieces: list[str], encoding: str) -> None:
    text = "".join(pieces)
    try:
        body = text.encode(encoding)
    except UnicodeEncodeError:
        body = text.encode("utf-8")
    response = httpx.Response(200, content=body)
    root = _xml(response)
    assert _root_name(response) == (None if root is None else root.tag)


# -- 15. gzip / zlib inflated from random cuts ----------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    members=st.lists(st.binary(max_size=3000), min_size=1, max_size=3),
    repeat=st.integers(1, 200),
    kind=st.sampled_from(["gzip", "zlib"]),
    cuts=st.lists(st.integers(0, 10_000), max_size=6),
)
def test_inflated_gives_the_file_back_from_any_cuts(
    members: list[bytes], repeat: int, kind: str, cuts: list[int]
) -> None:
    if kind == "gzip":
        data = b"".join(m * repeat for m in members)
        body = b"".join(gzip.compress(m * repeat) for m in members)
    else:
        data = members[0] * repeat
        body = zlib.compress(data)
    points = sorted({min(c, len(body)) for c in cuts} | {0, len(body)})
    raw = [body[a:b] for a, b in itertools.pairwise(points)]
    pieces = list(_inflated(raw))
    assert b"".join(pieces) == data
    assert all(len(p) <= DOWNLOAD_CHUNK for p in pieces)


# -- 16. orjson against json ----------------------------------------------------------------
no_surrogates = st.text(st.characters(blacklist_categories=("Cs",)))
json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | no_surrogates,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(no_surrogates, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(requests=st.lists(st.dictionaries(no_surrogates, json_value, max_size=3), max_size=4))
def test_encode_update_says_what_json_dumps_said(requests: list[dict[str, Any]]) -> None:
    body = encode_update(requests, {"includeSpreadsheetInResponse": True})
    old = json.dumps({"requests": requests, "includeSpreadsheetInResponse": True})
    assert json.loads(body.data) == json.loads(old)
    assert body.snapshot


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        st.lists(no_surrogates, max_size=5),
        st.dictionaries(no_surrogates, st.integers(-5, 99_999), max_size=5),
    )
)
def test_json_for_sqlite_says_what_json_dumps_said(value: Any) -> None:
    old = json.dumps(value, ensure_ascii=False)
    new = _json_for_sqlite(value)
    if "\\u0000" in old:
        assert new is None
    else:
        assert new is not None and orjson.loads(new) == json.loads(old)
