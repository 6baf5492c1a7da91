"""The real Yahoo! Shopping adapter against the Yahoo stand-in on loopback.

Only time is fake: the adapter's rate limiter and retries sleep on a fake clock that the
stand-in shares, so its rate enforcement and signature checks see the same time.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bot.channels.base import StockUpdate
from bot.channels.yahoo import YahooChannel, _root_name, _xml
from bot.config import Settings
from bot.errors import AuthError, ConfigError, RejectedError, TemporaryError
from bot.standins.yahoo import YahooStandIn
from tests.world import world

API = "/ShoppingWebService/V1/"
JST = timezone(timedelta(hours=9))
_XML_HEADERS = {"Content-Type": "application/xml; charset=utf-8"}


class FakeTime:
    """A clock that only moves when something sleeps or a test advances it."""

    def __init__(self) -> None:
        self.t = 1_000.0
        self.wall = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
        self.slept: list[float] = []

    def monotonic(self) -> float:
        """Seconds, monotonic."""
        return self.t

    def sleep(self, seconds: float) -> None:
        """Advance instead of waiting."""
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Let time pass."""
        self.t += seconds
        self.wall += timedelta(seconds=seconds)

    def now(self) -> datetime:
        """Wall-clock time."""
        return self.wall


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    """One throwaway store key for the whole module (generating one takes a moment)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def fake() -> FakeTime:
    """Fake time shared by the adapter and the stand-in."""
    return FakeTime()


@pytest.fixture
def store(key: rsa.RSAPrivateKey, fake: FakeTime) -> Iterator[YahooStandIn]:
    """A running Yahoo stand-in on the fake clock, with a few items listed."""
    with YahooStandIn(private_key=key) as stand_in:
        assert isinstance(stand_in, YahooStandIn)
        stand_in.clock = fake.monotonic
        stand_in.now = fake.now
        stand_in.add_item("cup-001-w", 10)
        stand_in.add_item("tee:red-m", 10)
        yield stand_in


def settings(store: YahooStandIn, **overrides: Any) -> Settings:
    """Settings from the stand-in's environment, with overrides."""
    return Settings.from_env(store.env(), **overrides)


@pytest.fixture
def make(store: YahooStandIn, fake: FakeTime, tmp_path: Path) -> Iterator[Any]:
    """Build real adapters pointed at the stand-in; they are closed afterwards.

    Adapters built by one test share a state path, as `stockbot sync` processes of one bot do.
    """
    built: list[YahooChannel] = []

    def build(**overrides: Any) -> YahooChannel:
        overrides.setdefault("state_path", tmp_path / "state.sqlite3")
        channel = YahooChannel.from_settings(
            settings(store, **overrides),
            sleep=fake.sleep,
            clock=fake.monotonic,
            wall_clock=fake.now,
        )
        built.append(channel)
        return channel

    yield build
    for channel in built:
        channel.close()


def started(channel: YahooChannel, fake: FakeTime, store: YahooStandIn) -> str:
    """The cursor of a clean start, a minute ago.

    The clean start asks Yahoo for its time (one orderList, whose `Date` is the start): that
    request is forgotten, so that tests look only at the fetches after it.
    """
    cursor = channel.fetch_orders(None, [], fake.now()).cursor
    store.requests.clear()
    fake.advance(60)
    return cursor


def xml_of(request: Any) -> ET.Element:
    """A recorded request's XML body."""
    return ET.fromstring(request.body)


def token(store: YahooStandIn) -> str:
    """An access token fetched straight from the stand-in."""
    basic = base64.b64encode(f"{store.client_id}:{store.client_secret}".encode()).decode()
    answer = httpx.post(
        store.url + "/yconnect/v2/token",
        data={"grant_type": "refresh_token", "refresh_token": store.refresh_token},
        headers={"Authorization": f"Basic {basic}"},
    )
    return str(answer.json()["access_token"])


# -- orders ------------------------------------------------------------------------------
def test_first_fetch_returns_no_orders_and_a_cursor_at_yahoos_time(store, make, fake, tmp_path):
    yahoo_now = fake.now() - timedelta(minutes=3)  # Yahoo's clock runs 3 minutes behind ours
    store.now = lambda: fake.now() - timedelta(minutes=3)
    store.place_order([("cup-001-w", 1)], placed_at=yahoo_now - timedelta(minutes=5))
    result = make().fetch_orders(None, [], fake.now())
    assert result.orders == []
    # The clean start is Yahoo's time (the Date of its answer), not this machine's.
    assert result.start == yahoo_now
    assert json.loads(result.cursor) == {
        "until": yahoo_now.isoformat(),
        "start": yahoo_now.isoformat(),
        "retry": {},
        "open": {},
        "released": {},
        "budget": ["", 0],
    }
    # Asking costs one orderList for one order (it used to cost nothing, on the bot's clock),
    # counted for the day with the token refresh before it.
    [asked] = store.requests_to(API)
    assert asked.path == API + "orderList"
    assert xml_of(asked).findtext("Search/Result") == "1"
    assert json.loads(calls_file(tmp_path).read_text())["calls"] == 2


def test_a_clean_start_yahoo_refuses_raises_and_takes_no_start(store, make, fake, tmp_path):
    store.fail(400, times=1, match="orderList")
    with pytest.raises(RejectedError):
        make().fetch_orders(None, [], fake.now())
    assert json.loads(calls_file(tmp_path).read_text())["calls"] == 2  # counted all the same


def test_new_order_is_returned_with_its_lines_spelled_as_in_the_sheet(store, make, fake):
    channel = make()
    cursor = started(channel, fake, store)
    placed = fake.now()
    order_id = store.place_order([("cup-001-w", 2), ("tee:red-m", 1)])
    result = channel.fetch_orders(cursor, [], placed)
    [order] = result.orders
    assert order.order_id == order_id
    assert [(ln.item, ln.quantity) for ln in order.lines] == [("cup-001-w", 2), ("tee:red-m", 1)]
    assert order.placed_at == placed
    assert not order.cancelled and not order.closed
    search = xml_of(store.requests_to("orderList")[0])
    assert search.findtext("SellerId") == "demo-store"
    # The window starts an hour behind the cursor but never before the clean start, in JST.
    assert search.findtext("Search/Condition/OrderTimeFrom") == "20261126120000"
    published = xml_of(store.requests_to("orderList")[1])
    assert published.findtext("Search/Condition/PublicationTimeFrom") == "20261126110000"
    assert search.findtext("Search/Sort") == "+order_time"
    assert xml_of(store.requests_to("orderInfo")[0]).findtext("Target/OrderId") == order_id
    # The cursor is Yahoo's time (its Date header), here the same as the bot's.
    assert datetime.fromisoformat(json.loads(result.cursor)["until"]) == placed


def test_refetch_over_the_overlapping_window_returns_the_order_with_the_same_line_ids(
    store, make, fake
):
    channel = make()
    cursor = started(channel, fake, store)
    store.place_order([("cup-001-w", 2), ("tee:red-m", 1)])
    first = channel.fetch_orders(cursor, [], fake.now())
    fake.advance(120)
    again = channel.fetch_orders(first.cursor, [], fake.now())
    assert [o.order_id for o in again.orders] == [o.order_id for o in first.orders]
    assert [ln.line_id for ln in again.orders[0].lines] == [
        ln.line_id for ln in first.orders[0].lines
    ]


def test_cancellation_of_an_open_order_is_learnt_from_the_listing_without_reading_it(
    store, make, fake
):
    channel = make()
    cursor = started(channel, fake, store)
    order_id = store.place_order([("cup-001-w", 2)])
    cursor = channel.fetch_orders(cursor, [], fake.now()).cursor
    fake.advance(3600)  # the order is now outside the window
    store.cancel_order(order_id)
    assert store.quantity("cup-001-w") == 10
    store.requests.clear()
    [order] = channel.fetch_orders(cursor, [order_id], fake.now()).orders
    # A cancelled order counts 0 on every line the cycle holds: no orderInfo is needed.
    assert order.cancelled and order.closed and order.lines == ()
    assert store.requests_to("orderInfo") == []
    assert xml_of(store.requests_to("orderList")[0]).findtext("Search/Field") == (
        "OrderId,OrderTime,OrderStatus,IsActive,LastUpdateTime,PublicationTime"
    )


def test_an_invalid_order_counts_as_cancelled(store, make, fake):
    channel = make()
    cursor = started(channel, fake, store)
    order_id = store.place_order([("cup-001-w", 1)])
    store.invalidate_order(order_id)
    fake.advance(60)
    [order] = channel.fetch_orders(cursor, [order_id], fake.now()).orders
    assert order.cancelled and order.closed and order.lines == ()


def test_a_completed_order_is_closed_and_keeps_its_quantities(store, make, fake):
    channel = make()
    cursor = started(channel, fake, store)
    order_id = store.place_order([("cup-001-w", 3)])
    store.complete_order(order_id)
    [order] = channel.fetch_orders(cursor, [], fake.now()).orders
    assert order.closed and not order.cancelled and order.lines[0].quantity == 3


def test_quantity_changes_and_removed_lines_are_seen_on_reread(store, make, fake):
    channel = make()
    cursor = started(channel, fake, store)
    order_id = store.place_order([("cup-001-w", 2), ("tee:red-m", 2)])
    cursor = channel.fetch_orders(cursor, [], fake.now()).cursor
    fake.advance(3600)
    store.change_line(order_id, "cup-001-w", 1)
    store.change_line(order_id, "tee:red-m", 0)
    [order] = channel.fetch_orders(cursor, [order_id], fake.now()).orders
    # A removed line is absent; the cycle counts lines that vanished as 0.
    assert [(ln.line_id, ln.item, ln.quantity) for ln in order.lines] == [("1", "cup-001-w", 1)]


def test_a_cancelled_order_the_ledger_does_not_hold_costs_no_detail_call(store, make, fake):
    channel = make()
    cursor = started(channel, fake, store)
    store.cancel_order(store.place_order([("cup-001-w", 1)]))
    assert channel.fetch_orders(cursor, [], fake.now()).orders == []
    assert store.requests_to("orderInfo") == []


def test_orders_beyond_one_page_are_all_fetched(store, make, fake):
    channel = make()
    channel.page_size = 3
    cursor = started(channel, fake, store)
    placed = [store.place_order([("cup-001-w", 1)]) for _ in range(7)]
    result = channel.fetch_orders(cursor, [], fake.now())
    assert [o.order_id for o in result.orders] == placed
    starts = [xml_of(r).findtext("Search/Start") for r in store.requests_to("orderList")]
    assert starts == ["1", "4", "7"] * 2  # by order time, then by publication time


def test_a_listing_that_stops_short_fails_instead_of_moving_the_cursor(store, make, fake):
    channel = make()
    cursor = started(channel, fake, store)
    short = b"<Result><Status>OK</Status><Search><TotalCount>5</TotalCount></Search></Result>"
    store.fail(200, match="orderList", body=short)
    with pytest.raises(TemporaryError, match="orderList stopped"):
        channel.fetch_orders(cursor, [], fake.now())


def test_a_listed_order_whose_details_are_refused_is_kept_reported_and_asked_again(
    store, make, fake
):
    channel = make()
    cursor = started(channel, fake, store)
    order_id = store.place_order([("cup-001-w", 1)])
    store.fail(400, match="orderInfo")
    first = channel.fetch_orders(cursor, [], fake.now())
    assert first.orders == []
    [(about, problem)] = first.order_problems
    assert about == order_id and "standin-fault" in problem
    fake.advance(60)
    [order] = channel.fetch_orders(first.cursor, [], fake.now(), known_orders=()).orders
    assert order.order_id == order_id


def test_a_held_order_yahoo_no_longer_shows_is_skipped_and_the_rest_returned(store, make, fake):
    channel = make()
    cursor = started(channel, fake, store)
    order_id = store.place_order([("cup-001-w", 1)], placed_at=fake.now() - timedelta(hours=1))
    [order] = channel.fetch_orders(cursor, ["demo-store-gone", order_id], fake.now()).orders
    assert order.order_id == order_id


def test_an_answer_with_entity_declarations_is_refused_unexpanded(store, make, fake):
    channel = make()
    cursor = started(channel, fake, store)
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><Result><Search><TotalCount>&b;'
        b"</TotalCount></Search></Result>"
    )
    store.fail(200, match="orderList", body=bomb)
    with pytest.raises(RejectedError, match="not readable XML"):
        channel.fetch_orders(cursor, [], fake.now())


@pytest.mark.parametrize(
    "answer",
    [
        # An external entity: never fetched, the declaration is refused first.
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<Result><Search><TotalCount>&x;</TotalCount></Search></Result>",
        # The same bomb in UTF-16, where the bytes "<!DOCTYPE" do not appear.
        (
            '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY a "aaaa">]>'
            "<Result><Search><TotalCount>&a;</TotalCount></Search></Result>"
        ).encode("utf-16"),
    ],
    ids=["external-entity", "utf-16"],
)
def test_an_answer_declaring_a_document_type_is_refused_in_any_spelling(store, make, fake, answer):
    channel = make()
    cursor = started(channel, fake, store)
    store.fail(200, match="orderList", body=answer)
    with pytest.raises(RejectedError, match="not readable XML"):
        channel.fetch_orders(cursor, [], fake.now())


# -- stock -------------------------------------------------------------------------------
def test_push_sets_quantities_in_batches_of_1000_at_one_call_a_second(store, make, fake):
    items = [f"item-{i:04d}" for i in range(2500)]
    for item in items:
        store.add_item(item, 0)
    result = make().push([StockUpdate(item, i % 50) for i, item in enumerate(items)])
    assert result.failed == {} and result.calls == 3
    assert [len(batch) for batch in store.set_stock_batches()] == [1000, 1000, 500]
    assert store.quantity("item-0049") == 49 and store.quantity("item-2499") == 49
    # The stand-in enforces 1/s on the shared fake clock: no call was throttled.
    assert len(store.requests_to("setStock")) == 3
    assert sum(fake.slept) >= 2.0


def test_push_sends_plain_numbers_and_variant_codes(store, make):
    make().push([StockUpdate("cup-001-w", 7), StockUpdate(" tee:red-m ", -3)])
    form = store.requests_to("setStock")[0].form()
    assert form["seller_id"] == ["demo-store"]
    assert form["item_code"] == ["cup-001-w,tee:red-m"]
    assert form["quantity"] == ["7,0"]  # a leading '-' would subtract on Yahoo
    assert store.quantity("tee:red-m") == 0


def test_unknown_items_are_accepted_and_bad_spellings_fail_per_item(store, make):
    result = make().push(
        [StockUpdate("not-registered", 4), StockUpdate("bad code!", 1), StockUpdate("a:", 1)]
    )
    assert set(result.failed) == {"bad code!", "a:"}
    assert "Yahoo column" in result.failed["bad code!"]
    assert store.orphans == {"not-registered": 4}


def test_a_refused_batch_fails_its_items_with_yahoos_code(store, make):
    store.fail(400, match="setStock", body=None)
    result = make().push([StockUpdate("cup-001-w", 1)])
    assert "standin-fault" in result.failed["cup-001-w"]


def test_the_stand_in_refuses_oversized_and_mismatched_batches(store):
    store.enforce_rate_limits = False
    headers = {"Authorization": f"Bearer {token(store)}"}
    url = store.url + API + "setStock"
    codes = ",".join(f"c{i}" for i in range(1001))
    too_many = httpx.post(
        url,
        data={"seller_id": "demo-store", "item_code": codes, "quantity": ",".join(["1"] * 1001)},
        headers=headers,
    )
    mismatched = httpx.post(
        url, data={"seller_id": "demo-store", "item_code": "a,b", "quantity": "1"}, headers=headers
    )
    for answer in (too_many, mismatched):
        assert answer.status_code == 400
        assert b'xmlns="urn:yahoo:api"' in answer.content
        assert ET.fromstring(answer.content).find("{urn:yahoo:api}Code") is not None


def test_the_stand_in_throttles_clients_faster_than_one_set_stock_a_second(store):
    headers = {"Authorization": f"Bearer {token(store)}"}
    form = {"seller_id": "demo-store", "item_code": "cup-001-w", "quantity": "1"}
    url = store.url + API + "setStock"
    assert httpx.post(url, data=form, headers=headers).status_code == 200
    assert httpx.post(url, data=form, headers=headers).status_code == 429


# -- retries -----------------------------------------------------------------------------
def test_5xx_429_and_dropped_connections_are_retried(store, make, fake):
    store.fail(503, match="setStock")
    store.fail(429, match="setStock", retry_after=2)
    store.drop(match="setStock")
    result = make().push([StockUpdate("cup-001-w", 4)])
    assert result.failed == {} and store.quantity("cup-001-w") == 4
    assert len(store.requests_to("setStock")) == 4
    assert any(s >= 2 for s in fake.slept)  # Retry-After honoured


def test_failures_that_persist_raise_temporary_error(store, make, fake):
    channel = make()
    cursor = started(channel, fake, store)
    store.fail(503, times=10, match="orderList")
    with pytest.raises(TemporaryError, match="next cycle"):
        channel.fetch_orders(cursor, [], fake.now())
    store.fail(500, times=10, match="setStock")
    with pytest.raises(TemporaryError):
        channel.push([StockUpdate("cup-001-w", 1)])


def test_the_daily_quota_refusal_is_temporary(store, make, fake):
    channel = make()
    store.daily_limit = 0
    with pytest.raises(TemporaryError, match="50,000"):
        channel.push([StockUpdate("cup-001-w", 1)])


# -- auth --------------------------------------------------------------------------------
def test_the_token_is_cached_until_shortly_before_it_expires(store, make, fake):
    channel = make()
    channel.push([StockUpdate("cup-001-w", 1)])
    fake.advance(1)
    channel.push([StockUpdate("cup-001-w", 2)])
    assert store.token_requests == 1
    fake.advance(3600 - 30)  # inside the last minute of the token's life
    channel.push([StockUpdate("cup-001-w", 3)])
    assert store.token_requests == 2
    token_call = store.requests_to("/yconnect/v2/token")[0]
    assert token_call.form() == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["demo-refresh-token"],
    }
    assert token_call.headers["authorization"].startswith("Basic ")


def test_an_expired_token_is_refreshed_once_and_the_call_repeated(store, make, fake):
    channel = make()
    channel.push([StockUpdate("cup-001-w", 1)])
    store.expire_tokens()
    fake.advance(1)
    assert channel.push([StockUpdate("cup-001-w", 5)]).failed == {}
    assert store.token_requests == 2 and store.quantity("cup-001-w") == 5


def test_a_bad_refresh_token_is_an_auth_error_that_names_the_fix_not_the_secret(store, make):
    channel = make(yahoo_refresh_token="stale-refresh-secret")
    with pytest.raises(AuthError) as caught:
        channel.push([StockUpdate("cup-001-w", 1)])
    text = str(caught.value)
    assert "re-authorise" in text and "STOCKBOT_YAHOO_REFRESH_TOKEN" in text
    assert "stale-refresh-secret" not in text and store.client_secret not in text


def test_a_wrong_client_secret_is_an_auth_error(store, make):
    with pytest.raises(AuthError, match="STOCKBOT_YAHOO_CLIENT_SECRET") as caught:
        make(yahoo_client_secret="wrong-client-secret").check()
    assert "wrong-client-secret" not in str(caught.value)


def test_requests_carry_a_signature_of_seller_and_time(store, make, fake, key):
    make().push([StockUpdate("cup-001-w", 1)])
    for request in (store.requests_to("setStock")[0], store.requests_to("/yconnect")[0]):
        sealed = base64.b64decode(request.headers["x-sws-signature"])
        plain = key.decrypt(sealed, padding.PKCS1v15()).decode()
        assert plain == f"demo-store:{int(fake.now().timestamp())}"
        assert request.headers["x-sws-signature-version"] == "1"


def test_a_stale_signature_is_refused_with_px_04102_and_a_fix(store, make, fake):
    store.now = lambda: fake.now() + timedelta(minutes=20)  # this machine's clock is off
    with pytest.raises(AuthError, match="px-04102") as caught:
        make().push([StockUpdate("cup-001-w", 1)])
    assert "STOCKBOT_YAHOO_PUBLIC_KEY_FILE" in str(caught.value)
    assert caught.value.code == "px-04102"


def test_without_a_public_key_requests_are_unsigned_and_check_warns(store, make):
    channel = make(yahoo_public_key_file=None, yahoo_public_key_version="")
    description = channel.check()
    assert "12 hours" in description and "demo-store" in description
    assert all("x-sws-signature" not in r.headers for r in store.requests)
    store.require_signature = True
    with pytest.raises(AuthError, match="px-04102"):
        channel.push([StockUpdate("cup-001-w", 1)])


def test_check_proves_credentials_with_a_read_only_call(store, make, fake):
    store.place_order([("cup-001-w", 1)], placed_at=fake.now() - timedelta(hours=2))
    description = make().check()
    assert "1 orders in the last 24 hours" in description
    assert "public key version 1" in description
    assert [r.path for r in store.requests_to(API)] == [API + "orderList"]


# -- configuration -----------------------------------------------------------------------
def test_missing_settings_are_named(store, tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        YahooChannel.from_settings(Settings(_env_file=None, yahoo_api_url=""))
    for name in ("SELLER_ID", "CLIENT_ID", "CLIENT_SECRET", "REFRESH_TOKEN", "API_URL"):
        assert f"STOCKBOT_YAHOO_{name}" in str(caught.value)
    with pytest.raises(ConfigError, match="STOCKBOT_YAHOO_PUBLIC_KEY_VERSION"):
        YahooChannel.from_settings(settings(store, yahoo_public_key_version=""))
    junk = tmp_path / "public.key"
    junk.write_text("not a key")
    with pytest.raises(ConfigError, match="STOCKBOT_YAHOO_PUBLIC_KEY_FILE"):
        YahooChannel.from_settings(settings(store, yahoo_public_key_file=str(junk)))


def test_a_key_pasted_as_bare_base64_der_is_accepted(store, make, tmp_path: Path):
    pem = store.public_key_pem().decode().splitlines()
    bare = tmp_path / "bare.key"
    bare.write_text("".join(line for line in pem if not line.startswith("-----")))
    make(yahoo_public_key_file=str(bare)).push([StockUpdate("cup-001-w", 2)])
    assert store.quantity("cup-001-w") == 2


def test_the_rate_limiter_keeps_order_calls_one_a_second(store, make, fake):
    channel = make()
    cursor = started(channel, fake, store)
    placed = [store.place_order([("cup-001-w", 1)]) for _ in range(4)]
    fake.slept.clear()
    channel.fetch_orders(cursor, placed, fake.now())
    calls = len(store.requests_to("orderList")) + len(store.requests_to("orderInfo"))
    assert calls == 6  # two listings (order time, publication time) and four orderInfo
    assert sum(fake.slept) == pytest.approx(calls - 1, abs=0.01)


def test_order_released_from_fraud_review_hours_later_is_still_applied(store, make, fake):
    channel = make()
    cursor = started(channel, fake, store)
    order_id = store.place_order([("cup-001-w", 1)])
    store.hide_order(order_id)  # held for fraud review: orderList does not show it
    fake.advance(300)
    first = channel.fetch_orders(cursor, [], fake.now())
    assert first.orders == []
    fake.advance(3 * 3600)
    first = channel.fetch_orders(first.cursor, [], fake.now())
    assert first.orders == []
    store.show_order(order_id)  # released with its original OrderTime
    fake.advance(300)
    second = channel.fetch_orders(first.cursor, [], fake.now())
    assert [o.order_id for o in second.orders] == [order_id]


def test_bot_clock_15_minutes_fast_loses_no_order(store, make, fake):
    channel = make()
    cursor = started(channel, fake, store)
    fast = timedelta(minutes=15)
    first = channel.fetch_orders(cursor, [], fake.now() + fast)
    fake.advance(60)
    order_id = store.place_order([("cup-001-w", 1)])
    fake.advance(300)
    second = channel.fetch_orders(first.cursor, [], fake.now() + fast)
    assert [o.order_id for o in second.orders] == [order_id]


# -- fraud review (issue 7, item 1) ------------------------------------------------------
def test_the_stand_in_hides_a_held_order_and_publishes_it_on_release(store, fake):
    store.enforce_rate_limits = False
    placed = fake.now()
    order_id = store.place_order([("cup-001-w", 1)])
    store.hide_order(order_id)  # FraudHoldStatus 1: orderList does not return it

    def listing(condition: str) -> list[ET.Element]:
        headers = {"Authorization": f"Bearer {token(store)}", **_XML_HEADERS}
        body = (
            f"<Req><Search><Result>10</Result><Condition>{condition}</Condition><Field>"
            "OrderId,OrderTime,FraudHoldStatus,PublicationTime,LastUpdateTime</Field></Search>"
            "<SellerId>demo-store</SellerId></Req>"
        )
        answer = httpx.post(store.url + API + "orderList", content=body, headers=headers)
        return ET.fromstring(answer.content).findall("Search/OrderInfo")

    by_order_time = "<OrderTimeFrom>20261126000000</OrderTimeFrom>"
    assert listing(by_order_time) == []
    fake.advance(2 * 86_400)
    store.show_order(order_id)  # released two days later
    released = fake.now()
    [info] = listing("<PublicationTimeFrom>20261128000000</PublicationTimeFrom>")
    assert info.findtext("OrderTime") == placed.astimezone(JST).isoformat()
    assert info.findtext("PublicationTime") == released.astimezone(JST).isoformat()
    assert info.findtext("LastUpdateTime") == released.astimezone(JST).isoformat()
    assert info.findtext("FraudHoldStatus") == "2"
    assert [i.findtext("OrderId") for i in listing(by_order_time)] == [order_id]


def test_order_released_from_fraud_review_two_days_later_is_applied_once(tmp_path: Path):
    with world(tmp_path, ("yahoo",)) as w:
        w.create_sheet([["CUP-001", "Cup", 12, "", "", "cup-001-w", "", "", "", ""]])
        store = w.markets["yahoo"]
        store.add_item("cup-001-w", 0)
        assert w.sync().ok  # the clean start
        w.sync()
        order_id = store.place_order([("cup-001-w", 2)])
        store.hide_order(order_id)  # held before the bot's next cycle ever sees it
        for _ in range(8):  # two days of cycles, six hours apart: far beyond the overlap
            w.time.offset += timedelta(hours=6)
            assert w.sync().ok
        assert w.row("CUP-001")["Stock"] == 12
        store.show_order(order_id)
        w.sync()
        assert w.row("CUP-001")["Stock"] == 10
        for _ in range(3):  # seen again within the overlap, and once past it
            w.time.offset += timedelta(minutes=30)
            w.sync()
        assert w.row("CUP-001")["Stock"] == 10
        assert [(r["Order"], r["Change"]) for r in w.log("order")] == [(order_id, -2)]
        assert store.quantity("cup-001-w") == 10


def test_an_order_placed_before_the_clean_start_and_released_after_it_is_told_not_applied(
    store, make, fake
):
    channel = make()
    held = store.place_order([("cup-001-w", 1)], placed_at=fake.now() - timedelta(minutes=10))
    store.hide_order(held)
    # An ordinary order of the hour before the start is listed by publication time too: it
    # is simply counted already, with nothing to tell.
    store.place_order([("cup-001-w", 1)], placed_at=fake.now() - timedelta(minutes=20))
    cursor = started(channel, fake, store)
    first = channel.fetch_orders(cursor, [], fake.now())
    assert first.orders == [] and first.problems == ()
    fake.advance(3 * 3600)
    store.show_order(held)
    fake.advance(60)
    second = channel.fetch_orders(first.cursor, [], fake.now())
    assert second.orders == []
    [note] = second.problems
    assert held in note and "lower Stock" in note
    fake.advance(300)
    again = channel.fetch_orders(second.cursor, [], fake.now())
    assert again.orders == [] and again.problems == ()  # told once
    assert store.requests_to("orderInfo") == []


# -- the daily quota (issue 7, item 2) ---------------------------------------------------
def test_order_info_is_never_asked_for_is_active(store, make, fake):
    channel = make()
    cursor = started(channel, fake, store)
    order_id = store.place_order([("cup-001-w", 1)])
    result = channel.fetch_orders(cursor, [], fake.now())
    assert [o.order_id for o in result.orders] == [order_id] and result.problems == ()
    fields = xml_of(store.requests_to("orderInfo")[0]).findtext("Target/Field")
    assert "IsActive" not in fields.split(",")


def test_open_orders_are_read_again_only_when_the_listing_shows_a_change(store, make, fake):
    store.add_item("cup-001-w", 1000)
    channel = make()
    cursor = started(channel, fake, store)
    placed = [store.place_order([("cup-001-w", 1)]) for _ in range(400)]
    cursor = channel.fetch_orders(cursor, [], fake.now()).cursor
    assert len(store.requests_to("orderInfo")) == 400  # new: each read once
    fake.advance(2 * 3600)  # all 400 now lie behind the window, still open
    store.requests.clear()
    quiet = channel.fetch_orders(cursor, placed, fake.now(), known_orders=placed)
    assert quiet.orders == []
    assert len(store.requests_to("orderList")) == 2 and store.requests_to("orderInfo") == []
    store.change_line(placed[10], "cup-001-w", 2)
    store.complete_order(placed[20])
    store.cancel_order(placed[30])
    fake.advance(300)
    store.requests.clear()
    changed = channel.fetch_orders(quiet.cursor, placed, fake.now(), known_orders=placed)
    by_id = {o.order_id: o for o in changed.orders}
    assert set(by_id) == {placed[10], placed[20], placed[30]}
    assert [ln.quantity for ln in by_id[placed[10]].lines] == [2]
    assert by_id[placed[20]].closed and not by_id[placed[20]].cancelled
    assert by_id[placed[30]].cancelled
    read = [xml_of(r).findtext("Target/OrderId") for r in store.requests_to("orderInfo")]
    assert sorted(read) == sorted([placed[10], placed[20]])  # the cancellation needs no read
    still_open = [o for o in placed if o not in (placed[20], placed[30])]
    store.requests.clear()
    channel.fetch_orders(changed.cursor, still_open, fake.now(), known_orders=placed)
    assert store.requests_to("orderInfo") == []


def calls_file(tmp_path: Path) -> Path:
    """Where adapters built by `make` keep the day's Yahoo! call count."""
    return tmp_path / "state.sqlite3-yahoo-calls"


def test_every_call_is_counted_for_the_day_across_processes(store, make, fake, tmp_path):
    first = make()  # one `stockbot sync` process ...
    cursor = started(first, fake, store)
    order_id = store.place_order([("cup-001-w", 1)])
    cursor = first.fetch_orders(cursor, [], fake.now()).cursor
    first.push([StockUpdate("cup-001-w", 3)])
    first.close()
    second = make()  # ... and the next, with a token of its own
    second.fetch_orders(cursor, [order_id], fake.now(), known_orders=[order_id])
    second.check()
    spent = store.calls_today() + store.token_requests
    # The clean start's orderList, lists, orderInfo, setStock, lists, check, tokens.
    assert spent == 1 + 2 + 1 + 1 + 2 + 1 + 2
    assert json.loads(calls_file(tmp_path).read_text()) == {"day": "2026-11-26", "calls": spent}
    fake.advance(86_400)  # the next JST day starts from zero: a fresh token and a setStock
    second.push([StockUpdate("cup-001-w", 4)])
    assert json.loads(calls_file(tmp_path).read_text()) == {"day": "2026-11-27", "calls": 2}


def test_near_the_daily_budget_changed_orders_wait_and_staff_are_told_once(
    store, make, fake, tmp_path
):
    channel = make()
    cursor = started(channel, fake, store)
    changed, cancelled = (store.place_order([("cup-001-w", 1)]) for _ in range(2))
    cursor = channel.fetch_orders(cursor, [], fake.now()).cursor
    calls_file(tmp_path).write_text(json.dumps({"day": "2026-11-26", "calls": 40_000}))
    store.change_line(changed, "cup-001-w", 2)
    store.cancel_order(cancelled)
    new = store.place_order([("tee:red-m", 1)])
    fake.advance(60)
    store.requests.clear()
    tight = channel.fetch_orders(cursor, [changed, cancelled], fake.now())
    # A new sale and a cancellation still count; the changed order waits.
    assert {o.order_id for o in tight.orders} == {new, cancelled}
    [note] = tight.problems
    assert "40,0" in note and "midnight JST" in note
    assert [xml_of(r).findtext("Target/OrderId") for r in store.requests_to("orderInfo")] == [new]
    fake.advance(60)
    later = channel.fetch_orders(tight.cursor, [changed, new], fake.now())
    assert later.orders == [] and later.problems == ()  # told once a day
    fake.advance(86_400)  # a new day: the change is read
    [order] = channel.fetch_orders(later.cursor, [changed, new], fake.now()).orders
    assert order.order_id == changed and order.lines[0].quantity == 2


def test_at_the_daily_cap_orders_are_not_read_and_the_fetch_says_why(store, make, fake, tmp_path):
    channel = make()
    cursor = started(channel, fake, store)
    calls_file(tmp_path).write_text(json.dumps({"day": "2026-11-26", "calls": 47_500}))
    store.place_order([("cup-001-w", 1)])
    result = channel.fetch_orders(cursor, [], fake.now())
    assert result.orders == [] and "47,500 of 50,000" in (result.skipped or "")
    assert len(result.problems) == 1
    assert store.requests_to(API) == []
    # The cursor has not moved: the order is read once the day's budget allows.
    assert json.loads(result.cursor)["until"] == json.loads(cursor)["until"]
    assert channel.push([StockUpdate("cup-001-w", 2)]).failed == {}  # stock is still pushed
    fake.advance(86_400)
    assert len(channel.fetch_orders(result.cursor, [], fake.now()).orders) == 1


def test_check_prints_the_expected_daily_use_at_the_configured_interval(store, make, fake):
    for _ in range(3):
        store.place_order([("cup-001-w", 1)], placed_at=fake.now() - timedelta(hours=2))
    text = make(interval_seconds=60).check()
    # 1,440 cycles x (2 orderList + 1 setStock) + 2 orderInfo x 3 orders + 25 tokens
    assert "expected use at the 60 s interval: about 4,351 calls a day" in text
    assert "2 counted today" in text and "WARNING" not in text
    busy = make(interval_seconds=10)
    busy.page_size = 1  # as if each order of the day took a listing page of its own
    # 8,640 cycles x (4 orderList + 1 setStock) = 43,200 passes the 40,000 budget.
    assert "STOCKBOT_INTERVAL_SECONDS to at least 11" in busy.check()


def test_a_sync_per_process_keeps_one_daily_count(tmp_path: Path):
    with world(tmp_path, ("yahoo",)) as w:
        w.create_sheet([["CUP-001", "Cup", 12, "", "", "cup-001-w", "", "", "", ""]])
        store = w.markets["yahoo"]
        store.add_item("cup-001-w", 0)
        w.sync()
        store.place_order([("cup-001-w", 1)])
        for _ in range(3):
            w.sync()
        counted = json.loads((tmp_path / "state.sqlite3-yahoo-calls").read_text())["calls"]
        assert counted == store.calls_today() + store.token_requests


@pytest.mark.parametrize(
    "answer",
    [
        b'<?xml version="1.0" encoding="UTF-8"?><ResultSet totalResultsAvailable="2">'
        b"<Result><ItemCode>a</ItemCode></Result><Result><ItemCode>b</ItemCode></Result>"
        b"</ResultSet>",
        b"\xef\xbb\xbf  <ResultSet/>",
        b'<Error xmlns="urn:yahoo:api"><Message>no</Message><Code>st-01</Code></Error>',
        b'<y:ResultSet xmlns:y="urn:yahoo:api"><y:Result/></y:ResultSet>',
        b"<ResultSet><Result></ResultSet>",
        b"<ResultSet/><ResultSet/>",
        b"<ResultSet>&nbsp;</ResultSet>",
        b'<!DOCTYPE r [<!ENTITY e "x">]><ResultSet>&e;</ResultSet>',
        b"<!-- <!DOCTYPE --><ResultSet/>",
        "<ResultSet>\u6771</ResultSet>".encode("shift_jis"),
        b"ResultSet",
        b"",
    ],
)
def test_root_name_is_the_tag_xml_reads(answer: bytes) -> None:
    """setStock's success check reads only the root (issue 8): the same answer as the tree."""
    response = httpx.Response(200, content=answer)
    root = _xml(response)
    assert _root_name(response) == (None if root is None else root.tag)
