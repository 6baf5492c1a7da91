"""The real Shopify adapter against the Shopify stand-in on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.channels.base import Order, StockUpdate
from bot.channels.shopify import ShopifyChannel
from bot.config import Settings
from bot.errors import AuthError, ConfigError, TemporaryError
from bot.standins.shopify import ShopifyStandIn
from tests.fakes import FakeTime
from tests.world import world

NOW = datetime.now(UTC).replace(microsecond=0)


def settings_for(stand_in: ShopifyStandIn, **override: str) -> Settings:
    return Settings.from_env(stand_in.env(), **override)


_open: list[ShopifyChannel] = []


@pytest.fixture(autouse=True)
def _close_channels() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def shopify(fake: FakeTime) -> Iterator[ShopifyStandIn]:
    stand_in = ShopifyStandIn()
    stand_in.clock = fake.clock  # its cost bucket restores on the same fake time as the adapter's
    with stand_in:
        yield stand_in


def channel_for(stand_in: ShopifyStandIn, fake: FakeTime, **override: str) -> ShopifyChannel:
    channel = ShopifyChannel.from_settings(
        settings_for(stand_in, **override),
        sleep=fake.sleep,
        clock=fake.clock,
        wall_clock=lambda: NOW,
    )
    _open.append(channel)
    return channel


def cursor_at(moment: datetime) -> str:
    return json.dumps({"until": moment.isoformat()})


def by_id(orders: list[Order]) -> dict[str, Order]:
    return {o.order_id: o for o in orders}


def operations(stand_in: ShopifyStandIn) -> list[str | None]:
    return [name for name, _, _ in stand_in.costs]


def raw(stand_in: ShopifyStandIn, query: str, variables: dict[str, Any] | None = None) -> Any:
    url = f"{stand_in.url}/admin/api/2026-04/graphql.json"
    body = {"query": query, "variables": variables or {}}
    headers = {"X-Shopify-Access-Token": stand_in.access_token}
    return httpx.post(url, json=body, headers=headers).json()


# -- orders ------------------------------------------------------------------------------
def test_first_fetch_returns_no_orders_and_a_cursor_at_shopifys_time(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 5)
    shopify.place_order([("TEE-RED-M", 1)], placed_at=NOW - timedelta(minutes=1))
    shopify.now = lambda: NOW - timedelta(minutes=9)  # Shopify's clock is 9 minutes behind ours
    result = channel_for(shopify, fake).fetch_orders(None, [], NOW)
    assert result.orders == []
    # The clean start is Shopify's time (the Date of its answer), not this machine's.
    assert result.start == NOW - timedelta(minutes=9)
    assert datetime.fromisoformat(json.loads(result.cursor)["until"]) == result.start
    # Asking costs one query of one point (it used to cost nothing).
    assert shopify.costs == [("StockbotClock", 1, 1)]


def test_a_clean_start_shopify_refuses_raises_and_takes_no_start(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.fail(401, times=1)
    with pytest.raises(AuthError):
        channel_for(shopify, fake).fetch_orders(None, [], NOW)


def test_new_order_is_returned_with_its_variant_skus_and_line_ids(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 5)
    shopify.add_item("MUG 300ml", 3)
    number = shopify.place_order([("TEE-RED-M", 2), ("MUG 300ml", 1)], placed_at=NOW)
    result = channel_for(shopify, fake).fetch_orders(cursor_at(NOW - timedelta(minutes=5)), [], NOW)
    (order,) = result.orders
    assert order.order_id == number
    assert order.placed_at == NOW
    assert not order.cancelled and not order.closed
    assert sorted((line.item, line.quantity) for line in order.lines) == [
        ("MUG 300ml", 1),
        ("TEE-RED-M", 2),
    ]
    assert all(line.line_id.isdigit() for line in order.lines)
    sent = shopify.requests[0].json()
    assert "sortKey: UPDATED_AT" in sent["query"]
    since = NOW - timedelta(minutes=65)  # five minutes behind the cursor, an hour of overlap
    assert sent["variables"]["query"] == f"updated_at:>='{since:%Y-%m-%dT%H:%M:%SZ}'"
    assert shopify.quantity("TEE-RED-M") == 3


def test_refetch_with_the_overlap_returns_the_same_line_ids(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 5)
    shopify.place_order([("TEE-RED-M", 1)], placed_at=NOW - timedelta(minutes=3))
    channel = channel_for(shopify, fake)
    first = channel.fetch_orders(cursor_at(NOW - timedelta(minutes=10)), [], NOW)
    second = channel.fetch_orders(first.cursor, [], NOW + timedelta(minutes=1))
    assert [o.lines for o in first.orders] == [o.lines for o in second.orders]
    assert len(second.orders) == 1


def test_cancellation_is_seen_by_rereading_open_orders(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 5)
    number = shopify.place_order([("TEE-RED-M", 2)], placed_at=NOW - timedelta(hours=2))
    shopify.now = lambda: NOW - timedelta(hours=2)  # cancelled well before the next window
    shopify.cancel_order(number)
    result = channel_for(shopify, fake).fetch_orders(
        cursor_at(NOW - timedelta(minutes=5)), [number], NOW
    )
    order = by_id(result.orders)[number]
    assert order.cancelled and order.closed
    assert [line.quantity for line in order.lines] == [0]
    assert operations(shopify) == ["StockbotOrders", "StockbotReread"]
    assert shopify.quantity("TEE-RED-M") == 5


def test_cancellation_inside_the_window_is_not_read_twice(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 5)
    number = shopify.place_order([("TEE-RED-M", 2)], placed_at=NOW - timedelta(minutes=1))
    shopify.cancel_order(number)
    result = channel_for(shopify, fake).fetch_orders(
        cursor_at(NOW - timedelta(minutes=5)), [number], NOW + timedelta(minutes=1)
    )
    assert by_id(result.orders)[number].cancelled
    assert operations(shopify) == ["StockbotOrders"]


def test_quantity_change_and_removed_line_report_current_quantities(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 5)
    shopify.add_item("MUG", 5)
    number = shopify.place_order([("TEE-RED-M", 3), ("MUG", 2)], placed_at=NOW)
    channel = channel_for(shopify, fake)
    before = by_id(channel.fetch_orders(cursor_at(NOW), [], NOW).orders)[number]
    shopify.change_line(number, "TEE-RED-M", 1)
    shopify.change_line(number, "MUG", 0)
    after = by_id(channel.fetch_orders(cursor_at(NOW), [number], NOW).orders)[number]
    assert {ln.line_id for ln in before.lines} == {ln.line_id for ln in after.lines}
    assert sorted((ln.item, ln.quantity) for ln in after.lines) == [("MUG", 0), ("TEE-RED-M", 1)]
    assert not after.cancelled and not after.closed
    assert shopify.quantity("TEE-RED-M") == 4 and shopify.quantity("MUG") == 5


def test_shipped_or_archived_order_is_closed_and_lines_without_sku_are_left_out(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 5)
    shipped = shopify.place_order([("TEE-RED-M", 1), ("", 1)], placed_at=NOW, force=True)
    archived = shopify.place_order([("TEE-RED-M", 1)], placed_at=NOW)
    still_open = shopify.place_order([("TEE-RED-M", 1)], placed_at=NOW)
    shopify.ship(shipped)
    shopify.archive(archived)
    orders = by_id(channel_for(shopify, fake).fetch_orders(cursor_at(NOW), [], NOW).orders)
    assert orders[shipped].closed and orders[archived].closed
    assert not orders[still_open].closed and not orders[shipped].cancelled
    assert [ln.item for ln in orders[shipped].lines] == ["TEE-RED-M"]


def test_orders_beyond_one_page_are_all_returned(shopify: ShopifyStandIn, fake: FakeTime) -> None:
    shopify.add_item("TEE-RED-M", 100)
    numbers = {
        shopify.place_order([("TEE-RED-M", 1)], placed_at=NOW - timedelta(seconds=i))
        for i in range(60)
    }
    result = channel_for(shopify, fake).fetch_orders(cursor_at(NOW), [], NOW)
    assert set(by_id(result.orders)) == numbers
    assert operations(shopify) == ["StockbotOrders"] * 5  # pages of 12


def test_order_with_more_lines_than_a_page_returns_every_line(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    skus = [f"SKU-{i:03d}" for i in range(70)]
    for sku in skus:
        shopify.add_item(sku, 1)
    shopify.place_order([(sku, 1) for sku in skus], placed_at=NOW)
    (order,) = channel_for(shopify, fake).fetch_orders(cursor_at(NOW), [], NOW).orders
    assert sorted(ln.item for ln in order.lines) == skus
    assert operations(shopify) == ["StockbotOrders", "StockbotLines"]


def test_refund_without_restock_never_comes_back_to_stock(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 5)
    number = shopify.place_order([("TEE-RED-M", 3)], placed_at=NOW)
    shopify.ship(number)
    shopify.refund(number, "TEE-RED-M", 2, restock="NO_RESTOCK")  # money back, goods kept
    (order,) = channel_for(shopify, fake).fetch_orders(cursor_at(NOW), [], NOW).orders
    assert [(ln.item, ln.quantity) for ln in order.lines] == [("TEE-RED-M", 3)]
    assert shopify.quantity("TEE-RED-M") == 2  # Shopify did not restock them either


def test_refund_with_restock_is_put_back(shopify: ShopifyStandIn, fake: FakeTime) -> None:
    shopify.add_item("TEE-RED-M", 5)
    shopify.add_item("MUG", 5)
    shipped = shopify.place_order([("TEE-RED-M", 3)], placed_at=NOW)
    waiting = shopify.place_order([("MUG", 3)], placed_at=NOW)
    shopify.ship(shipped)
    shopify.refund(shipped, "TEE-RED-M", 2, restock="RETURN")
    shopify.refund(waiting, "MUG", 1, restock="CANCEL")
    orders = by_id(channel_for(shopify, fake).fetch_orders(cursor_at(NOW), [], NOW).orders)
    assert [ln.quantity for ln in orders[shipped].lines] == [1]
    assert [ln.quantity for ln in orders[waiting].lines] == [2]
    assert shopify.quantity("TEE-RED-M") == 4 and shopify.quantity("MUG") == 3


def test_return_refunded_but_not_restocked_stays_out(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 5)
    number = shopify.place_order([("TEE-RED-M", 3)], placed_at=NOW)
    shopify.ship(number)
    shopify.refund(number, "TEE-RED-M", 1, restock="RETURN")
    shopify.refund(number, "TEE-RED-M", 1, restock="RETURN", restocked=False)
    (order,) = channel_for(shopify, fake).fetch_orders(cursor_at(NOW), [], NOW).orders
    assert [ln.quantity for ln in order.lines] == [2]
    assert shopify.quantity("TEE-RED-M") == 3


def test_order_cancelled_without_restock_keeps_its_units_out(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 5)
    shopify.add_item("MUG", 5)
    kept = shopify.place_order([("TEE-RED-M", 2)], placed_at=NOW)
    restocked = shopify.place_order([("MUG", 2)], placed_at=NOW)
    shopify.cancel_order(kept, restock=False)
    shopify.cancel_order(restocked)
    orders = by_id(channel_for(shopify, fake).fetch_orders(cursor_at(NOW), [], NOW).orders)
    assert not orders[kept].cancelled and orders[kept].closed
    assert [ln.quantity for ln in orders[kept].lines] == [2]
    assert orders[restocked].cancelled and orders[restocked].closed
    assert [ln.quantity for ln in orders[restocked].lines] == [0]
    assert shopify.quantity("TEE-RED-M") == 3 and shopify.quantity("MUG") == 5


def test_every_refund_and_refunded_line_is_read_past_the_first_page(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    skus = [f"SKU-{i:02d}" for i in range(15)]
    for sku in skus:
        shopify.add_item(sku, 6)
    wide = shopify.place_order([(sku, 3) for sku in skus], placed_at=NOW)
    shopify.cancel_order(wide, restock=False)  # one refund of 15 lines: more than a page
    many = shopify.place_order([("SKU-00", 3)], placed_at=NOW)
    for restock in ("CANCEL", "NO_RESTOCK", "CANCEL"):  # more refunds than an orders page asks
        shopify.refund(many, "SKU-00", 1, restock=restock)
    orders = by_id(channel_for(shopify, fake).fetch_orders(cursor_at(NOW), [], NOW).orders)
    assert {ln.item: ln.quantity for ln in orders[wide].lines} == dict.fromkeys(skus, 3)
    assert [ln.quantity for ln in orders[many].lines] == [1]
    assert sorted(operations(shopify)) == [
        "StockbotOrders",
        "StockbotRefundLines",  # the rest of the wide refund, from where the page stopped
        "StockbotRefundLines",  # the refund the orders page did not hold
        "StockbotRefunds",
    ]


def test_refund_without_restock_keeps_stock_down_through_a_whole_cycle(tmp_path: Path) -> None:
    with world(tmp_path, ("shopify",)) as w:
        w.create_sheet([["TEE-001", "Tee", 10, "", "", "", "", "TEE-001", "", ""]])
        store = w.markets["shopify"]
        store.add_item("TEE-001", 0)
        w.sync()
        kept = store.place_order([("TEE-001", 3)])
        returned = store.place_order([("TEE-001", 2)])
        w.sync()
        assert w.row("TEE-001")["Stock"] == 5
        store.ship(kept)
        store.ship(returned)
        store.refund(kept, "TEE-001", 3, restock="NO_RESTOCK")
        store.refund(returned, "TEE-001", 2, restock="RETURN")
        w.sync()
        w.sync()
        assert w.row("TEE-001")["Stock"] == 7  # the returned 2 came back, the other 3 did not
        assert [r["Change"] for r in w.log() if r["Event"] in ("change", "cancel")] == [2]
        assert store.quantity("TEE-001") == 7


# -- stock -------------------------------------------------------------------------------
def test_push_sets_quantities_in_batches_of_250(shopify: ShopifyStandIn, fake: FakeTime) -> None:
    skus = [f"V-{i:04d}" for i in range(600)]
    for sku in skus:
        shopify.add_item(sku, 1)
    result = channel_for(shopify, fake).push([StockUpdate(sku, 7) for sku in skus])
    assert result.failed == {} and result.stale == set()
    assert [len(batch) for batch in shopify.set_batches] == [250, 250, 100]
    assert operations(shopify).count("StockbotVariants") == 6  # 100 SKUs per lookup
    assert result.calls == 9
    assert {shopify.quantity(sku) for sku in skus} == {7}


def test_first_push_compares_with_the_quantity_just_read(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 4)
    result = channel_for(shopify, fake).push([StockUpdate("TEE-RED-M", 9)])
    assert result.failed == {} and result.stale == set()
    (entry,) = shopify.set_batches[0]
    assert entry["changeFromQuantity"] == 4 and entry["quantity"] == 9
    assert shopify.quantity("TEE-RED-M") == 9


def test_unseen_shopify_sale_makes_the_item_stale_and_is_not_overwritten(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 5)
    shopify.add_item("MUG", 5)
    shopify.place_order([("TEE-RED-M", 1)])  # the bot has not fetched this sale yet
    result = channel_for(shopify, fake).push(
        [StockUpdate("TEE-RED-M", 8, expected=5), StockUpdate("MUG", 8, expected=5)]
    )
    assert result.stale == {"TEE-RED-M"} and result.failed == {}
    assert shopify.quantity("TEE-RED-M") == 4
    assert shopify.quantity("MUG") == 8  # sent again without the stale entry


def test_push_of_what_shopify_already_shows_sends_nothing(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 6)
    result = channel_for(shopify, fake).push([StockUpdate("TEE-RED-M", 6)])
    assert result == type(result)(failed={}, stale=set(), calls=1)
    assert shopify.set_batches == []


def test_known_inventory_item_is_pushed_without_a_lookup(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 6)
    channel = channel_for(shopify, fake)
    channel.push([StockUpdate("TEE-RED-M", 5)])
    shopify.costs.clear()
    result = channel.push([StockUpdate("TEE-RED-M", 3, expected=5)])
    assert operations(shopify) == ["StockbotSetQuantities"] and result.calls == 1
    assert shopify.quantity("TEE-RED-M") == 3


def test_unknown_duplicate_and_miscased_skus_fail_only_themselves(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 1)
    shopify.add_item("cup-001", 1)
    shopify.add_item("SET", 1)
    shopify.add_duplicate("SET", 1)
    shopify.add_item('TEE "LTD" \\ 1', 1)
    result = channel_for(shopify, fake).push(
        [StockUpdate(s, 2) for s in ("TEE-RED-M", "NO-SUCH", "CUP-001", "SET", 'TEE "LTD" \\ 1')]
    )
    assert set(result.failed) == {"NO-SUCH", "CUP-001", "SET"}
    assert "'cup-001'" in result.failed["CUP-001"]
    assert "share SKU" in result.failed["SET"]
    assert shopify.quantity("TEE-RED-M") == 2 and shopify.quantity('TEE "LTD" \\ 1') == 2


def test_item_not_stocked_at_the_location_fails_with_a_hint(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 1, stocked=False)
    result = channel_for(shopify, fake).push([StockUpdate("TEE-RED-M", 2)])
    assert "not stocked at Shopify location 1001" in result.failed["TEE-RED-M"]


def test_recreated_variant_fails_once_then_is_looked_up_again(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 5)
    channel = channel_for(shopify, fake)
    channel.push([StockUpdate("TEE-RED-M", 4)])
    shopify.delete_variants()  # staff delete the variant and create it again
    shopify.add_item("TEE-RED-M", 4)
    first = channel.push([StockUpdate("TEE-RED-M", 3, expected=4)])
    assert "no longer has the inventory item" in first.failed["TEE-RED-M"]
    second = channel.push([StockUpdate("TEE-RED-M", 3, expected=4)])
    assert second.failed == {} and shopify.quantity("TEE-RED-M") == 3


def test_lost_answer_to_a_push_is_replayed_without_applying_twice(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 5)
    channel = channel_for(shopify, fake)
    channel.push([StockUpdate("TEE-RED-M", 5, expected=5)])  # learn the inventory item
    shopify.drop(times=1, after=True)
    result = channel.push([StockUpdate("TEE-RED-M", 9, expected=5)])
    assert result.failed == {} and result.stale == set()
    assert shopify.replays == 1 and shopify.quantity("TEE-RED-M") == 9


# -- network, rate, auth -----------------------------------------------------------------
def test_server_errors_and_timeouts_are_retried(shopify: ShopifyStandIn, fake: FakeTime) -> None:
    shopify.add_item("TEE-RED-M", 5)
    shopify.fail(503, times=2)
    shopify.drop(times=1)
    result = channel_for(shopify, fake).push([StockUpdate("TEE-RED-M", 2)])
    assert result.failed == {} and shopify.quantity("TEE-RED-M") == 2
    assert len(shopify.requests) == 5 and len(fake.sleeps) == 3


def test_persistent_server_errors_raise_a_temporary_error(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.fail(500, times=10)
    with pytest.raises(TemporaryError, match="still failing after 5 tries"):
        channel_for(shopify, fake).fetch_orders(cursor_at(NOW), [], NOW)


def test_throttled_query_waits_for_the_points_to_restore(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    channel = channel_for(shopify, fake)
    channel.fetch_orders(cursor_at(NOW), [], NOW)  # learns the bucket: almost full
    shopify.drain_points(27)  # another caller of the same app spent it
    channel.fetch_orders(cursor_at(NOW), [], NOW)
    throttled = [c for c in shopify.costs if c[2] is None]
    assert len(throttled) == 1
    assert sum(fake.sleeps) >= (830 - 27) / 100  # Retry-After from throttleStatus


def test_cost_bucket_is_never_overdrawn(shopify: ShopifyStandIn, fake: FakeTime) -> None:
    skus = [f"V-{i:04d}" for i in range(1000)]
    for sku in skus:
        shopify.add_item(sku, 1)
    channel_for(shopify, fake).push([StockUpdate(sku, 2) for sku in skus])
    assert all(actual is not None for _, _, actual in shopify.costs)  # never THROTTLED
    spent = sum(actual or 0 for _, _, actual in shopify.costs)
    assert spent > 4000
    assert sum(fake.sleeps) >= (spent - 1000) / 100 - 1


def test_every_query_stays_under_the_single_query_cost_limit(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.add_item("TEE-RED-M", 9)
    number = shopify.place_order([("TEE-RED-M", 1)], placed_at=NOW - timedelta(days=1))
    channel = channel_for(shopify, fake)
    channel.fetch_orders(cursor_at(NOW), [number], NOW)
    channel.push([StockUpdate("TEE-RED-M", 3)])
    channel.check()
    assert {"StockbotOrders", "StockbotReread", "StockbotVariants", "StockbotCheck"} <= set(
        operations(shopify)
    )
    assert max(requested for _, requested, _ in shopify.costs) <= 1000
    assert all(actual is not None for _, _, actual in shopify.costs)


def test_stand_in_refuses_costly_queries_and_incomplete_mutations(
    shopify: ShopifyStandIn,
) -> None:
    costly = raw(
        shopify, "{ orders(first: 50) { nodes { lineItems(first: 50) { nodes { id } } } } }"
    )
    assert costly["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert costly["errors"][0]["extensions"]["cost"] == 2652
    shopify.add_item("TEE-RED-M", 1)
    item = f"gid://shopify/InventoryItem/{shopify.variants[0]['item']}"
    entry = {"inventoryItemId": item, "locationId": shopify.location, "quantity": 3}
    mutation = (
        "mutation M($input: InventorySetQuantitiesInput!) { inventorySetQuantities(input: $input)"
        "%s { userErrors { code } } }"
    )
    data = {"name": "available", "reason": "correction", "quantities": [entry]}
    no_key = raw(shopify, mutation % "", {"input": data})
    assert no_key["data"]["inventorySetQuantities"] is None
    no_compare = raw(shopify, mutation % ' @idempotent(key: "k1")', {"input": data})
    errors = no_compare["data"]["inventorySetQuantities"]["userErrors"]
    assert [e["code"] for e in errors] == ["COMPARE_QUANTITY_REQUIRED"]
    too_many = {**data, "quantities": [{**entry, "changeFromQuantity": None}] * 251}
    refused = raw(shopify, mutation % ' @idempotent(key: "k2")', {"input": too_many})
    assert refused["errors"][0]["extensions"]["code"] == "MAX_INPUT_SIZE_EXCEEDED"
    assert shopify.quantity("TEE-RED-M") == 1


def test_wrong_token_raises_an_auth_error_without_the_secret(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    channel = channel_for(shopify, fake, shopify_access_token="shpat_wrong_secret")
    with pytest.raises(AuthError) as caught:
        channel.fetch_orders(cursor_at(NOW), [], NOW)
    assert "STOCKBOT_SHOPIFY_ACCESS_TOKEN" in str(caught.value)
    assert "shpat_wrong_secret" not in str(caught.value)
    assert len(shopify.requests) == 1  # a refused token is not retried


def test_missing_scope_raises_an_auth_error_naming_it(
    shopify: ShopifyStandIn, fake: FakeTime
) -> None:
    shopify.scopes.discard("write_inventory")
    with pytest.raises(AuthError, match="write_inventory"):
        channel_for(shopify, fake).check()


def test_check_names_the_shop_and_the_location(shopify: ShopifyStandIn, fake: FakeTime) -> None:
    text = channel_for(shopify, fake).check()
    assert "demo-shop.myshopify.com" in text and "Shop location" in text
    assert shopify.set_batches == []


def test_settings_name_what_is_missing_or_unsupported(shopify: ShopifyStandIn) -> None:
    with pytest.raises(ConfigError, match="STOCKBOT_SHOPIFY_ACCESS_TOKEN"):
        ShopifyChannel.from_settings(settings_for(shopify, shopify_access_token=""))
    for version in ("2025-10", "2026-01", "2026-10", "unstable", "latest"):
        with pytest.raises(ConfigError, match="use one of 2026-04, 2026-07"):
            ShopifyChannel.from_settings(settings_for(shopify, shopify_api_version=version))
    ShopifyChannel.from_settings(settings_for(shopify, shopify_api_version="2026-07")).close()
    with pytest.raises(ConfigError, match="LOCATION_ID"):
        ShopifyChannel.from_settings(settings_for(shopify, shopify_location_id="Main store"))
    by_gid = settings_for(shopify, shopify_location_id="gid://shopify/Location/1001")
    ShopifyChannel.from_settings(by_gid).close()


def test_bot_clock_15_minutes_fast_loses_no_order(shopify: ShopifyStandIn, fake: FakeTime) -> None:
    shopify.add_item("TEE-RED-M", 5)
    shopify.now = lambda: NOW
    channel = channel_for(shopify, fake)
    fast = timedelta(minutes=15)
    first = channel.fetch_orders(cursor_at(NOW - timedelta(minutes=5)), [], NOW + fast)
    number = shopify.place_order([("TEE-RED-M", 1)], placed_at=NOW - timedelta(minutes=50))
    # Updated 50 minutes before Shopify's now but indexed only now: an hour's overlap sees it.
    shopify.now = lambda: NOW + timedelta(minutes=5)
    second = channel.fetch_orders(first.cursor, [], NOW + timedelta(minutes=5) + fast)
    assert number in by_id(second.orders)


def test_every_marketplace_client_shares_one_ca_bundle_shopify_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading the CA bundle costs 25-70 ms of CPU a `sync` (issue 8): the four adapters load
    it once between them, Shopify's own transport (its THROTTLED-as-429 wrapper) included."""
    import ssl

    from bot.channels import build_channels, http

    loads: list[object] = []
    real = ssl.SSLContext.load_verify_locations

    def counted(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loads.append(args or kwargs)
        real(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    http._tls.cache_clear()
    with world(tmp_path, ("rakuten", "yahoo", "amazon", "shopify")) as w:
        w.create_sheet([["TEA-001", "Sencha", 3, "", "", "", "", "", "", ""]])
        built = build_channels(w.settings(), sleep=w.time.sleep, clock=w.time.monotonic)
        try:
            assert sorted(built) == ["amazon", "rakuten", "shopify", "yahoo"]
        finally:
            for channel in built.values():
                channel.close()
    assert len(loads) == 1, loads
