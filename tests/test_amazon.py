"""The real Amazon adapter against the Amazon stand-in on loopback."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.channels.amazon import (
    FEED_THRESHOLD,
    ORDERS_SPACING,
    PAGE_RESERVE,
    AmazonChannel,
    OrderBudget,
    _feed_content,
    order_freshness_seconds,
)
from bot.channels.base import FetchResult, Order, StockUpdate
from bot.config import Settings
from bot.errors import AuthError, ConfigError, RejectedError, TemporaryError
from bot.standins.amazon import AmazonStandIn
from tests.fakes import FakeTime

START = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
ORDERS = "/orders/2026-01-01/orders"
LISTINGS = "/listings/2021-08-01/items/[^/]+"


class Wall:
    """The wall-clock time both the stand-in and the cycle see."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def settings_for(stand_in: AmazonStandIn, **override: object) -> Settings:
    return Settings.from_env(stand_in.env(), **override)


_open: list[AmazonChannel] = []


def channel_for(stand_in: AmazonStandIn, fake: FakeTime, **override: object) -> AmazonChannel:
    channel = AmazonChannel.from_settings(
        settings_for(stand_in, **override), sleep=fake.sleep, clock=fake.clock
    )
    _open.append(channel)
    return channel


@pytest.fixture(autouse=True)
def _close_channels() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


@pytest.fixture
def wall() -> Wall:
    return Wall()


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def amazon(wall: Wall) -> Iterator[AmazonStandIn]:
    stand_in = AmazonStandIn()
    stand_in.enforce_rate_limits = False  # the adapter's clock is fake, the stand-in's is not
    stand_in.clock = wall
    with stand_in:
        yield stand_in


@pytest.fixture
def channel(amazon: AmazonStandIn, fake: FakeTime) -> AmazonChannel:
    return channel_for(amazon, fake)


def by_id(result: FetchResult) -> dict[str, Order]:
    return {o.order_id: o for o in result.orders}


def with_budget(cursor: str, tokens: float, at: datetime, last: datetime | None = None) -> str:
    data = json.loads(cursor)
    data["budget"] = OrderBudget(tokens, at, last).dump()
    return json.dumps(data)


def searches(amazon: AmazonStandIn) -> list[dict[str, str]]:
    return [{k: v[0] for k, v in r.query.items()} for r in amazon.requests_to(ORDERS + "$", "GET")]


# -- orders --------------------------------------------------------------------------------
def test_first_fetch_returns_no_orders_and_a_cursor_at_now(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    amazon.add_item("TEA-001", 5)
    amazon.place_order([("TEA-001", 1)], placed_at=START - timedelta(minutes=1))
    fast = wall.now + timedelta(minutes=9)  # this machine's clock runs 9 minutes fast
    result = channel.fetch_orders(None, [], fast)
    assert result.orders == []
    # The clean start is Amazon's time (the Date of its answer), not this machine's.
    assert result.start == START
    assert json.loads(result.cursor)["after"] == START.isoformat()
    assert json.loads(result.cursor)["start"] == START.isoformat()
    assert searches(amazon) == []  # the clean start costs no searchOrders call ...
    # ... but one read of one listing (5/s), whose Date it takes (it used to cost nothing).
    [read] = amazon.requests_to(LISTINGS + "$", "GET")
    assert read.query["pageSize"] == ["1"]


def test_a_clean_start_amazon_refuses_raises_and_takes_no_start(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    amazon.fail(400, times=1, match="/listings/")
    with pytest.raises(RejectedError, match="listings search"):
        channel.fetch_orders(None, [], wall.now)


def test_new_order_is_returned_with_its_lines(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    amazon.add_item("TEA-001", 5)
    amazon.add_item("CUP-002", 5)
    first = channel.fetch_orders(None, [], wall.now)
    order_id = amazon.place_order([("TEA-001", 2), ("CUP-002", 1)], placed_at=wall.advance(60))
    result = channel.fetch_orders(first.cursor, [], wall.advance(240))
    order = by_id(result)[order_id]
    assert [(line.item, line.quantity) for line in order.lines] == [("TEA-001", 2), ("CUP-002", 1)]
    assert len({line.line_id for line in order.lines}) == 2
    assert order.placed_at == START + timedelta(seconds=60)
    assert not order.cancelled and not order.closed
    sent = searches(amazon)[-1]
    assert sent["lastUpdatedAfter"] == "2026-11-20T02:00:00Z"  # an hour behind the cursor
    assert sent["fulfilledBy"] == "MERCHANT"
    assert sent["includedData"] == "CANCELLATION,FULFILLMENT"
    assert sent["marketplaceIds"] == "A1VC38T7YXB528"


def test_refetch_over_the_overlap_returns_the_same_lines_again(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    amazon.add_item("TEA-001", 5)
    cursor = channel.fetch_orders(None, [], wall.now).cursor
    order_id = amazon.place_order([("TEA-001", 1)], placed_at=wall.advance(60))
    second = channel.fetch_orders(cursor, [], wall.advance(240))
    third = channel.fetch_orders(second.cursor, [], wall.advance(300))
    assert by_id(third)[order_id].lines == by_id(second)[order_id].lines
    windows = [s["lastUpdatedAfter"] for s in searches(amazon)]
    assert windows == ["2026-11-20T02:00:00Z", "2026-11-20T02:03:00Z"]  # each an hour back


def test_order_placed_before_the_clean_start_is_not_counted_when_it_ships_later(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    amazon.add_item("TEA-001", 5)
    old = amazon.place_order([("TEA-001", 1)], placed_at=START - timedelta(hours=1))
    cursor = channel.fetch_orders(None, [], wall.now).cursor
    wall.advance(60)
    amazon.ship_order(old)
    assert channel.fetch_orders(cursor, [], wall.advance(240)).orders == []


def test_cancelled_order_is_seen_in_the_search_as_cancelled_closed_and_zero(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    amazon.add_item("TEA-001", 5)
    cursor = channel.fetch_orders(None, [], wall.now).cursor
    order_id = amazon.place_order([("TEA-001", 2)], placed_at=wall.advance(60))
    cursor = channel.fetch_orders(cursor, [], wall.advance(240)).cursor
    assert amazon.quantity("TEA-001") == 3
    wall.advance(600)
    amazon.cancel_order(order_id)
    result = channel.fetch_orders(cursor, [order_id], wall.advance(60))
    order = by_id(result)[order_id]
    assert order.cancelled and order.closed
    assert [line.quantity for line in order.lines] == [0]
    assert amazon.quantity("TEA-001") == 5  # Amazon put the units back on sale
    assert amazon.requests_to(ORDERS + "/.+") == []  # no getOrder per open order


def test_cancelled_item_counts_zero_while_the_rest_of_the_order_stands(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    amazon.add_item("TEA-001", 5)
    amazon.add_item("CUP-002", 5)
    cursor = channel.fetch_orders(None, [], wall.now).cursor
    order_id = amazon.place_order([("TEA-001", 1), ("CUP-002", 2)], placed_at=wall.advance(60))
    wall.advance(60)
    amazon.change_line(order_id, "CUP-002", 0)
    order = by_id(channel.fetch_orders(cursor, [order_id], wall.advance(180)))[order_id]
    assert [(line.item, line.quantity) for line in order.lines] == [("TEA-001", 1), ("CUP-002", 0)]
    assert not order.cancelled and not order.closed


def test_changed_quantity_is_reported_with_the_same_line_id(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    amazon.add_item("TEA-001", 5)
    cursor = channel.fetch_orders(None, [], wall.now).cursor
    order_id = amazon.place_order([("TEA-001", 3)], placed_at=wall.advance(60))
    before = channel.fetch_orders(cursor, [], wall.advance(240))
    wall.advance(600)
    amazon.change_line(order_id, "TEA-001", 1)
    after = channel.fetch_orders(before.cursor, [order_id], wall.advance(60))
    assert by_id(after)[order_id].lines[0].quantity == 1
    assert by_id(after)[order_id].lines[0].line_id == by_id(before)[order_id].lines[0].line_id


def test_shipped_order_is_closed(amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall) -> None:
    amazon.add_item("TEA-001", 5)
    cursor = channel.fetch_orders(None, [], wall.now).cursor
    order_id = amazon.place_order([("TEA-001", 1)], placed_at=wall.advance(60))
    amazon.ship_order(order_id)
    order = by_id(channel.fetch_orders(cursor, [order_id], wall.advance(240)))[order_id]
    assert order.closed and not order.cancelled and order.lines[0].quantity == 1


def test_amazon_fulfilled_orders_are_left_out(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    amazon.add_item("TEA-001", 5)
    cursor = channel.fetch_orders(None, [], wall.now).cursor
    amazon.place_order([("TEA-001", 1)], placed_at=wall.advance(60), fulfilled_by="AMAZON")
    assert channel.fetch_orders(cursor, [], wall.advance(240)).orders == []
    assert amazon.quantity("TEA-001") == 5


def test_paging_reads_every_page_and_moves_the_cursor_after_the_last(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    amazon.add_item("TEA-001", 1000)
    cursor = channel.fetch_orders(None, [], wall.now).cursor
    placed = {amazon.place_order([("TEA-001", 1)], placed_at=wall.advance(1)) for _ in range(250)}
    result = channel.fetch_orders(cursor, [], wall.advance(300))
    assert set(by_id(result)) == placed
    sent = searches(amazon)
    assert len(sent) == 3
    assert [("paginationToken" in s) for s in sent] == [False, True, True]
    assert {s["lastUpdatedAfter"] for s in sent} == {sent[0]["lastUpdatedAfter"]}
    assert json.loads(result.cursor)["page"] is None


def test_paging_out_of_budget_keeps_the_page_token_and_resumes_there(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    amazon.add_item("TEA-001", 1000)
    cursor = channel.fetch_orders(None, [], wall.now).cursor
    placed = {amazon.place_order([("TEA-001", 1)], placed_at=wall.advance(1)) for _ in range(250)}
    now = wall.advance(300)
    partial = channel.fetch_orders(with_budget(cursor, 2.0, now), [], now)
    assert len(partial.orders) == 200
    state = json.loads(partial.cursor)
    assert state["after"] == json.loads(cursor)["after"]  # not past the unread page
    assert state["page"]["token"]
    resumed = channel.fetch_orders(partial.cursor, [], wall.advance(ORDERS_SPACING))
    assert set(by_id(partial)) | set(by_id(resumed)) == placed
    assert searches(amazon)[-1]["paginationToken"] == state["page"]["token"]
    assert json.loads(resumed.cursor)["page"] is None


def test_a_page_whose_answer_was_lost_is_asked_again_with_the_same_token(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    amazon.add_item("TEA-001", 1000)
    cursor = channel.fetch_orders(None, [], wall.now).cursor
    placed = {amazon.place_order([("TEA-001", 1)], placed_at=wall.advance(1)) for _ in range(150)}
    now = wall.advance(300)
    partial = channel.fetch_orders(with_budget(cursor, 1.0, now), [], now)
    amazon.drop(times=1, match=ORDERS, after=True)
    resumed = channel.fetch_orders(partial.cursor, [], wall.advance(ORDERS_SPACING))
    assert set(by_id(partial)) | set(by_id(resumed)) == placed
    tokens = [s.get("paginationToken") for s in searches(amazon)]
    assert tokens[1] is not None and tokens[1] == tokens[2]


def test_a_page_token_near_amazons_24_hours_is_dropped_and_the_window_read_again(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    amazon.add_item("TEA-001", 1000)
    cursor = channel.fetch_orders(None, [], wall.now).cursor
    placed = {amazon.place_order([("TEA-001", 1)], placed_at=wall.advance(1)) for _ in range(150)}
    now = wall.advance(300)
    partial = channel.fetch_orders(with_budget(cursor, 1.0, now), [], now)
    later = wall.advance(24 * 3600)
    result = channel.fetch_orders(partial.cursor, [], later)
    assert set(by_id(result)) == placed
    assert "paginationToken" not in searches(amazon)[1]


def test_empty_budget_skips_the_fetch_and_says_when_the_next_is_possible(
    amazon: AmazonStandIn, fake: FakeTime, wall: Wall
) -> None:
    cursor = channel_for(amazon, fake).fetch_orders(None, [], wall.now).cursor
    fresh_process = channel_for(amazon, fake)
    result = fresh_process.fetch_orders(with_budget(cursor, 0.2, wall.now), [], wall.now)
    assert result.orders == []
    assert result.skipped == "Amazon order budget: next fetch possible in 143 s"
    assert searches(amazon) == []
    assert json.loads(result.cursor)["after"] == json.loads(cursor)["after"]


def test_uncommitted_cursors_do_not_let_one_process_overspend(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    cursor = channel.fetch_orders(None, [], wall.now).cursor
    # The sheet commit keeps failing, so the cycle hands back the same old cursor.
    results = [channel.fetch_orders(cursor, [], wall.now) for _ in range(15)]
    assert len(searches(amazon)) == int(20 - PAGE_RESERVE)
    assert results[-1].skipped is not None


def test_routine_fetches_are_paced_to_keep_a_reserve_for_pages(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    cursor = channel.fetch_orders(None, [], wall.now).cursor
    fetched = []
    for cycle in range(120):  # two hours at a 60 s interval
        result = channel.fetch_orders(cursor, [], wall.advance(60))
        cursor = result.cursor
        if result.skipped is None:
            fetched.append(cycle)
    assert len(fetched) <= 20 + 7200 * 0.0056
    gaps = [b - a for a, b in zip(fetched[-10:], fetched[-9:], strict=False)]
    assert gaps and all(gap >= 3 for gap in gaps)  # settled: one call per ~179 s
    assert OrderBudget.load(json.loads(cursor)["budget"]).level(wall.now) >= PAGE_RESERVE - 1


def test_order_freshness_follows_the_published_rate(amazon: AmazonStandIn, fake: FakeTime) -> None:
    assert order_freshness_seconds(300) == 300
    assert order_freshness_seconds(60) == 180
    assert order_freshness_seconds(10) == 180
    channel = channel_for(amazon, fake, interval_seconds=60)
    assert channel.order_freshness_seconds() == 180
    assert "at most 180 s old" in channel.check()


def test_unreadable_cursor_is_a_clear_error(channel: AmazonChannel, wall: Wall) -> None:
    with pytest.raises(RejectedError, match="cursor is unreadable"):
        channel.fetch_orders("{not json", [], wall.now)


# -- stock ---------------------------------------------------------------------------------
def test_few_changes_go_out_as_one_patch_per_sku(
    amazon: AmazonStandIn, channel: AmazonChannel
) -> None:
    for sku in ("TEA-001", "CUP-002", "POT-003"):
        amazon.add_item(sku, 0)
    channel.check()  # fetch the access token first, so only pushes are counted
    before = len(amazon.requests)
    result = channel.push([StockUpdate("TEA-001", 7), StockUpdate("CUP-002", 0)])
    patches = amazon.requests_to("/listings/", "PATCH")
    assert result.failed == {} and result.stale == set()
    assert result.calls == len(amazon.requests) - before == len(patches) == 2
    assert (amazon.quantity("TEA-001"), amazon.quantity("CUP-002")) == (7, 0)
    assert amazon.quantity("POT-003") == 0
    body = patches[0].json()
    assert body == {
        "productType": "PRODUCT",
        "patches": [
            {
                "op": "merge",
                "path": "/attributes/fulfillment_availability",
                "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 7}],
            }
        ],
    }
    assert patches[0].query["marketplaceIds"] == ["A1VC38T7YXB528"]


def test_many_changes_go_out_as_one_json_listings_feed(
    amazon: AmazonStandIn, channel: AmazonChannel, fake: FakeTime
) -> None:
    skus = [f"TEA-{n:03d}" for n in range(5)]
    for sku in skus:
        amazon.add_item(sku, 0)
    channel.feed_threshold = 3
    result = channel.push([StockUpdate(sku, n + 10) for n, sku in enumerate(skus)])
    assert result.failed == {}
    assert [amazon.quantity(sku) for sku in skus] == [10, 11, 12, 13, 14]
    assert amazon.requests_to("/listings/", "PATCH") == []
    uploads = amazon.requests_to("/_s3/", "PUT")
    assert len(uploads) == 1
    assert uploads[0].headers["content-type"] == "application/json; charset=UTF-8"
    feed = uploads[0].json()
    assert feed["header"] == {"sellerId": "DEMOSELLER", "version": "2.0", "issueLocale": "ja_JP"}
    assert [m["sku"] for m in feed["messages"]] == skus
    created = amazon.requests_to("/feeds/2021-06-30/feeds$", "POST")[0].json()
    assert created["feedType"] == "JSON_LISTINGS_FEED"
    assert len(amazon.requests_to("/feeds/2021-06-30/feeds/", "GET")) == 3  # queue, progress, done
    assert fake.sleeps.count(30.0) == 2  # it waited between polls, on the injected clock


def test_a_large_change_is_split_into_feeds_of_25000_messages(
    amazon: AmazonStandIn, channel: AmazonChannel
) -> None:
    skus = [f"SKU-{n:05d}" for n in range(25_001)]
    for sku in skus:
        amazon.add_item(sku, 0)
    result = channel.push([StockUpdate(sku, 3) for sku in skus])
    assert result.failed == {}
    sizes = [len(r.json()["messages"]) for r in amazon.requests_to("/_s3/", "PUT")]
    assert sizes == [25_000, 1]
    assert len(amazon.requests_to("/feeds/2021-06-30/feeds$", "POST")) == 2
    assert amazon.quantity("SKU-25000") == 3 and amazon.quantity("SKU-00000") == 3


def test_feed_is_chosen_from_the_published_rates() -> None:
    # PATCH at 5/s needs N/5 s; a feed about ten minutes whatever N: they meet at 3,000 SKUs.
    assert FEED_THRESHOLD == 3_000


def test_variant_skus_are_sent_and_read_as_the_sheet_spells_them(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    skus = ["SHIRT-RED/M", "0012", "茶 緑 100g", "A+B#1%"]
    for sku in skus:
        amazon.add_item(sku, 9)
    result = channel.push([StockUpdate(sku, 4) for sku in skus])
    assert result.failed == {}
    assert [amazon.quantity(sku) for sku in skus] == [4, 4, 4, 4]
    cursor = channel.fetch_orders(None, [], wall.now).cursor
    order_id = amazon.place_order([(sku, 1) for sku in skus], placed_at=wall.advance(60))
    order = by_id(channel.fetch_orders(cursor, [], wall.advance(240)))[order_id]
    assert [line.item for line in order.lines] == skus


def test_unknown_sku_fails_only_its_row_in_a_patch(
    amazon: AmazonStandIn, channel: AmazonChannel
) -> None:
    amazon.add_item("TEA-001", 0)
    result = channel.push([StockUpdate("NOPE-404", 1), StockUpdate("TEA-001", 2)])
    assert list(result.failed) == ["NOPE-404"]
    assert result.failed["NOPE-404"].startswith("Amazon did not take the quantity (NOT_FOUND")
    assert amazon.quantity("TEA-001") == 2


def test_unknown_sku_and_bad_quantity_fail_their_rows_in_a_feed(
    amazon: AmazonStandIn, channel: AmazonChannel
) -> None:
    amazon.add_item("TEA-001", 0)
    amazon.add_item("CUP-002", 0)
    channel.feed_threshold = 2
    updates = [StockUpdate("NOPE-404", 1), StockUpdate("TEA-001", -1), StockUpdate("CUP-002", 6)]
    result = channel.push(updates)
    assert set(result.failed) == {"NOPE-404", "TEA-001"}
    assert "NOT_FOUND" in result.failed["NOPE-404"]
    assert "4000001" in result.failed["TEA-001"]
    assert (amazon.quantity("TEA-001"), amazon.quantity("CUP-002")) == (0, 6)


@pytest.mark.parametrize("route", ["patch", "feed"])
def test_push_keeps_the_sellers_handling_time_and_restock_date(
    amazon: AmazonStandIn, channel: AmazonChannel, route: str
) -> None:
    amazon.add_item("TEA-001", 2, lead_time_to_ship_max_days=5, restock_date="2026-12-24")
    amazon.add_item("CUP-002", 0, lead_time_to_ship_max_days=2)
    if route == "feed":
        channel.feed_threshold = 1
    result = channel.push([StockUpdate("TEA-001", 9), StockUpdate("CUP-002", 4)])
    assert result.failed == {}
    assert amazon.availability("TEA-001") == [
        {
            "fulfillment_channel_code": "DEFAULT",
            "quantity": 9,
            "lead_time_to_ship_max_days": 5,
            "restock_date": "2026-12-24",
        }
    ]
    assert amazon.availability("CUP-002") == [
        {"fulfillment_channel_code": "DEFAULT", "quantity": 4, "lead_time_to_ship_max_days": 2}
    ]
    if route == "feed":
        assert amazon.requests_to("/listings/", "PATCH") == []
        messages = amazon.requests_to("/_s3/", "PUT")[0].json()["messages"]
        assert {p["op"] for m in messages for p in m["patches"]} == {"merge"}


def raw_patch(amazon: AmazonStandIn, sku: str, op: str, entry: dict[str, object]) -> httpx.Response:
    """One patchListingsItem call straight to the stand-in, as any client could send it."""
    with httpx.Client(base_url=amazon.url) as http:
        env = amazon.env()
        form = {
            "grant_type": "refresh_token",
            "refresh_token": env["STOCKBOT_AMAZON_REFRESH_TOKEN"],
            "client_id": env["STOCKBOT_AMAZON_CLIENT_ID"],
            "client_secret": env["STOCKBOT_AMAZON_CLIENT_SECRET"],
        }
        token = http.post("/auth/o2/token", data=form).json()["access_token"]
        patch = {"op": op, "path": "/attributes/fulfillment_availability", "value": [entry]}
        return http.patch(
            f"/listings/2021-08-01/items/DEMOSELLER/{sku}",
            params={"marketplaceIds": "A1VC38T7YXB528"},
            json={"productType": "PRODUCT", "patches": [patch]},
            headers={"x-amz-access-token": token},
        )


def test_stand_in_replace_drops_the_keys_it_does_not_name_and_merge_keeps_them(
    amazon: AmazonStandIn,
) -> None:
    handling = {"lead_time_to_ship_max_days": 5, "restock_date": "2026-12-24"}
    amazon.add_item("TEA-001", 2, **handling)  # type: ignore[arg-type]
    amazon.add_item("CUP-002", 2, **handling)  # type: ignore[arg-type]
    quantity = {"fulfillment_channel_code": "DEFAULT", "quantity": 7}
    assert raw_patch(amazon, "TEA-001", "replace", quantity).json()["status"] == "ACCEPTED"
    assert raw_patch(amazon, "CUP-002", "merge", quantity).json()["status"] == "ACCEPTED"
    assert amazon.availability("TEA-001") == [quantity]
    assert amazon.availability("CUP-002") == [{**quantity, **handling}]
    # merge matches entries by fulfillment_channel_code; a null drops just that key.
    dropped = {"fulfillment_channel_code": "DEFAULT", "restock_date": None}
    assert raw_patch(amazon, "CUP-002", "merge", dropped).json()["status"] == "ACCEPTED"
    assert amazon.availability("CUP-002") == [{**quantity, "lead_time_to_ship_max_days": 5}]
    unnamed = raw_patch(amazon, "CUP-002", "merge", {"quantity": 1}).json()
    assert unnamed["status"] == "INVALID" and amazon.quantity("CUP-002") == 7
    # replace takes the place of the entry with its selector only (#2061).
    fba = {"fulfillment_channel_code": "AMAZON_JP", "quantity": 0}
    assert raw_patch(amazon, "TEA-001", "replace", fba).json()["status"] == "ACCEPTED"
    assert amazon.availability("TEA-001") == [quantity, fba]


def test_a_restricted_listing_fails_only_its_row_and_the_rest_are_pushed(
    amazon: AmazonStandIn, channel: AmazonChannel
) -> None:
    for sku in ("TEA-001", "GATED-002", "CUP-003"):
        amazon.add_item(sku, 0)
    amazon.restrict_listing("GATED-002")
    channel.check()
    updates = [StockUpdate("TEA-001", 4), StockUpdate("GATED-002", 5), StockUpdate("CUP-003", 6)]
    result = channel.push(updates)
    assert list(result.failed) == ["GATED-002"]
    message = result.failed["GATED-002"]
    assert "403 Unauthorized" in message and "Access to requested resource is denied" in message
    assert "Seller Central" in message and "restrict" in message
    assert [amazon.quantity(s) for s in ("TEA-001", "GATED-002", "CUP-003")] == [4, 0, 6]
    # The token was good throughout: no new one was asked for, the refused SKU was sent once.
    assert len(amazon.requests_to("/auth/o2/token", "POST")) == 1
    assert len(amazon.requests_to("/GATED-002", "PATCH")) == 1


def test_a_push_of_only_restricted_listings_with_good_credentials_is_not_an_auth_error(
    amazon: AmazonStandIn, channel: AmazonChannel
) -> None:
    amazon.add_item("GATED-001", 3)
    amazon.restrict_listing("GATED-001")
    result = channel.push([StockUpdate("GATED-001", 1)])
    assert list(result.failed) == ["GATED-001"]
    assert amazon.quantity("GATED-001") == 3
    amazon.lift_restriction("GATED-001")
    assert channel.push([StockUpdate("GATED-001", 1)]).failed == {}
    assert amazon.quantity("GATED-001") == 1


def test_every_call_of_a_push_refused_is_an_auth_error_without_patching_the_rest(
    amazon: AmazonStandIn, fake: FakeTime
) -> None:
    for sku in ("TEA-001", "CUP-002", "POT-003"):
        amazon.add_item(sku, 0)
    channel = channel_for(amazon, fake, amazon_seller_id="SOMEONEELSE")
    with pytest.raises(AuthError, match="STOCKBOT_AMAZON_SELLER_ID"):
        channel.push([StockUpdate(s, 1) for s in ("TEA-001", "CUP-002", "POT-003")])
    assert len(amazon.requests_to("/listings/", "PATCH")) == 1


def test_feed_still_processing_after_the_wait_is_a_temporary_error(
    amazon: AmazonStandIn, channel: AmazonChannel
) -> None:
    amazon.add_item("TEA-001", 0)
    channel.feed_threshold = 1
    channel.feed_max_wait = 0
    with pytest.raises(TemporaryError, match="still processing stock feed"):
        channel.push([StockUpdate("TEA-001", 1)])


# -- failures ------------------------------------------------------------------------------
def test_server_errors_and_throttling_are_retried(
    amazon: AmazonStandIn, channel: AmazonChannel, fake: FakeTime, wall: Wall
) -> None:
    amazon.add_item("TEA-001", 0)
    amazon.fail(503, times=2, match="/listings/")
    amazon.fail(429, times=1, match="/listings/", retry_after=3)
    assert channel.push([StockUpdate("TEA-001", 5)]).failed == {}
    assert amazon.quantity("TEA-001") == 5
    assert max(fake.sleeps) >= 3  # Retry-After honoured
    cursor = channel.fetch_orders(None, [], wall.now).cursor
    amazon.fail(500, times=1, match=ORDERS)
    assert channel.fetch_orders(cursor, [], wall.advance(300)).skipped is None


def test_dropped_connections_are_retried(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    amazon.add_item("TEA-001", 0)
    amazon.drop(times=1, match="/listings/")
    assert channel.push([StockUpdate("TEA-001", 2)]).failed == {}
    cursor = channel.fetch_orders(None, [], wall.now).cursor
    amazon.drop(times=2, match=ORDERS)
    assert channel.fetch_orders(cursor, [], wall.advance(300)).skipped is None


def test_persistent_failure_ends_in_a_temporary_error(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    amazon.add_item("TEA-001", 0)
    # The clean start first: it reads a listing, which the failures below would refuse.
    cursor = channel.fetch_orders(None, [], wall.now).cursor
    amazon.fail(500, times=50, match="/listings/")
    with pytest.raises(TemporaryError, match="next cycle tries again"):
        channel.push([StockUpdate("TEA-001", 2)])
    amazon.fail(503, times=50, match=ORDERS)
    with pytest.raises(TemporaryError):
        channel.fetch_orders(cursor, [], wall.advance(300))


def test_wrong_refresh_token_is_an_auth_error_that_keeps_the_secret(
    amazon: AmazonStandIn, fake: FakeTime
) -> None:
    channel = channel_for(amazon, fake, amazon_refresh_token="Atzr|stolen-looking-secret")
    with pytest.raises(AuthError) as caught:
        channel.check()
    assert "invalid_grant" in str(caught.value)
    assert "STOCKBOT_AMAZON_REFRESH_TOKEN" in str(caught.value)
    assert "stolen-looking-secret" not in str(caught.value)


def test_wrong_client_secret_is_an_auth_error_naming_what_to_fix(
    amazon: AmazonStandIn, fake: FakeTime
) -> None:
    channel = channel_for(amazon, fake, amazon_client_secret="not-the-secret")
    with pytest.raises(AuthError) as caught:
        channel.push([StockUpdate("TEA-001", 1)])
    message = str(caught.value)
    assert "invalid_client" in message and "STOCKBOT_AMAZON_CLIENT_SECRET" in message
    assert "not-the-secret" not in message and amazon.client_secret not in message


def test_expired_access_token_is_renewed_once(
    amazon: AmazonStandIn, channel: AmazonChannel
) -> None:
    amazon.add_item("TEA-001", 0)
    channel.check()
    amazon.expire_tokens()
    assert channel.push([StockUpdate("TEA-001", 3)]).failed == {}
    assert len(amazon.requests_to("/auth/o2/token", "POST")) == 2


def test_other_sellers_listings_are_an_auth_error(amazon: AmazonStandIn, fake: FakeTime) -> None:
    channel = channel_for(amazon, fake, amazon_seller_id="SOMEONEELSE")
    with pytest.raises(AuthError, match="STOCKBOT_AMAZON_SELLER_ID"):
        channel.check()


def test_access_token_is_cached_between_calls(
    amazon: AmazonStandIn, channel: AmazonChannel
) -> None:
    amazon.add_item("TEA-001", 0)
    channel.check()
    channel.push([StockUpdate("TEA-001", 1), StockUpdate("TEA-001", 2)])
    assert len(amazon.requests_to("/auth/o2/token", "POST")) == 1


def test_missing_settings_are_a_config_error_naming_them(amazon: AmazonStandIn) -> None:
    settings = settings_for(amazon, amazon_client_id="", amazon_refresh_token=None)
    with pytest.raises(ConfigError) as caught:
        AmazonChannel.from_settings(settings)
    assert "STOCKBOT_AMAZON_CLIENT_ID" in str(caught.value)
    assert "STOCKBOT_AMAZON_REFRESH_TOKEN" in str(caught.value)


# -- rates ---------------------------------------------------------------------------------
def test_patches_are_spaced_at_five_a_second(
    amazon: AmazonStandIn, channel: AmazonChannel, fake: FakeTime
) -> None:
    skus = [f"TEA-{n:03d}" for n in range(12)]
    for sku in skus:
        amazon.add_item(sku, 0)
    channel.push([StockUpdate(sku, 1) for sku in skus])
    # The burst of 5 goes at once, then one every 0.2 s: seven real waits, 1.4 s in all.
    assert len([s for s in fake.sleeps if s > 0.01]) == 7
    assert sum(fake.sleeps) == pytest.approx(7 / 5, abs=1e-4)


def test_stand_in_throttles_a_client_faster_than_the_usage_plan() -> None:
    with AmazonStandIn() as stand_in:
        stand_in.add_item("TEA-001", 0)
        env = stand_in.env()
        with httpx.Client() as http:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": env["STOCKBOT_AMAZON_REFRESH_TOKEN"],
                "client_id": env["STOCKBOT_AMAZON_CLIENT_ID"],
                "client_secret": env["STOCKBOT_AMAZON_CLIENT_SECRET"],
            }
            token = http.post(env["STOCKBOT_AMAZON_TOKEN_URL"], data=form).json()["access_token"]
            url = f"{stand_in.url}/listings/2021-08-01/items/DEMOSELLER/TEA-001"
            body = {"productType": "PRODUCT", "patches": [{"op": "replace", "path": "/x"}]}
            began = time.monotonic()
            answers = [
                http.patch(
                    url,
                    params={"marketplaceIds": "A1VC38T7YXB528"},
                    json=body,
                    headers={"x-amz-access-token": token},
                )
                for _ in range(12)
            ]
            elapsed = time.monotonic() - began
    statuses = [a.status_code for a in answers]
    # The bucket holds 5 and refills 5/s on the real clock, which a busy machine moves on.
    assert statuses[:5] == [200] * 5 and set(statuses) == {200, 429}
    assert statuses.count(200) <= 5 + math.ceil(elapsed * 5)
    assert answers[statuses.index(429)].json()["errors"][0]["code"] == "QuotaExceeded"


def test_order_visible_20_minutes_late_is_still_applied(
    amazon: AmazonStandIn, channel: AmazonChannel, wall: Wall
) -> None:
    amazon.add_item("TEA-001", 5)
    first = channel.fetch_orders(None, [], wall.now)
    order_id = amazon.place_order([("TEA-001", 1)], placed_at=wall.advance(60))
    amazon.hide_order(order_id)  # Amazon has not indexed it yet
    second = channel.fetch_orders(first.cursor, [], wall.advance(240))
    assert order_id not in by_id(second)
    fake_budget_gap = 20 * 60
    second = channel.fetch_orders(second.cursor, [], wall.advance(fake_budget_gap))
    assert order_id not in by_id(second)
    amazon.show_order(order_id)  # found now, by its unchanged lastUpdatedTime
    third = channel.fetch_orders(second.cursor, [], wall.advance(240))
    assert order_id in by_id(third)


def old_feed_text(header: dict[str, str], chunk: list[StockUpdate]) -> str:
    """The feed as the adapter wrote it before it wrote the text itself: `json.dumps` of the
    message dicts (a test's yardstick for `_feed_content`)."""
    messages = [
        {
            "messageId": number,
            "sku": update.item,
            "operationType": "PATCH",
            "productType": "PRODUCT",
            "patches": [
                {
                    "op": "merge",
                    "path": "/attributes/fulfillment_availability",
                    "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": update.quantity}],
                }
            ],
        }
        for number, update in enumerate(chunk, 1)
    ]
    return json.dumps({"header": header, "messages": messages}, ensure_ascii=False)


def test_feed_content_is_the_text_json_dumps_makes_of_the_messages() -> None:
    """The feed is written message by message (issue 8): byte for byte what encoding the
    messages as dicts gives, for SKUs JSON must escape and for repeated quantities."""
    skus = ["TEA-001", 'a"b', "back\\slash", "茶-緑", "tab\tnew\nline", "\x01", "\u2028", "😀/#"]
    chunk = [
        StockUpdate(sku, quantity)
        for sku, quantity in zip(skus, [0, 5, 5, 99_999, 1, 0, 7, 5], strict=True)
    ]
    header = {"sellerId": "SELLER-1", "version": "2.0", "issueLocale": "ja_JP"}
    assert _feed_content(header, chunk) == old_feed_text(header, chunk)
    assert _feed_content(header, []) == json.dumps({"header": header, "messages": []})
