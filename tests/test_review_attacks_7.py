"""Review attacks 7: sets, per-marketplace display and staff edits under mid-cycle mess."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.staff import at_commit, at_read, dimension, set_shop, stock
from tests.world import World


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[World]:
    yield from set_shop(tmp_path)


def _settle(w: World) -> None:
    assert w.sync().ok
    assert stock(w) == {"TEA-001": 10, "CUP-001": 7, "GIFT-001": 5}


# -- exactly once / no lost staff edits: a component's Stock edited at the re-read ------------
def test_no_lost_staff_edits_component_edited_at_reread_during_a_set_sale(shop: World) -> None:
    w = shop
    _settle(w)
    w.markets["rakuten"].place_order([("GIFT-001", 1)])
    at_read(w, 2, lambda: w.set_stock("TEA-001", 20))
    w.sync()
    w.sync()
    # staff set 20, the sale took 2 -> 18; cup 7-1 = 6; gift = min(18//2, 6) = 6
    assert stock(w) == {"TEA-001": 18, "CUP-001": 6, "GIFT-001": 6}
    assert [(r["SKU"], r["Change"]) for r in w.log("order")] == [("TEA-001", -2), ("CUP-001", -1)]
    assert w.markets["yahoo"].quantity("GIFT-001") == 6
    assert w.markets["rakuten"].quantity("TEA-001") == 18


# -- rows may move: the component rows sorted at the re-read --------------------------------
def test_rows_may_move_component_rows_sorted_at_reread_during_a_set_sale(shop: World) -> None:
    w = shop
    _settle(w)
    w.markets["rakuten"].place_order([("GIFT-001", 1)])

    def staff_sort() -> None:
        w.sheets.set_values(
            w.sheet_id, "Inventory", "A2:C3", [["CUP-001", "Cup", 7], ["TEA-001", "Sencha", 10]]
        )

    at_read(w, 2, staff_sort)
    w.sync()
    w.sync()
    assert stock(w) == {"TEA-001": 8, "CUP-001": 6, "GIFT-001": 4}
    assert w.log("manual") == []
    assert w.markets["yahoo"].quantity("GIFT-001") == 4
    assert w.markets["yahoo"].quantity("CUP-001") == 6


# -- rows may move: a row inserted above the components in the instant of the commit ----------
@pytest.mark.parametrize("op", ["insertDimension", "deleteDimension"])
def test_rows_may_move_at_commit_during_a_set_sale(shop: World, op: str) -> None:
    w = shop
    w.sheets.set_values(w.sheet_id, "Inventory", "A5:C5", [["X-1", "Other", 3]])
    for market in w.markets.values():
        market.add_item("X-1", 0)
    assert w.sync().ok
    w.markets["rakuten"].place_order([("GIFT-001", 1)])
    at = 1 if op == "insertDimension" else 4  # blank above TEA, or delete X-1 (below the set)
    at_commit(w, lambda: dimension(w, op, "ROWS", at))
    w.sync()
    w.sync()
    got = stock(w)
    assert (got["TEA-001"], got["CUP-001"], got["GIFT-001"]) == (8, 6, 4)
    assert all(r["Stock"] == "" for r in w.inventory() if not r["SKU"])
    assert w.row("GIFT-001")["Set"] == "TEA-001*2 + CUP-001"
    assert w.log("manual") == []
    assert w.markets["yahoo"].quantity("GIFT-001") == 4


# -- rows may move: the Set column moved at the re-read ------------------------------------
def test_rows_may_move_column_inserted_left_of_set_at_reread(shop: World) -> None:
    w = shop
    _settle(w)
    w.markets["rakuten"].place_order([("GIFT-001", 1)])
    at_read(w, 2, lambda: dimension(w, "insertDimension", "COLUMNS", 9))  # before Status
    w.sync()
    w.sync()
    assert stock(w) == {"TEA-001": 8, "CUP-001": 6, "GIFT-001": 4}
    assert all(r.get("", "") == "" for r in w.inventory())
    assert w.markets["yahoo"].quantity("GIFT-001") == 4


# -- a component row deleted at the re-read: the set order must not be half applied ----------
def test_exactly_once_component_row_deleted_at_reread(shop: World) -> None:
    w = shop
    _settle(w)
    w.markets["rakuten"].place_order([("GIFT-001", 1)])
    at_read(w, 2, lambda: dimension(w, "deleteDimension", "ROWS", 2))  # CUP-001
    w.sync()
    w.sync()
    # the cup left the sheet: the set is broken, its order held whole (no half application)
    assert w.log("order") == [] or len(w.log("order")) == 2
    orders = w.log("order")
    if not orders:
        assert stock(w)["TEA-001"] == 10
    # staff put the cup back
    w.sheets.set_values(w.sheet_id, "Inventory", "A4:C4", [["CUP-001", "Cup", 7]])
    w.sync()
    w.sync()
    assert [(r["SKU"], r["Change"]) for r in w.log("order")] == [("TEA-001", -2), ("CUP-001", -1)]
    assert stock(w)["TEA-001"] == 8


# -- staff edit of a set's Stock at the re-read --------------------------------------------
def test_set_stock_typed_over_at_reread_is_undone(shop: World) -> None:
    w = shop
    _settle(w)
    w.markets["yahoo"].place_order([("TEA-001", 2)])
    at_read(w, 2, lambda: w.set_stock("GIFT-001", 40))
    w.sync()
    w.sync()
    assert stock(w) == {"TEA-001": 8, "CUP-001": 7, "GIFT-001": 4}
    assert w.log("manual") == []
    assert w.markets["rakuten"].quantity("GIFT-001") == 4


# -- a per-marketplace display column inserted mid-cycle ------------------------------------
@pytest.mark.parametrize("moment", ["read", "commit"])
def test_rows_may_move_marketplace_display_column_inserted_mid_cycle(
    shop: World, moment: str
) -> None:
    w = shop
    _settle(w)
    w.markets["rakuten"].place_order([("TEA-001", 2)])

    def staff_add_column() -> None:
        dimension(w, "insertDimension", "COLUMNS", 3)  # left of Display
        w.sheets.set_value(w.sheet_id, "Inventory", "D1", "Yahoo display", raw=True)
        w.sheets.set_value(w.sheet_id, "Inventory", "D2", "3", raw=True)

    if moment == "read":
        at_read(w, 2, staff_add_column)
    else:
        at_commit(w, staff_add_column)
    w.sync()
    # whatever this cycle pushed, it came from the right cells
    assert w.markets["yahoo"].quantity("TEA-001") in (8, 3)
    assert w.markets["rakuten"].quantity("TEA-001") == 8
    assert w.row("TEA-001")["Yahoo display"] == "3"
    w.sync()
    assert stock(w) == {"TEA-001": 8, "CUP-001": 7, "GIFT-001": 4}
    assert w.markets["yahoo"].quantity("TEA-001") == 3
    assert w.markets["rakuten"].quantity("TEA-001") == 8
    assert w.markets["yahoo"].quantity("GIFT-001") == 4
    assert w.log("manual") == []


# -- the Set cell rewritten at the re-read during a set sale -------------------------------
def test_exactly_once_set_cell_rewritten_at_reread(shop: World) -> None:
    w = shop
    _settle(w)
    order = w.markets["rakuten"].place_order([("GIFT-001", 1)])
    at_read(w, 2, lambda: w.set_cell("GIFT-001", "K", "TEA-001*3 + CUP-001"))
    w.sync()
    w.sync()
    orders = [(r["SKU"], r["Change"]) for r in w.log("order")]
    tea = dict(orders)["TEA-001"]
    assert tea in (-2, -3) and dict(orders)["CUP-001"] == -1 and len(orders) == 2
    assert stock(w)["TEA-001"] == 10 + tea
    w.markets["rakuten"].cancel_order(order)
    w.sync()
    w.sync()
    assert stock(w)["TEA-001"] == 10 and stock(w)["CUP-001"] == 7
    assert [(r["SKU"], r["Change"]) for r in w.log("cancel")] == [("TEA-001", -tea), ("CUP-001", 1)]
