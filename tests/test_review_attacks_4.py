"""A fourth hostile review: suspect products (bot.sync `_restore_suspects`), reset, the run loop.

Each test is named after the behaviour the SPEC promises and fails today for the reason in its
docstring. Whole cycles only: the real gspread client and the real adapters talk to the
stand-ins; staff act through the stand-ins and their hooks at exact moments of the cycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.errors import StockbotError
from tests.staff import at_commit, dimension, rakuten_shop, stock
from tests.world import World


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    yield from rakuten_shop(tmp_path)


def _a_row_deleted_in_the_commit_and_the_repair_refused(w: World, row: int) -> None:
    """Staff delete sheet row `row` + 1 in the instant of the commit; every repair is refused."""

    def staff_delete_a_row_and_the_network_drops() -> None:
        dimension(w, "deleteDimension", "ROWS", row)
        w.sheets.fail(503, times=3, match=":batchUpdate")

    at_commit(w, staff_delete_a_row_and_the_network_drops)
    with pytest.raises(StockbotError):
        w.sync()


def test_a_count_staff_type_over_a_misplaced_stock_is_kept_and_logged(w: World) -> None:
    """TEA-002's row is deleted in the instant of the commit and the repair is refused: CUP-001's
    Stock cell holds TEA-003's new value (28), and both products are *suspect*. Staff see 28
    cups, count them and type the real count, 11. `_restore_suspects` writes back the state's
    baseline (10) for every suspect whose Stock differs from it, without asking whether the
    cell still holds the value the bot misplaced there (the *unchecked* path does ask: `cell !=
    value`). The count is overwritten, no `manual` row, never pushed (SPEC 4, no lost staff
    edits). Fix: record with each suspect the value the misplaced write left in its cell (or
    the Stock before the commit), and restore only while the cell still holds it; any other
    value is a staff edit (logged `manual`) and the product stops being suspect."""
    w.sync()
    w.markets["rakuten"].place_order([("TEA-003", 2)])
    w.markets["rakuten"].place_order([("cup-001:white", 2)])
    _a_row_deleted_in_the_commit_and_the_repair_refused(w, 2)
    assert stock(w)["CUP-001"] == 28  # TEA-003's value, in CUP-001's row
    w.set_stock("CUP-001", 11)  # staff count the cups
    w.sync()
    assert stock(w)["CUP-001"] == 11
    assert [(r["SKU"], r["After"]) for r in w.log("manual")] == [("CUP-001", 11)]


def test_a_product_suspect_only_for_its_status_cell_keeps_later_restocks(w: World) -> None:
    """Staff type a bad Display for TEA-002, so the commit writes only TEA-002's Status; TEA-001
    is deleted in the instant of the commit, the Status lands in TEA-003's row and the repair is
    refused. `_check_landing` names TEA-002 and TEA-003 suspect. Neither Stock cell was touched,
    so the next cycles find Stock equal to the baseline, restore nothing, and drop only the
    SKUs they restored (`drop_suspects([*self._restored, *gone])`): both stay suspect for ever.
    Weeks later staff receive 20 Matcha and type 50; the bot "sets it back" to 30 (an `error`
    row blaming a misplaced write, no `manual` row, not pushed). Fix: once a cycle's commit
    lands right, drop every suspect whose row it found and checked (its Stock is then either
    restored or equal to the baseline), not only the restored ones."""
    w.sync()
    w.set_cell("TEA-002", "D", "lots")  # a Display the bot cannot read: only Status changes
    _a_row_deleted_in_the_commit_and_the_repair_refused(w, 1)
    w.sync()  # the network is back: the misplaced Status is set right
    w.sync()
    w.time.offset += timedelta(days=21)
    w.set_stock("TEA-003", 50)  # 20 Matcha received
    w.sync()
    assert stock(w)["TEA-003"] == 50
    assert [(r["SKU"], r["Change"]) for r in w.log("manual")] == [("TEA-003", 20)]
    assert not [r for r in w.log("error") if "set back" in str(r["Detail"])]


def test_cells_misplaced_into_a_blank_row_are_cleared_once_the_network_is_back(w: World) -> None:
    """TEA-002's row is deleted in the instant of the commit, so CUP-001's Stock, Shown and
    Status land in the blank row below the products; the repair is refused. The next cycle
    restores the suspects' Stock, and clears the blank row: the cells the failed repair still
    owed were kept in the state file with the suspects (`bot.owed`; the blank row named by the
    product row above it). It used to keep a stray Stock 10 and Shown 10 for ever, flagged
    "SKU is empty" every cycle, a broken row staff never made."""
    w.sync()
    w.markets["rakuten"].place_order([("TEA-003", 2)])
    w.markets["rakuten"].place_order([("cup-001:white", 2)])
    _a_row_deleted_in_the_commit_and_the_repair_refused(w, 2)
    w.sync()  # the network is back
    assert stock(w) == {"TEA-001": 30, "TEA-003": 28, "CUP-001": 10}
    assert [r for r in w.inventory() if not r["SKU"] and any(r.values())] == []
