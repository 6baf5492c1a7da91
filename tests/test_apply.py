"""The pure arithmetic of a cycle: order lines and staff edits into Stock changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.apply import plan
from bot.channels.base import FetchResult, Order, OrderLine
from bot.inventory import parse_inventory
from bot.ledger import LineState

COLUMNS = {"sku": 0, "stock": 1, "display": 2, "shown": 3, "status": 4}
START = datetime(2026, 11, 1, tzinfo=UTC)
LATER = datetime(2026, 11, 2, tzinfo=UTC)


def _rows(stock: int = 10):
    return parse_inventory(
        [["SKU", "Stock", "Display", "Shown", "Status"], ["A", stock, "", "", ""]], COLUMNS
    )


def _fetch(quantity: int, cancelled: bool = False) -> dict[str, FetchResult]:
    order = Order("o-1", LATER, (OrderLine("l-1", "A", quantity),), cancelled=cancelled)
    return {"yahoo": FetchResult([order], "cursor")}


def test_a_line_cancelled_a_second_time_is_logged_as_a_change_not_a_second_cancel() -> None:
    known = LineState("yahoo", "o-1", "l-1", "A", "A", target=2, applied=2, cancelled=True)
    result = plan(
        _rows(8),
        {"A": 8},
        _fetch(2, cancelled=True),
        {"yahoo": START},
        lambda ch, oid: {"l-1": known},
        [],
    )
    assert [(e.event, e.change) for e in result.events] == [("change", 2)]


def test_first_cancel_is_logged_as_cancel_and_remembered() -> None:
    known = LineState("yahoo", "o-1", "l-1", "A", "A", target=2, applied=2)
    result = plan(
        _rows(8),
        {"A": 8},
        _fetch(2, cancelled=True),
        {"yahoo": START},
        lambda ch, oid: {"l-1": known},
        [],
    )
    assert [(e.event, e.change) for e in result.events] == [("cancel", 2)]
    assert result.changes.lines[0].cancelled
    assert result.stock == {1: 10}


def test_an_order_placed_before_the_clean_start_is_ignored() -> None:
    early = Order("o-0", datetime(2026, 10, 31, tzinfo=UTC), (OrderLine("l", "A", 3),))
    result = plan(
        _rows(),
        {"A": 10},
        {"yahoo": FetchResult([early], "c")},
        {"yahoo": START},
        lambda ch, oid: {},
        [],
    )
    assert result.events == [] and result.stock == {}


def test_a_staff_edit_and_an_order_chain_before_and_after() -> None:
    result = plan(_rows(15), {"A": 10}, _fetch(4), {"yahoo": START}, lambda ch, oid: {}, [])
    assert [(e.event, e.change, e.before, e.after) for e in result.events] == [
        ("manual", 5, 10, 15),
        ("order", -4, 15, 11),
    ]


# -- issue 6: copied rows, renamed SKUs, formulas ------------------------------------------------
HEAD = ["SKU", "Stock", "Display", "Shown", "Status", "Rakuten"]
R_COLUMNS = {**COLUMNS, "rakuten": 5}


def _sheet(*rows: list[object], formulas: bool = False):
    return parse_inventory([HEAD, *rows], R_COLUMNS, formulas=formulas)


def _rakuten(quantity: int, cancelled: bool = False) -> dict[str, FetchResult]:
    order = Order("o-1", LATER, (OrderLine("l-1", "item:1", quantity),), cancelled=cancelled)
    return {"rakuten": FetchResult([order], "cursor")}


def _known(sku: str, applied: int = 2, **kw: object) -> LineState:
    return LineState("rakuten", "o-1", "l-1", "item:1", sku, applied, applied, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("baseline", [43, 0])
@pytest.mark.parametrize("copy", ["A", "a"])
def test_exact_duplicate_skus_log_no_invented_manual_rows(baseline: int, copy: str) -> None:
    rows = _sheet(["A", 43, "", "", "", "item:1"], [copy, 0, "", "", "", "item:1"])
    assert all(row.duplicate for row in rows)
    for _ in range(3):
        result = plan(rows, {"A": baseline}, {}, {}, lambda ch, oid: {}, [])
        assert result.events == []
        assert result.changes.stock == {} and result.stock == {}


def test_cancellation_while_a_row_is_duplicated_is_kept_until_one_row_remains() -> None:
    known = _known("A")
    copied = _sheet(["A", 8, "", "", "", "item:1"], ["B", 5, "", "", "", ""], ["A", 8])
    held = plan(
        copied, {"A": 8}, _rakuten(2, True), {"rakuten": START}, lambda c, o: {"l-1": known}, []
    )
    (error,) = held.events
    assert error.event == "error"
    assert "SKU A appears in rows 2, 4" in error.detail
    assert "applied once one row is left" in error.detail
    assert held.stock == {} and "A" not in held.changes.stock
    (line,) = held.changes.lines
    assert (line.applied, line.target, line.reported) == (2, 0, True)

    # Staff delete the copy: the cancellation goes to the row that is left, once.
    left = _sheet(["A", 8, "", "", "", "item:1"], ["B", 5, "", "", "", ""])
    done = plan(
        left, {"A": 8}, _rakuten(2, True), {"rakuten": START}, lambda c, o: {"l-1": line}, [line]
    )
    assert [(e.event, e.sku, e.change) for e in done.events] == [("cancel", "A", 2)]
    assert done.stock == {1: 10}


def test_a_new_order_for_an_item_of_a_copied_row_is_held_naming_the_rows() -> None:
    rows = _sheet(["A", 8, "", "", "", "item:1"], ["A", 8, "", "", "", "item:1"])
    result = plan(rows, {"A": 8}, _rakuten(1), {"rakuten": START}, lambda c, o: {}, [])
    (error,) = result.events
    assert "rows 2, 3 all list rakuten item item:1" in error.detail
    assert result.stock == {}


def test_cancellation_after_a_sku_rename_is_put_back_on_the_renamed_row() -> None:
    known = _known("A")
    rows = _sheet(["A-NEW", 8, "", "", "", "item:1"])
    result = plan(
        rows, {"A": 8}, _rakuten(2, True), {"rakuten": START}, lambda c, o: {"l-1": known}, []
    )
    assert [(e.event, e.sku, e.change, e.before, e.after) for e in result.events] == [
        ("cancel", "A-NEW", 2, 8, 10)
    ]
    assert "SKU A, to which it was applied, is no longer in the sheet" in result.events[0].detail
    assert result.stock == {1: 10}
    (line,) = result.changes.lines
    assert line.sku == "A-NEW" and line.applied == 0


def test_a_sku_renamed_only_in_case_keeps_its_lines() -> None:
    known = _known("abc")
    rows = _sheet(["ABC", 8, "", "", "", "other"])
    result = plan(
        rows, {"abc": 8}, _rakuten(2, True), {"rakuten": START}, lambda c, o: {"l-1": known}, []
    )
    assert [(e.event, e.sku, e.change) for e in result.events] == [("cancel", "ABC", 2)]


def test_a_line_whose_sku_and_item_left_the_sheet_is_held_with_the_truth() -> None:
    known = _known("A")
    rows = _sheet(["B", 8, "", "", "", "other:1"])
    result = plan(
        rows, {"A": 8}, _rakuten(2, True), {"rakuten": START}, lambda c, o: {"l-1": known}, []
    )
    (error,) = result.events
    assert "no Inventory row lists" not in error.detail
    assert error.detail.startswith(
        "SKU A, to which this line was applied, is no longer in the sheet, and no row lists "
        "rakuten item item:1: this order line (cancelled: 2 pcs to put back) is held"
    )
    assert "once the SKU is back, or the row that replaced it lists item:1" in error.detail


def test_a_renamed_sku_starts_its_baseline_without_a_manual_row() -> None:
    rows = _sheet(["A-NEW", 10, "", "", "", "item:1"])
    result = plan(rows, {"A": 10}, {}, {}, lambda c, o: {}, [])
    assert result.events == []
    assert result.changes.stock == {"A-NEW": 10}


def test_formula_in_stock_is_reported_and_never_overwritten_pure() -> None:
    rows = _sheet(["A", "=K2", "", "", "", "item:1"], formulas=True)
    assert rows[0].stock is None
    assert "never overwrites a formula" in rows[0].problems[0]
    result = plan(rows, {"A": 30}, _rakuten(2), {"rakuten": START}, lambda c, o: {}, [])
    assert result.stock == {} and "A" not in result.changes.stock
    (error,) = result.events
    assert error.event == "error" and "Stock of A cannot be used" in error.detail


def test_formula_in_a_sku_read_with_formulas_takes_no_orders() -> None:
    rows = _sheet(["=A9", 5, "", "", "", ""], formulas=True)
    assert rows[0].sku == "=A9" and not rows[0].matchable
    assert "SKU holds a formula" in rows[0].problems[0]
    order = Order("o-1", LATER, (OrderLine("l-1", "=A9", 1),))
    result = plan(
        rows, {}, {"rakuten": FetchResult([order], "c")}, {"rakuten": START}, lambda c, o: {}, []
    )
    assert result.stock == {}
    assert [e.event for e in result.events] == ["error"]
