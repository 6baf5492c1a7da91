"""The real Rakuten adapter against the Rakuten stand-in on loopback."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest

from bot.channels.base import Order, StockUpdate
from bot.channels.rakuten import JST, RakutenChannel, item_key
from bot.config import Settings
from bot.errors import AuthError, ConfigError, RejectedError, TemporaryError
from bot.standins.rakuten import RakutenStandIn
from tests.fakes import FakeTime

NOW = datetime.now(JST).replace(microsecond=0)


def settings_for(stand_in: RakutenStandIn, **override: str) -> Settings:
    return Settings.from_env(stand_in.env(), **override)


_open: list[RakutenChannel] = []


def channel_for(
    stand_in: RakutenStandIn, fake: FakeTime | None = None, **override: str
) -> RakutenChannel:
    fake = fake or FakeTime()
    channel = RakutenChannel.from_settings(
        settings_for(stand_in, **override),
        sleep=fake.sleep,
        clock=fake.clock,
        wall_clock=lambda: NOW,
    )
    _open.append(channel)
    return channel


@pytest.fixture(autouse=True)
def _close_channels() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


@pytest.fixture
def rakuten() -> Iterator[RakutenStandIn]:
    stand_in = RakutenStandIn()
    stand_in.enforce_rate_limits = False  # the adapter's clock is fake, the stand-in's is not
    stand_in.now = lambda: NOW  # Rakuten's clock agrees with the bot's unless a test says not
    with stand_in:
        yield stand_in


def cursor_at(moment: datetime) -> str:
    return json.dumps({"until": moment.isoformat()})


def by_id(orders: list[Order]) -> dict[str, Order]:
    return {o.order_id: o for o in orders}


def upsert_batches(stand_in: RakutenStandIn) -> list[int]:
    return [len(r.json()["inventories"]) for r in stand_in.requests_to("bulk-upsert")]


# -- orders ------------------------------------------------------------------------------
def test_first_fetch_returns_no_orders_and_a_cursor_at_rakutens_time(
    rakuten: RakutenStandIn,
) -> None:
    rakuten.add_item("tee:red", 5)
    rakuten.place_order([("tee:red", 1)], placed_at=NOW - timedelta(minutes=1))
    fast = NOW + timedelta(minutes=9)  # this machine's clock runs 9 minutes fast
    result = channel_for(rakuten).fetch_orders(None, [], fast)
    assert result.orders == []
    # The clean start is Rakuten's time (the Date of its answer), not this machine's.
    assert result.start == NOW
    cursor = json.loads(result.cursor)
    assert datetime.fromisoformat(cursor["until"]) == NOW
    assert datetime.fromisoformat(cursor["start"]) == NOW
    # Asking costs one searchOrder over the last minute (it used to cost nothing); no getOrder.
    [search] = [r.json() for r in rakuten.requests]
    assert (search["startDatetime"], search["endDatetime"]) == (
        (fast - timedelta(minutes=1)).astimezone(JST).strftime("%Y-%m-%dT%H:%M:%S+0900"),
        fast.astimezone(JST).strftime("%Y-%m-%dT%H:%M:%S+0900"),
    )
    assert rakuten.requests_to("searchOrder") and not rakuten.requests_to("getOrder")


def test_a_clean_start_rakuten_refuses_raises_and_takes_no_start(rakuten: RakutenStandIn) -> None:
    rakuten.fail(400, times=1, match="searchOrder")
    with pytest.raises(RejectedError, match="searchOrder"):
        channel_for(rakuten).fetch_orders(None, [], NOW)


def test_new_order_is_returned_with_its_lines(rakuten: RakutenStandIn) -> None:
    rakuten.add_item("tee:Red-M", 5)
    rakuten.add_item("mug", 3)
    number = rakuten.place_order([("tee:Red-M", 2), ("mug", 1)], placed_at=NOW)
    result = channel_for(rakuten).fetch_orders(cursor_at(NOW - timedelta(minutes=5)), [], NOW)
    (order,) = result.orders
    assert order.order_id == number
    assert order.placed_at == NOW
    assert not order.cancelled and not order.closed
    assert sorted((line.item, line.quantity) for line in order.lines) == [
        ("mug:mug", 1),
        ("tee:Red-M", 2),
    ]
    assert rakuten.quantity("tee:Red-M") == 3
    search = rakuten.requests_to("searchOrder")[0].json()
    assert search["dateType"] == 1
    # The end lies an hour ahead, so a slow bot clock never cuts the window short.
    assert search["endDatetime"] == (NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+0900")
    assert rakuten.requests_to("getOrder")[0].json()["version"] == 7


def test_refetch_with_the_overlap_returns_the_same_line_ids(rakuten: RakutenStandIn) -> None:
    rakuten.add_item("tee:red", 5)
    rakuten.place_order([("tee:red", 1)], placed_at=NOW - timedelta(minutes=3))
    channel = channel_for(rakuten)
    first = channel.fetch_orders(
        cursor_at(NOW - timedelta(minutes=30)), [], NOW - timedelta(minutes=2)
    )
    second = channel.fetch_orders(first.cursor, [], NOW)
    assert [o.lines for o in first.orders] == [o.lines for o in second.orders]
    search = rakuten.requests_to("searchOrder")[-1].json()
    # Three days back, but never before where the first cursor's search began.
    overlap_start = NOW - timedelta(minutes=40)
    assert search["startDatetime"] == overlap_start.strftime("%Y-%m-%dT%H:%M:%S+0900")


def test_cursor_does_not_move_past_the_window_it_read(rakuten: RakutenStandIn) -> None:
    result = channel_for(rakuten).fetch_orders(cursor_at(NOW - timedelta(hours=1)), [], NOW)
    assert datetime.fromisoformat(json.loads(result.cursor)["until"]) == NOW


def test_cancelled_order_seen_through_open_orders_is_cancelled_and_closed(
    rakuten: RakutenStandIn,
) -> None:
    rakuten.add_item("tee:red", 5)
    number = rakuten.place_order([("tee:red", 2)], placed_at=NOW - timedelta(days=3))
    rakuten.cancel_order(number)
    result = channel_for(rakuten).fetch_orders(cursor_at(NOW - timedelta(minutes=5)), [number], NOW)
    (order,) = result.orders
    assert order.cancelled and order.closed
    assert [line.quantity for line in order.lines] == [0]
    assert rakuten.quantity("tee:red") == 5
    assert rakuten.requests_to("getOrder")[0].json()["orderNumberList"] == [number]


def test_cancel_pending_order_still_counts_and_stays_open(rakuten: RakutenStandIn) -> None:
    rakuten.add_item("tee:red", 5)
    number = rakuten.place_order([("tee:red", 2)], placed_at=NOW - timedelta(days=1))
    rakuten.request_cancel(number)
    (order,) = channel_for(rakuten).fetch_orders(cursor_at(NOW), [number], NOW).orders
    assert not order.cancelled and not order.closed
    assert [line.quantity for line in order.lines] == [2]


def test_quantity_change_keeps_the_line_id(rakuten: RakutenStandIn) -> None:
    rakuten.add_item("tee:red", 5)
    rakuten.add_item("mug", 5)
    number = rakuten.place_order([("tee:red", 2), ("mug", 1)], placed_at=NOW - timedelta(days=1))
    channel = channel_for(rakuten)
    (before,) = channel.fetch_orders(cursor_at(NOW), [number], NOW).orders
    rakuten.change_line(number, "tee:red", 3)
    rakuten.change_line(number, "mug", 0)
    (after,) = channel.fetch_orders(cursor_at(NOW), [number], NOW).orders
    assert [line.line_id for line in before.lines] == [line.line_id for line in after.lines]
    assert {line.item: line.quantity for line in after.lines} == {"tee:red": 3, "mug:mug": 0}
    assert rakuten.quantity("tee:red") == 2 and rakuten.quantity("mug") == 5


def test_orders_beyond_one_page_are_all_returned(rakuten: RakutenStandIn) -> None:
    rakuten.add_item("tee:red", 2000)
    for i in range(1005):
        rakuten.place_order([("tee:red", 1)], placed_at=NOW - timedelta(seconds=i))
    result = channel_for(rakuten).fetch_orders(cursor_at(NOW - timedelta(minutes=30)), [], NOW)
    assert len(by_id(result.orders)) == 1005
    pages = [
        r.json()["PaginationRequestModel"]["requestPage"]
        for r in rakuten.requests_to("searchOrder")
    ]
    assert pages == [1, 2]
    assert [len(r.json()["orderNumberList"]) for r in rakuten.requests_to("getOrder")] == [
        100
    ] * 10 + [5]


def test_a_window_longer_than_63_days_is_searched_in_pieces(rakuten: RakutenStandIn) -> None:
    rakuten.add_item("tee:red", 5)
    old = rakuten.place_order([("tee:red", 1)], placed_at=NOW - timedelta(days=90))
    new = rakuten.place_order([("tee:red", 1)], placed_at=NOW - timedelta(days=1))
    result = channel_for(rakuten).fetch_orders(cursor_at(NOW - timedelta(days=100)), [], NOW)
    assert set(by_id(result.orders)) == {old, new}
    assert len(rakuten.requests_to("searchOrder")) == 2


def test_shipped_order_closes_only_after_thirty_days(rakuten: RakutenStandIn) -> None:
    rakuten.add_item("tee:red", 5)
    recent = rakuten.place_order([("tee:red", 1)], placed_at=NOW - timedelta(days=2))
    old = rakuten.place_order([("tee:red", 1)], placed_at=NOW - timedelta(days=40))
    rakuten.ship(recent)
    rakuten.ship(old)
    orders = by_id(channel_for(rakuten).fetch_orders(cursor_at(NOW), [recent, old], NOW).orders)
    assert not orders[recent].closed and orders[old].closed
    assert not orders[old].cancelled and orders[old].lines[0].quantity == 1


def test_an_order_rakuten_cannot_find_is_skipped_not_fatal(rakuten: RakutenStandIn) -> None:
    rakuten.add_item("tee:red", 5)
    number = rakuten.place_order([("tee:red", 1)], placed_at=NOW - timedelta(days=1))
    result = channel_for(rakuten).fetch_orders(
        cursor_at(NOW), [number, "123456-20200101-0000000009"], NOW
    )
    assert [o.order_id for o in result.orders] == [number]


def test_order_api_error_message_is_a_rejected_error_with_its_code(
    rakuten: RakutenStandIn,
) -> None:
    refusal = {
        "orderNumberList": None,
        "MessageModelList": [
            {
                "messageType": "ERROR",
                "messageCode": "ORDER_EXT_API_SEARCH_ORDER_ERROR_011",
                "message": "startDatetimeの書式が不正です。",
            }
        ],
        "PaginationResponseModel": None,
    }
    rakuten.fail(400, match="searchOrder", body=json.dumps(refusal).encode())
    with pytest.raises(RejectedError) as caught:
        channel_for(rakuten).fetch_orders(cursor_at(NOW), [], NOW)
    assert caught.value.code == "ORDER_EXT_API_SEARCH_ORDER_ERROR_011"
    assert "startDatetime" in str(caught.value)
    assert len(rakuten.requests_to("searchOrder")) == 1  # a 400 is not retried


def test_unreadable_cursor_is_rejected_not_treated_as_a_fresh_start(
    rakuten: RakutenStandIn,
) -> None:
    with pytest.raises(RejectedError, match="cursor"):
        channel_for(rakuten).fetch_orders("not json", [], NOW)


def test_order_items_match_the_sheet_spelling_through_item_key() -> None:
    assert item_key("TEE-1:Red") == item_key("tee-1:Red") == ("tee-1", "Red")
    assert item_key("tee-1:red") != item_key("tee-1:Red")
    assert item_key("ABC") == ("abc", "ABC") == item_key("abc:ABC")


# -- stock -------------------------------------------------------------------------------
def test_push_sets_quantities_in_batches_of_400(rakuten: RakutenStandIn) -> None:
    items = [f"item-{i}:v" for i in range(1000)]
    for item in items:
        rakuten.add_item(item, 0)
    result = channel_for(rakuten).push([StockUpdate(item, i % 7) for i, item in enumerate(items)])
    assert result.failed == {} and result.calls == 3
    assert upsert_batches(rakuten) == [400, 400, 200]
    assert all(rakuten.quantity(item) == i % 7 for i, item in enumerate(items))
    entry = rakuten.requests_to("bulk-upsert")[0].json()["inventories"][0]
    assert entry == {"manageNumber": "item-0", "variantId": "v", "mode": "ABSOLUTE", "quantity": 0}


def test_push_matches_manage_number_in_any_case_and_variant_exactly(
    rakuten: RakutenStandIn,
) -> None:
    rakuten.add_item("tee-1:Red", 1)
    rakuten.add_item("plain", 1)
    result = channel_for(rakuten).push(
        [StockUpdate("TEE-1:Red", 7), StockUpdate("tee-1:red", 9), StockUpdate("PLAIN", 4)]
    )
    assert result.failed == {}
    assert rakuten.quantity("tee-1:Red") == 7
    assert rakuten.quantity("plain") == 1  # "PLAIN" means variantId "PLAIN", another item
    assert rakuten.orphans == {("tee-1", "red"): 9, ("plain", "PLAIN"): 4}


def test_unknown_item_is_accepted_like_rakuten_does(rakuten: RakutenStandIn) -> None:
    result = channel_for(rakuten).push([StockUpdate("nothing:here", 3)])
    assert result.failed == {} and result.calls == 1
    assert rakuten.quantity("nothing:here") is None


def test_malformed_item_fails_alone_and_is_not_sent(rakuten: RakutenStandIn) -> None:
    rakuten.add_item("tee:red", 1)
    result = channel_for(rakuten).push([StockUpdate("tee shirt:red", 2), StockUpdate("tee:red", 4)])
    assert set(result.failed) == {"tee shirt:red"}
    assert "manageNumber:variantId" in result.failed["tee shirt:red"]
    assert upsert_batches(rakuten) == [1]
    assert rakuten.quantity("tee:red") == 4


def test_entry_refused_by_rakuten_is_reported_and_the_rest_sent_again(
    rakuten: RakutenStandIn,
) -> None:
    rakuten.add_item("a:1", 0)
    rakuten.add_item("b:1", 0)
    result = channel_for(rakuten).push([StockUpdate("a:1", 100_000), StockUpdate("b:1", 5)])
    assert set(result.failed) == {"a:1"} and "IE0003" in result.failed["a:1"]
    assert result.calls == 2 and upsert_batches(rakuten) == [2, 1]
    assert rakuten.quantity("a:1") == 0 and rakuten.quantity("b:1") == 5


def test_two_rows_naming_one_rakuten_item_are_reported(rakuten: RakutenStandIn) -> None:
    rakuten.add_item("tee:red", 0)
    result = channel_for(rakuten).push([StockUpdate("TEE:red", 1), StockUpdate("tee:red", 2)])
    assert set(result.failed) == {"TEE:red"}
    assert upsert_batches(rakuten) == [1] and rakuten.quantity("tee:red") == 2


def test_upsert_rate_limiter_waits_a_second_between_calls(rakuten: RakutenStandIn) -> None:
    fake = FakeTime()
    channel = channel_for(rakuten, fake)
    channel.push([StockUpdate(f"i{n}:v", 1) for n in range(1200)])
    assert upsert_batches(rakuten) == [400, 400, 400]
    assert len(fake.sleeps) == 2 and sum(fake.sleeps) == pytest.approx(2.0)


def test_adapter_keeps_under_the_stand_ins_published_rates() -> None:
    fake = FakeTime()
    stand_in = RakutenStandIn()
    with stand_in:
        stand_in.clock = fake.clock  # both sides share the fake clock: throttling is on
        channel = channel_for(stand_in, fake)
        channel.push([StockUpdate(f"i{n}:v", 1) for n in range(800)])
        channel.fetch_orders(cursor_at(NOW), [], NOW)
        assert [r.path for r in stand_in.requests].count("/es/2.0/inventories/bulk-upsert") == 2
        assert len(stand_in.requests) == 3  # no 429 had to be retried


# -- the stand-in's own rules ------------------------------------------------------------
def raw(stand_in: RakutenStandIn, path: str, body: object) -> httpx.Response:
    token = base64.b64encode(b"demo-secret:demo-license").decode()
    return httpx.post(stand_in.url + path, json=body, headers={"Authorization": f"ESA {token}"})


def test_standin_throttles_a_client_faster_than_one_upsert_a_second() -> None:
    stand_in = RakutenStandIn()
    with stand_in:
        body = {
            "inventories": [
                {"manageNumber": "a", "variantId": "b", "mode": "ABSOLUTE", "quantity": 1}
            ]
        }
        assert raw(stand_in, "/es/2.0/inventories/bulk-upsert", body).status_code == 204
        assert raw(stand_in, "/es/2.0/inventories/bulk-upsert", body).status_code == 429


def test_standin_rejects_an_upsert_batch_over_400(rakuten: RakutenStandIn) -> None:
    entry = {"manageNumber": "a", "variantId": "b", "mode": "ABSOLUTE", "quantity": 1}
    answer = raw(rakuten, "/es/2.0/inventories/bulk-upsert", {"inventories": [entry] * 401})
    assert answer.status_code == 400 and answer.json()["errors"][0]["code"] == "IE0003"


def test_standin_rejects_a_search_window_over_63_days(rakuten: RakutenStandIn) -> None:
    fmt = "%Y-%m-%dT%H:%M:%S+0900"
    body = {
        "dateType": 1,
        "startDatetime": (NOW - timedelta(days=64)).strftime(fmt),
        "endDatetime": NOW.strftime(fmt),
    }
    answer = raw(rakuten, "/es/2.0/order/searchOrder/", body)
    assert answer.status_code == 400
    assert answer.json()["MessageModelList"][0]["messageType"] == "ERROR"


# -- failures ----------------------------------------------------------------------------
def test_429_and_5xx_are_retried(rakuten: RakutenStandIn) -> None:
    rakuten.add_item("tee:red", 0)
    rakuten.fail(429, times=1, match="bulk-upsert", retry_after=1)
    rakuten.fail(500, times=1, match="bulk-upsert")
    rakuten.fail(503, times=2, match="searchOrder")
    channel = channel_for(rakuten)
    assert channel.push([StockUpdate("tee:red", 4)]).calls == 3
    assert rakuten.quantity("tee:red") == 4
    channel.fetch_orders(cursor_at(NOW), [], NOW)
    assert len(rakuten.requests_to("searchOrder")) == 3


def test_dropped_connections_are_retried(rakuten: RakutenStandIn) -> None:
    rakuten.add_item("tee:red", 0)
    rakuten.drop(times=2, match="bulk-upsert")
    assert channel_for(rakuten).push([StockUpdate("tee:red", 4)]).failed == {}
    assert rakuten.quantity("tee:red") == 4


def test_persistent_server_errors_end_in_temporary_error(rakuten: RakutenStandIn) -> None:
    rakuten.fail(502, times=50, match="bulk-upsert")
    with pytest.raises(TemporaryError):
        channel_for(rakuten).push([StockUpdate("tee:red", 4)])


def test_maintenance_is_a_temporary_error_never_no_orders(rakuten: RakutenStandIn) -> None:
    rakuten.maintenance = True
    with pytest.raises(TemporaryError, match="503"):
        channel_for(rakuten).fetch_orders(cursor_at(NOW), [], NOW)


def test_wrong_license_key_is_an_auth_error_that_keeps_the_key_secret(
    rakuten: RakutenStandIn,
) -> None:
    channel = channel_for(rakuten, rakuten_license_key="SL123456_wrong-key")
    for call in (
        lambda: channel.fetch_orders(cursor_at(NOW), [], NOW),
        lambda: channel.push([StockUpdate("tee:red", 1)]),
        channel.check,
    ):
        with pytest.raises(AuthError) as caught:
            call()
        message = str(caught.value)
        assert "ES01-01" in message and "STOCKBOT_RAKUTEN_LICENSE_KEY" in message
        assert "wrong-key" not in message and "demo-secret" not in message
        assert base64.b64encode(b"demo-secret:SL123456_wrong-key").decode() not in message


def test_expired_license_on_the_inventory_api_names_ge0011(rakuten: RakutenStandIn) -> None:
    rakuten.license_expired = True
    with pytest.raises(AuthError, match="GE0011"):
        channel_for(rakuten).push([StockUpdate("tee:red", 1)])


# -- setup -------------------------------------------------------------------------------
def test_check_proves_credentials_on_both_apis(rakuten: RakutenStandIn) -> None:
    rakuten.add_item("tee:red", 5)
    rakuten.place_order([("tee:red", 1)], placed_at=NOW - timedelta(hours=1))
    summary = channel_for(rakuten).check()
    assert "1 orders in the last 24 hours" in summary
    assert {r.path for r in rakuten.requests} == {
        "/es/2.0/inventories/bulk-get",
        "/es/2.0/order/searchOrder/",
    }


def test_check_passes_when_an_unknown_item_read_answers_404(rakuten: RakutenStandIn) -> None:
    rakuten.unknown_items_not_found = True  # the probe item is unknown to every shop
    summary = channel_for(rakuten).check()
    assert "0 orders in the last 24 hours" in summary
    (probe,) = rakuten.requests_to("bulk-get")
    assert probe.json()["inventories"][0]["manageNumber"] == "stockbot-check"


def test_check_fails_with_bad_credentials_whatever_an_unknown_item_answers(
    rakuten: RakutenStandIn,
) -> None:
    rakuten.unknown_items_not_found = True
    with pytest.raises(AuthError, match="ES01-01"):
        channel_for(rakuten, rakuten_service_secret="wrong-secret").check()
    rakuten.license_expired = True  # the order API still accepts the key; inventory does not
    with pytest.raises(AuthError, match="GE0011"):
        channel_for(rakuten).check()


def test_check_names_any_other_inventory_refusal(rakuten: RakutenStandIn) -> None:
    rakuten.fail(400, times=1, match="bulk-get")
    with pytest.raises(RejectedError, match="bulk-get"):
        channel_for(rakuten).check()


def test_missing_credentials_name_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STOCKBOT_RAKUTEN_LICENSE_KEY", raising=False)
    settings = Settings(_env_file=None, rakuten_service_secret="x")
    with pytest.raises(ConfigError) as caught:
        RakutenChannel.from_settings(settings)
    assert "STOCKBOT_RAKUTEN_LICENSE_KEY" in str(caught.value)
    assert "STOCKBOT_RAKUTEN_SERVICE_SECRET" not in str(caught.value)


@pytest.mark.slow  # about 1 s once the stand-in base sends with TCP_NODELAY; 9 s before
def test_more_than_15000_hits_are_read_by_halving_the_window(rakuten: RakutenStandIn) -> None:
    rakuten.add_item("tee:red", 20_000)
    for i in range(15_001):
        rakuten.place_order([("tee:red", 1)], placed_at=NOW - timedelta(seconds=i))
    result = channel_for(rakuten).fetch_orders(cursor_at(NOW - timedelta(days=1)), [], NOW)
    assert len(by_id(result.orders)) == 15_001


# -- late and refused orders (issue 6, defects 9 and 10) ----------------------------------
def test_order_visible_40_minutes_late_is_still_applied(rakuten: RakutenStandIn) -> None:
    rakuten.add_item("tee:red", 5)
    number = rakuten.place_order([("tee:red", 1)], placed_at=NOW)
    rakuten.hide_order(number)  # payment review: searchOrder does not show it yet
    channel = channel_for(rakuten)
    cursor = cursor_at(NOW - timedelta(minutes=5))
    for minutes in (5, 20):
        rakuten.now = lambda m=minutes: NOW + timedelta(minutes=m)
        fetched = channel.fetch_orders(cursor, [], NOW + timedelta(minutes=minutes))
        assert fetched.orders == []
        cursor = fetched.cursor
    rakuten.now = lambda: NOW + timedelta(minutes=40)
    rakuten.show_order(number)
    rakuten.now = lambda: NOW + timedelta(minutes=45)
    late = channel.fetch_orders(cursor, [], NOW + timedelta(minutes=45))
    assert [o.order_id for o in late.orders] == [number]


def test_bot_clock_15_minutes_fast_loses_no_order(rakuten: RakutenStandIn) -> None:
    rakuten.add_item("tee:red", 5)
    fast = timedelta(minutes=15)
    channel = channel_for(rakuten)
    first = channel.fetch_orders(cursor_at(NOW - timedelta(minutes=5)), [], NOW + fast)
    # The cursor is Rakuten's time (its Date header), not the bot's fast clock.
    assert datetime.fromisoformat(json.loads(first.cursor)["until"]) == NOW
    number = rakuten.place_order([("tee:red", 1)], placed_at=NOW + timedelta(minutes=1))
    rakuten.now = lambda: NOW + timedelta(minutes=6)
    second = channel.fetch_orders(first.cursor, [], NOW + timedelta(minutes=6) + fast)
    assert [o.order_id for o in second.orders] == [number]


def test_rakuten_order_refused_by_getorder_is_asked_again_until_read(
    rakuten: RakutenStandIn,
) -> None:
    rakuten.add_item("tee:red", 5)
    number = rakuten.place_order([("tee:red", 1)], placed_at=NOW - timedelta(minutes=1))
    rakuten.refuse_reads(number, times=2)
    channel = channel_for(rakuten)
    first = channel.fetch_orders(cursor_at(NOW - timedelta(minutes=5)), [], NOW)
    assert first.orders == []
    assert first.problems == ()
    [(about, problem)] = first.order_problems
    assert about == number and number in problem and "asks again" in problem
    # Four days on the order is outside the search window: only the cursor remembers it.
    later = NOW + timedelta(days=4)
    rakuten.now = lambda: later
    second = channel.fetch_orders(first.cursor, [], later)
    assert second.orders == []
    [(about, reminder)] = second.order_problems
    assert about == number and "still unreadable" in reminder
    rakuten.now = lambda: later + timedelta(minutes=5)
    third = channel.fetch_orders(second.cursor, [], later + timedelta(minutes=5))
    assert [o.order_id for o in third.orders] == [number]
    assert third.problems == () and third.order_problems == ()
    assert json.loads(third.cursor)["retry"] == {}
    asked = [r.json()["orderNumberList"] for r in rakuten.requests_to("getOrder")]
    assert asked == [[number]] * 3


def test_known_orders_found_again_in_the_wide_overlap_are_not_read_in_full(
    rakuten: RakutenStandIn,
) -> None:
    rakuten.add_item("tee:red", 5)
    known = rakuten.place_order([("tee:red", 1)], placed_at=NOW - timedelta(days=1))
    new = rakuten.place_order([("tee:red", 1)], placed_at=NOW - timedelta(minutes=1))
    result = channel_for(rakuten).fetch_orders(
        cursor_at(NOW - timedelta(days=2)), [], NOW, known_orders={known}
    )
    assert [o.order_id for o in result.orders] == [new]
    assert rakuten.requests_to("getOrder")[0].json()["orderNumberList"] == [new]


def test_with_this_machines_clock_days_behind_the_search_reads_on_to_rakutens_own_time(
    rakuten: RakutenStandIn,
) -> None:
    """The VM's clock two days behind, the cursor 5 hours old: an order placed a minute ago on
    Rakuten's clock is found, and the cursor moves to Rakuten's time, not an hour past the
    old one; the second search ends an hour past Rakuten's time, as a right clock would ask."""
    rakuten.add_item("tee:red", 5)
    rakuten.now = lambda: NOW
    number = rakuten.place_order([("tee:red", 1)], placed_at=NOW - timedelta(minutes=1))
    channel = channel_for(rakuten)
    start = NOW - timedelta(hours=5)
    result = channel.fetch_orders(
        json.dumps({"until": start.isoformat(), "start": (start - timedelta(days=9)).isoformat()}),
        [],
        NOW - timedelta(days=2),
    )
    assert [o.order_id for o in result.orders] == [number]
    assert datetime.fromisoformat(json.loads(result.cursor)["until"]) == NOW
    ends = [r.json()["endDatetime"] for r in rakuten.requests_to("searchOrder")]
    assert ends[1] == (NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+0900")
