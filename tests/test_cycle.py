"""Whole cycles: the real gspread client and the real marketplace adapters against stand-ins.

Most behaviours are checked on every marketplace (`market` is each one in turn); the few that
concern only the sheet run on Rakuten.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.world import World, world

MARKETS = ("rakuten", "yahoo", "amazon", "shopify")
COLUMN = {"rakuten": "E", "yahoo": "F", "amazon": "G", "shopify": "H"}
CUP = {
    "rakuten": "cup-001:white",
    "yahoo": "cup-001-w",
    "amazon": "CUP-001-AMZ",
    "shopify": "CUP-001-SHOP",
}
# Path fragments of each marketplace's order reads and stock writes, for injecting faults.
ORDERS = {
    "rakuten": "searchOrder",
    "yahoo": "orderList",
    "amazon": "/orders/",
    "shopify": "graphql",
}
PUSH = {"rakuten": "bulk-upsert", "yahoo": "setStock", "amazon": "/listings/", "shopify": "graphql"}
ROWS = [
    # SKU, Name, Stock, Display, Rakuten, Yahoo, Amazon, Shopify, Shown, Status
    ["TEA-001", "Sencha", 30, "+20", "", "", "", "", "", ""],
    ["TEA-002", "Gyokuro", 30, "-10", "", "", "", "", "", ""],
    ["TEA-003", "Matcha", 30, "3", "", "", "", "", "", ""],
    ["CUP-001", "Cup", 12, "", *CUP.values(), "", ""],
    ["SET-001", "Set", 8, "", "-", "-", "-", "-", "", ""],
]


def _world(tmp_path: Path, market: str) -> Iterator[World]:
    with world(tmp_path, (market,)) as w:
        w.create_sheet(ROWS)
        for item in ("TEA-001", "TEA-002", "TEA-003", CUP[market]):
            w.markets[market].add_item(item, 0)
        w.market = market  # type: ignore[attr-defined]
        yield w


@pytest.fixture(params=MARKETS)
def w(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    yield from _world(tmp_path, request.param)


@pytest.fixture
def rw(tmp_path: Path) -> Iterator[World]:
    """A Rakuten world, for behaviours of the sheet side."""
    yield from _world(tmp_path, "rakuten")


def m(w: World):
    return w.markets[w.market]  # type: ignore[attr-defined]


def test_first_cycle_pushes_the_display_rule_to_the_marketplace(w: World) -> None:
    report = w.sync()
    assert report.ok
    store = m(w)
    assert store.quantity("TEA-001") == 50
    assert store.quantity("TEA-002") == 20
    assert store.quantity("TEA-003") == 3
    assert store.quantity(CUP[w.market]) == 12
    assert [w.row(s)["Shown"] for s in ("TEA-001", "TEA-002", "TEA-003", "CUP-001")] == [
        50,
        20,
        3,
        12,
    ]
    assert w.row("SET-001")["Status"] == "OK"
    assert len(w.log("push")) == 1
    assert w.log("order") == []


def test_not_sold_marker_is_never_pushed(w: World) -> None:
    w.sync()
    assert m(w).requests_to(PUSH[w.market])
    sent = [r.path + r.body.decode() for r in m(w).requests]
    assert not [x for x in sent if "SET-001" in x.upper()]


def test_order_is_applied_once_across_repeated_syncs(w: World) -> None:
    w.sync()
    order = m(w).place_order([("TEA-001", 2)])
    for _ in range(3):
        w.sync()
    assert w.row("TEA-001")["Stock"] == 28
    orders = w.log("order")
    assert len(orders) == 1
    assert orders[0]["Order"] == order
    assert (orders[0]["Change"], orders[0]["Before"], orders[0]["After"]) == (-2, 30, 28)
    assert m(w).quantity("TEA-001") == 48


def test_orders_placed_before_the_first_cycle_count_as_already_in_stock(w: World) -> None:
    a_minute_ago = datetime.now(UTC) - timedelta(minutes=1)
    m(w).place_order([("TEA-001", 1)], placed_at=a_minute_ago, force=True)
    w.sync()
    w.sync()
    assert w.row("TEA-001")["Stock"] == 30
    assert w.log("order") == []


def test_cancelled_order_is_put_back_once(w: World) -> None:
    w.sync()
    order = m(w).place_order([("TEA-002", 3)])
    w.sync()
    m(w).cancel_order(order)
    w.sync()
    w.sync()
    assert w.row("TEA-002")["Stock"] == 30
    cancels = w.log("cancel")
    assert len(cancels) == 1
    assert cancels[0]["Change"] == 3


def test_quantity_change_is_applied_as_its_difference(w: World) -> None:
    w.sync()
    order = m(w).place_order([("TEA-001", 3)])
    w.sync()
    m(w).change_line(order, "TEA-001", 1)
    w.sync()
    w.sync()
    assert w.row("TEA-001")["Stock"] == 29
    changes = w.log("change")
    assert len(changes) == 1
    assert changes[0]["Change"] == 2


def test_staff_restock_is_logged_as_manual_and_pushed(w: World) -> None:
    w.sync()
    w.set_stock("CUP-001", 40)
    w.sync()
    manual = w.log("manual")
    assert [(x["SKU"], x["Change"], x["Before"], x["After"]) for x in manual] == [
        ("CUP-001", 28, 12, 40)
    ]
    assert m(w).quantity(CUP[w.market]) == 40


def test_staff_edit_between_read_and_commit_survives(rw: World) -> None:
    w = rw
    w.sync()
    m(w).place_order([("TEA-001", 2)])
    reads = []

    def staff_types_during_the_cycle(request) -> None:
        # Staff type after the cycle's first read, before the read that precedes its commit.
        if "values:batchGet" in request.path:
            reads.append(request.path)
            if len(reads) == 2:
                w.set_stock("TEA-001", 100)

    w.sheets.add_hook(staff_types_during_the_cycle)
    w.sync()
    # The first read; the narrow re-read, which sees the edit; the full read it takes then.
    assert len(reads) == 3
    assert w.row("TEA-001")["Stock"] == 98
    assert [(x["Change"], x["After"]) for x in w.log("manual")] == [(70, 100)]
    order = w.log("order")[0]
    assert (order["Before"], order["After"]) == (100, 98)


def test_broken_display_is_reported_on_its_row_and_orders_still_apply(w: World) -> None:
    w.sync()
    w.set_cell("TEA-001", "D", "+abc")
    m(w).place_order([("TEA-001", 1)])
    m(w).place_order([("TEA-002", 1)])
    w.sync()
    row = w.row("TEA-001")
    assert row["Stock"] == 29
    assert "+abc" in row["Status"]
    assert m(w).quantity("TEA-001") == 49  # the store's own sale, nothing new
    assert w.row("TEA-002")["Stock"] == 29
    assert m(w).quantity("TEA-002") == 19


def test_oversell_goes_below_zero_and_is_logged(w: World) -> None:
    w.sync()
    w.set_stock("CUP-001", 1)
    w.sync()
    m(w).place_order([(CUP[w.market], 2)], force=True)
    w.sync()
    assert w.row("CUP-001")["Stock"] == -1
    assert w.row("CUP-001")["Shown"] == 0
    assert len(w.log("oversold")) == 1
    assert m(w).quantity(CUP[w.market]) == 0


def test_order_for_an_unknown_item_is_held_reported_once_and_applied_later(w: World) -> None:
    w.sync()
    m(w).add_item("NEW-001", 5)
    m(w).place_order([("NEW-001", 2)])
    w.sync()
    w.sync()
    errors = [e for e in w.log("error") if "NEW-001" in e["Detail"]]
    assert len(errors) == 1
    w.sheets.set_value(w.sheet_id, "Inventory", "A7", "NEW-001")
    w.sheets.set_value(w.sheet_id, "Inventory", "C7", 10)
    w.sync()
    w.sync()
    assert w.row("NEW-001")["Stock"] == 8
    assert len(w.log("order")) == 1


def test_text_that_looks_like_a_formula_stays_text(w: World) -> None:
    # Staff typed these into plain-text columns, as init-sheet formats them.
    w.sheets.set_value(w.sheet_id, "Inventory", "A7", "=SUM(1,2)", raw=True)
    w.sheets.set_value(w.sheet_id, "Inventory", "C7", 5)
    w.sheets.set_value(w.sheet_id, "Inventory", f"{COLUMN[w.market]}7", "sum-item", raw=True)
    m(w).add_item("sum-item", 5)
    w.sync()
    m(w).place_order([("sum-item", 1)])
    w.sync()
    (order,) = w.log("order")
    assert order["SKU"] == "=SUM(1,2)"
    assert w.row("=SUM(1,2)")["Stock"] == 4


def test_sheets_429_and_5xx_are_retried_and_nothing_is_applied_twice(rw: World) -> None:
    w = rw
    w.sync()
    m(w).place_order([("TEA-003", 1)])
    w.sheets.fail(429, times=2, match=":batchUpdate", retry_after=1)
    w.sheets.fail(503, times=1, match="values:batchGet")
    report = w.sync()
    assert report.ok
    w.sync()
    assert w.row("TEA-003")["Stock"] == 29
    assert len(w.log("order")) == 1


def test_commit_whose_answer_is_lost_is_not_written_twice(rw: World) -> None:
    w = rw
    w.sync()
    m(w).place_order([("TEA-003", 1)])
    w.sheets.drop(times=1, match=":batchUpdate", after=True)
    w.sync()
    w.sync()
    assert w.row("TEA-003")["Stock"] == 29
    assert len(w.log("order")) == 1


def test_marketplace_failures_are_logged_and_the_next_cycle_catches_up(w: World) -> None:
    w.sync()
    m(w).place_order([("TEA-001", 1)])
    m(w).fail(503, times=50, match=ORDERS[w.market])
    report = w.sync()
    assert not report.ok
    assert w.row("TEA-001")["Stock"] == 30
    errors = w.log("error")
    assert errors and "next cycle" in errors[-1]["Detail"]
    m(w).faults.clear()
    assert w.sync().ok
    assert w.row("TEA-001")["Stock"] == 29
    assert len(w.log("order")) == 1


def test_marketplace_429_and_5xx_are_retried_within_the_cycle(w: World) -> None:
    w.sync()
    m(w).place_order([("TEA-001", 1)])
    w.set_stock("TEA-002", 40)
    m(w).fail(429, times=2, match=ORDERS[w.market])
    m(w).fail(500, times=1, match=PUSH[w.market])
    assert w.sync().ok
    assert w.row("TEA-001")["Stock"] == 29
    assert m(w).quantity("TEA-001") == 49
    assert m(w).quantity("TEA-002") == 30


def test_paused_channel_is_neither_fetched_nor_pushed(w: World) -> None:
    w.sync()
    w.sheets.set_value(w.sheet_id, "Channels", "B2", False)
    before = len(m(w).requests)
    w.set_stock("TEA-001", 10)
    w.sync()
    assert len(m(w).requests) == before
    assert w.row("TEA-001")["Shown"] == 30


def test_a_cycle_uses_a_constant_number_of_sheets_requests(rw: World) -> None:
    w = rw
    w.sync()
    small = w.sync()
    for i in range(200):
        m(w).add_item(f"X-{i}", 0)
        w.sheets.set_value(w.sheet_id, "Inventory", f"A{8 + i}", f"X-{i}")
        w.sheets.set_value(w.sheet_id, "Inventory", f"C{8 + i}", i)
    w.sync()
    for i in range(0, 200, 3):
        m(w).place_order([(f"X-{i}", 1)], force=True)
    big = w.sync()
    assert (big.sheet_reads, big.sheet_writes) == (small.sheet_reads, small.sheet_writes)
    assert big.sheet_reads + big.sheet_writes <= 6


def _sale_during_the_commit(w: World, sku: str) -> None:
    """A shopper buys `sku` after the bot fetched orders, while it writes the sheet."""
    sold: list[str] = []

    def buy(request) -> None:
        if request.path.endswith(":batchUpdate") and not sold:
            sold.append(m(w).place_order([(sku, 1)]))

    w.sheets.add_hook(buy)


def test_sale_during_the_push_gap_is_applied_and_corrected_next_cycle(w: World) -> None:
    w.sync()
    w.set_stock("TEA-002", 40)
    _sale_during_the_commit(w, "TEA-002")
    w.sync()
    w.sync()
    assert w.row("TEA-002")["Stock"] == 39
    assert len(w.log("order")) == 1
    assert m(w).quantity("TEA-002") == 29


def test_shopify_sale_during_the_push_gap_is_never_overwritten(tmp_path: Path) -> None:
    for w in _world(tmp_path, "shopify"):
        w.sync()
        w.set_stock("TEA-002", 40)
        _sale_during_the_commit(w, "TEA-002")
        w.sync()
        # Shopify held 19 after the sale, not the 20 the bot expected: the push was refused.
        assert m(w).quantity("TEA-002") == 19
        w.sync()
        assert w.row("TEA-002")["Stock"] == 39
        assert m(w).quantity("TEA-002") == 29


def test_quantity_changed_in_shopify_admin_is_set_right_again(tmp_path: Path) -> None:
    for w in _world(tmp_path, "shopify"):
        w.sync()
        m(w).add_item("TEA-002", 100)  # someone typed 100 in the Shopify admin
        w.set_stock("TEA-002", 25)
        w.sync()
        w.sync()
        assert m(w).quantity("TEA-002") == 15
        assert "TEA-002" in w.log("push")[-1]["Detail"]


class _Refused(Exception):
    """Raised by a Sheets stand-in hook: the stand-in answers 500 and does not apply it."""


def test_commit_whose_landing_cannot_be_learned_stays_pending_and_counts_once(
    rw: World,
) -> None:
    w = rw
    w.sync()
    m(w).place_order([("TEA-003", 1)])
    w.sheets.drop(times=1, match=":batchUpdate", after=True)
    blind = [True]

    def metadata_unreadable(request) -> None:
        if blind[0] and request.method == "GET" and request.path.count("/") == 3:
            raise _Refused

    w.sheets.add_hook(metadata_unreadable)
    assert w.row("TEA-003")["Stock"] == 30
    with pytest.raises(Exception, match="Sheets"):
        w.sync()
    blind[0] = False
    w.sync()
    w.sync()
    assert w.row("TEA-003")["Stock"] == 29
    assert len(w.log("order")) == 1
    assert w.log("manual") == []


def test_staff_edit_during_a_commit_retry_is_kept(rw: World) -> None:
    w = rw
    w.sync()
    m(w).place_order([("TEA-001", 1)])
    refused: list[bool] = []

    def refuse_first_commit_after_an_edit(request) -> None:
        if request.path.endswith(":batchUpdate") and not refused:
            refused.append(True)
            w.set_stock("TEA-001", 100)
            raise _Refused

    w.sheets.add_hook(refuse_first_commit_after_an_edit)
    assert w.sync().ok
    assert w.row("TEA-001")["Stock"] == 99
    assert [(x["Change"], x["After"]) for x in w.log("manual")] == [(70, 100)]
    assert len(w.log("order")) == 1


def test_skus_differing_only_in_case_are_reported_and_never_stop_the_bot(rw: World) -> None:
    w = rw
    w.sheets.set_value(w.sheet_id, "Inventory", "A7", "tea-001", raw=True)
    w.sheets.set_value(w.sheet_id, "Inventory", "C7", 5)
    m(w).add_item("tea-001:tea-001", 5)
    w.sync()
    m(w).place_order([("TEA-002", 1)])
    m(w).place_order([("tea-001:tea-001", 1)])
    assert w.sync().ok
    assert "appears in rows" in w.row("tea-001")["Status"]
    assert "appears in rows" in w.row("TEA-001")["Status"]
    assert w.row("TEA-002")["Stock"] == 29


def test_two_rows_naming_the_same_item_are_both_reported(rw: World) -> None:
    w = rw
    w.sheets.set_value(w.sheet_id, "Inventory", "E3", "tea-001:TEA-001", raw=True)
    w.sync()
    assert "named by rows" in w.row("TEA-001")["Status"]
    assert "named by rows" in w.row("TEA-002")["Status"]


def test_the_clean_start_is_the_instant_the_first_fetch_used(rw: World) -> None:
    # Time moves on while the cycle runs: an order placed after the adapter's first cursor
    # must not count as "before the start" (it would be skipped for good).
    w = rw
    w.time.tick = timedelta(seconds=2)
    w.sync()
    w.time.tick = timedelta(0)
    with w.bot() as cycle:
        cursor, started = cycle.ledger.cursor("rakuten") or ("", "")
    until = datetime.fromisoformat(json.loads(cursor)["until"])
    assert datetime.fromisoformat(started) == until
