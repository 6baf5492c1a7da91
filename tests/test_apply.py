"""The pure arithmetic of a cycle: order lines and staff edits into Stock changes."""

from __future__ import annotations

from datetime import UTC, datetime

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
