"""The staff-edit window (issue 8): what the bot does between the re-read and the commit.

When the re-read answers SKU and Stock exactly as the first read did, the cycle compares two
lists and sends a commit body encoded beforehand; anything else goes through the row-by-row
comparison, which finds moves and staff edits as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import positions
from bot.positions import Columns
from tests.staff import at_read, rakuten_shop, stock
from tests.world import World

COLUMNS = {"sku": 0, "stock": 2}


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    yield from rakuten_shop(tmp_path)


def _row_by_row_forbidden(*args: Any) -> bool:
    raise AssertionError("the re-read was compared row by row")


def test_a_quiet_cycle_commits_without_comparing_row_by_row(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A row without a SKU in the middle and a row with only a Name at the end: the first
    # read shows them as "" and short rows, the column read as "" and not at all.
    w.sheets.set_value(w.sheet_id, "Inventory", "B6", "a note", raw=True)
    w.sheets.set_value(w.sheet_id, "Inventory", "C6", 5)
    w.sheets.set_value(w.sheet_id, "Inventory", "B8", "end", raw=True)
    w.sync()
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    monkeypatch.setattr(positions, "_unchanged", _row_by_row_forbidden)
    assert w.sync().ok
    assert stock(w)["TEA-001"] == 28


def test_a_stock_edited_at_the_reread_is_still_kept(w: World) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    at_read(w, 2, lambda: w.set_stock("TEA-001", 100))
    assert w.sync().ok
    assert stock(w)["TEA-001"] == 98
    assert [(x["Change"], x["After"]) for x in w.log("manual")] == [(70, 100)]


def test_rows_sorted_at_the_reread_are_followed_by_their_sku(w: World) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("TEA-001", 2)])

    def swap() -> None:
        first, second = w.row("TEA-001"), w.row("TEA-002")
        for column, key in (("A", "SKU"), ("C", "Stock"), ("D", "Display")):
            w.sheets.set_value(w.sheet_id, "Inventory", f"{column}2", second[key], raw=True)
            w.sheets.set_value(w.sheet_id, "Inventory", f"{column}3", first[key], raw=True)

    at_read(w, 2, swap)
    assert w.sync().ok
    assert stock(w) == {"TEA-001": 28, "TEA-002": 30, "TEA-003": 30, "CUP-001": 12}
    assert w.log("manual") == []


def test_the_columns_are_compared_as_a_column_read_answers_them() -> None:
    grid = [["SKU", "Name", "Stock"], ["A", "", 3], ["", "x", ""], ["B", "", 4], ["", "end"]]
    basis = Columns.of(grid, COLUMNS)
    assert basis.same(["SKU", "A", "", "B"], ["Stock", 3, "", 4])
    assert not basis.same(["SKU", "A", "", "B"], ["Stock", 3, "", 5])
    assert not basis.same(["SKU", "B", "", "A"], ["Stock", 4, "", 3])
    assert not basis.same(["SKU", "A", "", "B", "C"], ["Stock", 3, "", 4])


def test_true_typed_over_1_is_a_change_although_python_finds_them_equal() -> None:
    basis = Columns.of([["SKU", "Name", "Stock"], [1, "", 1]], COLUMNS)
    assert basis.same(["SKU", 1], ["Stock", 1])
    assert not basis.same(["SKU", 1], ["Stock", True])
    assert not basis.same(["SKU", True], ["Stock", 1])
    was_true = Columns.of([["SKU", "Name", "Stock"], ["A", "", True]], COLUMNS)
    assert not was_true.same(["SKU", "A"], ["Stock", 1])
