"""Review 28: attacks on Rakuten's hourly 30-day sweep (`bot.channels.rakuten`, "The sweep").

The real adapter over HTTP against the Rakuten stand-in; whole cycles in a `world` (a fresh bot
per cycle, as `stockbot sync` from cron runs, or one `run` loop), and single fetches where a
sweep's calls are counted. Nothing of ours is mocked: faults, a missing ``Date`` header and
overload are the stand-in's answers.

Broke (fixed in `bot.channels.rakuten.RakutenChannel.fetch_orders`, `_sweep_failed`):
- A sweep whose wide search alone kept failing (503 after the retries, say Rakuten overloaded
  or timing out on a 30-day search while the overlap's narrow one is answered) failed the whole
  fetch: Rakuten's fresh orders were not applied and nothing was pushed to Rakuten for as long
  as it failed (other channels oversold). Now the overlap's orders are applied, ``swept`` stays
  so every cycle sweeps again, and staff are told once a day of Rakuten's time while it fails
  (`test_a_sweep_that_keeps_failing_alone_...`). The two failure tests below were written
  against the old behaviour (the fetch raised, the cursor did not move) and then rewritten.

Held:
- A sweep failing on its first or its second page: ``swept`` does not move, the half-read
  pages are not used, the next cycle sweeps again and the late order and the cycle's fresh
  order are each applied once. A refused licence key during the sweep still stops the fetch.
- An order Rakuten lists late and that was cancelled before any sweep found it moves no stock;
  one found by the sweep and cancelled later comes back once.
- An order placed before the clean start and listed late is never read nor applied; no
  search but the clean start's own probe reaches before the clean start.
- Over 15,000 numbers in the sweep's window: the window is halved until each half can be read
  in full; a late order past the 15,000th is found and only it is read with getOrder.
- No ``Date`` header from Rakuten: the sweep is timed on this machine's clock, hourly, and the
  late order is applied once. A VM clock two days behind Rakuten's: hourly on Rakuten's clock.
- A `run` loop (one adapter for many cycles) sweeps once an hour and applies the order once.
- searchOrder of the sweep and getOrder share the order API's one request a second.
- A time-only cursor (the oldest form) in the state file: the sweep reaches back to the clean
  start the state file kept (`bot.sync._with_start`) and applies a late order once.
- A late order getOrder refuses when the sweep finds it is asked again every cycle (the retry
  list, not only at the next sweep), staff are told, and it is applied once.
"""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from bot.channels.rakuten import JST, OVERLAP, SEARCH_CAP, SWEEP_BACK, RakutenChannel
from bot.config import Settings
from bot.errors import AuthError
from bot.standins.base import Request, Response, StandIn, json_response
from bot.standins.rakuten import RakutenStandIn
from tests.fakes import FakeTime
from tests.staff import VMClock, next_cycle, stock
from tests.test_rakuten_sweep import _orders_logged, _read, _shop, _window
from tests.world import World, world

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
NOW = datetime.now(JST).replace(microsecond=0)
SEARCH_PATH = r"/es/2.0/order/searchOrder/?"


# -- helpers -----------------------------------------------------------------------------------


def _cursor(w: World) -> dict[str, Any]:
    with closing(sqlite3.connect(w.tmp / "state.sqlite3")) as db:
        (text,) = db.execute("SELECT cursor FROM cursors WHERE channel='rakuten'").fetchone()
    data: dict[str, Any] = json.loads(text)
    return data


def _sweeps(store: RakutenStandIn, clean_start: datetime) -> list[Request]:
    """searchOrder calls that reached back to the clean start: sweeps, in a world between
    `OVERLAP` and `SWEEP_BACK` old."""
    return [r for r in store.requests_to("searchOrder") if _window(r)[0] <= clean_start]


def _days(w: World, days: int) -> None:
    for _ in range(days):
        w.time.offset += DAY
        assert w.sync().ok


def _hidden_for(w: World, store: RakutenStandIn, days: int, count: int = 2) -> str:
    """An order of `count` TEA-001 placed now that Rakuten still hides after `days` days of
    cycles (a review that long): its number."""
    held = store.place_order([("TEA-001", count)])
    store.hide_order(held)
    assert w.sync().ok
    _days(w, days)
    return held


def _break_searches(store: RakutenStandIn, broken: Callable[[Request], bool]) -> list[int]:
    """Answer 503 (overload or maintenance) to every searchOrder `broken` picks; the list it
    returns counts the refusals."""
    refused: list[int] = []

    def handler(request: Request) -> Response:
        if broken(request):
            refused.append(1)
            return json_response({"Results": {"message": "Service Unavailable"}}, 503)
        return store._search_order(request)

    store._routes.insert(0, ("POST", re.compile(SEARCH_PATH + r"\Z"), handler))
    return refused


def _mend_searches(store: RakutenStandIn) -> None:
    del store._routes[0]


# -- a sweep that fails ------------------------------------------------------------------------


def test_a_sweep_failing_after_its_overlap_read_keeps_swept_and_the_next_cycle_sweeps_again(
    tmp_path: Path,
) -> None:
    """Rakuten answers the overlap's searchOrder but 503s the sweep's (its retries too): the
    cycle still applies the order placed meanwhile and moves `until`, but not `swept`; the
    next cycle sweeps again and applies the order listed late. Each once."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        start = datetime.fromisoformat(_cursor(w)["start"])
        held = _hidden_for(w, store, 5)
        store.show_order(held)
        before = _cursor(w)
        w.time.offset += HOUR
        fresh = store.place_order([("TEA-001", 1)])
        refused = _break_searches(store, lambda r: _window(r)[0] <= start)
        assert w.sync().ok and refused
        after = _cursor(w)
        assert after["swept"] == before["swept"] and after["until"] > before["until"]
        assert stock(w)["TEA-001"] == 9
        _mend_searches(store)
        assert w.sync().ok
        assert stock(w)["TEA-001"] == 7 and store.quantity("TEA-001") == 7
        assert _cursor(w)["swept"] > after["until"]
        for _ in range(3):
            w.time.offset += HOUR
            assert w.sync().ok
        assert _orders_logged(w) == [-2, -1]
        assert _read(store, fresh) >= 1


def test_a_sweep_that_keeps_failing_alone_holds_back_no_fresh_order_and_staff_are_told_daily(
    tmp_path: Path,
) -> None:
    """The wide search alone keeps failing (Rakuten overloaded by a 30-day search, or timing
    out on it) while the overlap's narrow one is answered: every cycle still applies the
    orders the overlap read, `swept` stays where the last good sweep left it so every cycle
    tries the sweep again, staff are told once a day while it fails, and the first sweep that
    works applies the order Rakuten listed late, once."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w, stock_count=20)
        start = datetime.fromisoformat(_cursor(w)["start"])
        held = _hidden_for(w, store, 5)
        store.show_order(held)
        swept = _cursor(w)["swept"]
        refused = _break_searches(store, lambda r: _window(r)[0] <= start)
        for count in range(1, 4):
            w.time.offset += HOUR
            store.place_order([("TEA-001", 1)])
            assert w.sync().ok  # the channel did not fail: the overlap's orders are applied
            assert stock(w)["TEA-001"] == 20 - count
        assert refused and _cursor(w)["swept"] == swept
        assert not [r for r in w.log("error") if "late" in str(r["Detail"])]
        for _ in range(5):  # 30 hours more of failing sweeps: one day crossed, one notice
            w.time.offset += 6 * HOUR
            assert w.sync().ok
        told = [r for r in w.log("error") if "late" in str(r["Detail"])]
        assert len(told) == 1, told
        _mend_searches(store)
        assert w.sync().ok
        assert stock(w)["TEA-001"] == 15 and store.quantity("TEA-001") == 15
        assert _cursor(w)["swept"] != swept
        w.time.offset += HOUR
        assert w.sync().ok
        assert _orders_logged(w) == [-2, -1, -1, -1]


@pytest.fixture
def rakuten() -> Iterator[RakutenStandIn]:
    stand_in = RakutenStandIn()
    stand_in.enforce_rate_limits = False  # the adapter's clock is fake
    stand_in.now = lambda: NOW
    with stand_in:
        yield stand_in


def _channel(stand_in: RakutenStandIn, fake: FakeTime | None = None) -> RakutenChannel:
    fake = fake or FakeTime()
    return RakutenChannel.from_settings(
        Settings.from_env(stand_in.env()),
        sleep=fake.sleep,
        clock=fake.clock,
        wall_clock=lambda: NOW,
    )


def _sweep_cursor() -> str:
    """A cursor read up to five minutes ago, swept two hours ago, clean start 60 days back."""
    until = NOW - timedelta(minutes=5)
    data = {
        "retry": {},
        "start": (NOW - 60 * DAY).isoformat(),
        "swept": (until - 2 * HOUR).isoformat(),
        "until": until.isoformat(),
    }
    return json.dumps(data, sort_keys=True)


def test_a_sweep_failing_on_its_second_page_is_due_again_and_the_next_fetch_finds_the_order(
    rakuten: RakutenStandIn,
) -> None:
    """1,500 known orders 10 to 20 days old and one unknown among them: the sweep's second page
    is refused (503, its retries too). The fetch returns the overlap's orders with `swept`
    unchanged (the first page's numbers are not half-used); the next fetch, from that cursor,
    sweeps again, reads both pages, returns the late order alone, and marks the sweep done."""
    rakuten.add_item("tee:red", 99_999)
    known: set[str] = set()
    placed = NOW - 20 * DAY
    late = ""
    for i in range(1_500):
        number = rakuten.place_order([("tee:red", 1)], placed_at=placed, force=True)
        if i == 750:
            late = number
        else:
            known.add(number)
        placed += 10 * DAY / 1_500
    cursor = _sweep_cursor()
    refused = _break_searches(
        rakuten,
        lambda r: (
            _window(r)[0] < NOW - OVERLAP - HOUR
            and r.json()["PaginationRequestModel"]["requestPage"] == 2
        ),
    )
    channel = _channel(rakuten)
    try:
        failed = channel.fetch_orders(cursor, [], NOW, known_orders=known)
        assert len(refused) > 1  # retried, then given up
        assert failed.orders == [] and not rakuten.requests_to("getOrder")
        kept = json.loads(failed.cursor)
        assert kept["swept"] == json.loads(cursor)["swept"]  # not swept: due again
        assert datetime.fromisoformat(kept["until"]) == NOW
        _mend_searches(rakuten)
        rakuten.requests.clear()
        result = channel.fetch_orders(failed.cursor, [], NOW, known_orders=known)
    finally:
        channel.close()
    assert [o.order_id for o in result.orders] == [late]
    assert datetime.fromisoformat(json.loads(result.cursor)["swept"]) == NOW
    (get,) = rakuten.requests_to("getOrder")
    assert get.json()["orderNumberList"] == [late]


def test_a_licence_key_refused_during_the_sweep_still_stops_the_fetch(
    rakuten: RakutenStandIn,
) -> None:
    """A refused key (401 ES01-01) is the operator's to fix, not a sweep hiccup: the fetch
    raises `AuthError`, as before the sweep, so staff see it in the Channels tab."""
    refused: list[int] = []

    def handler(request: Request) -> Response:
        if _window(request)[0] < NOW - OVERLAP - HOUR:
            refused.append(1)
            return json_response(
                {"Results": {"errorCode": "ES01-01", "message": "Un-Authorised"}}, 401
            )
        return rakuten._search_order(request)

    rakuten._routes.insert(0, ("POST", re.compile(SEARCH_PATH + r"\Z"), handler))
    channel = _channel(rakuten)
    try:
        with pytest.raises(AuthError):
            channel.fetch_orders(_sweep_cursor(), [], NOW)
    finally:
        channel.close()
    assert refused == [1]


# -- exactly once ------------------------------------------------------------------------------


def test_a_late_order_cancelled_before_any_sweep_found_it_moves_no_stock(tmp_path: Path) -> None:
    """The shopper cancels while Rakuten still holds the order back; it is listed, cancelled,
    days later. The sweep reads it once: Stock never moves, and it is not read again."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        held = _hidden_for(w, store, 6)
        store.cancel_order(held)
        store.show_order(held)
        for _ in range(4):
            w.time.offset += HOUR
            assert w.sync().ok
            assert stock(w)["TEA-001"] == 10
        assert store.quantity("TEA-001") == 10
        assert _read(store, held) == 1
        assert sum(int(r["Change"] or 0) for r in w.log() if r["Order"] == held) == 0


def test_a_late_order_the_sweep_applied_and_that_is_cancelled_later_comes_back_once(
    tmp_path: Path,
) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        held = _hidden_for(w, store, 8, count=3)
        store.show_order(held)
        w.time.offset += HOUR
        assert w.sync().ok
        assert stock(w)["TEA-001"] == 7
        store.cancel_order(held)
        for _ in range(3):
            w.time.offset += HOUR
            assert w.sync().ok
        assert stock(w)["TEA-001"] == 10 and store.quantity("TEA-001") == 10
        assert _orders_logged(w) == [-3]
        assert [int(r["Change"]) for r in w.log("cancel")] == [3]


def test_an_order_placed_before_the_clean_start_and_listed_late_is_never_read(
    tmp_path: Path,
) -> None:
    """Staff counted Stock with that order already taken off (SPEC section 4, clean start):
    the sweep never searches before the clean start, so the order is not applied again."""
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet([["TEA-001", "Sencha", 8, "", "", "", "", "", "", ""]])
        store: RakutenStandIn = w.markets["rakuten"]  # type: ignore[assignment]
        store.add_item("TEA-001", 10)
        before = store.place_order([("TEA-001", 2)], placed_at=w.time.now() - 2 * DAY)
        store.hide_order(before)
        assert w.sync().ok  # the clean start
        start = datetime.fromisoformat(_cursor(w)["start"])
        _days(w, 5)
        store.show_order(before)
        for _ in range(3):
            w.time.offset += HOUR
            assert w.sync().ok
        assert stock(w)["TEA-001"] == 8
        assert _read(store, before) == 0
        probe, *searches = store.requests_to("searchOrder")  # the clean start's own probe
        assert _window(probe)[1] == start and all(_window(r)[0] >= start for r in searches)


def test_a_late_order_refused_by_getorder_when_the_sweep_finds_it_is_asked_every_cycle(
    tmp_path: Path,
) -> None:
    """Found by a sweep but refused by getOrder twice: it is kept in the cursor and asked
    again by the next cycles (not only at the next sweep, an hour on), then applied once."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        held = _hidden_for(w, store, 4)
        store.show_order(held)
        store.refuse_reads(held, times=2)
        w.time.offset += HOUR
        assert w.sync().ok
        assert held in _cursor(w)["retry"]
        assert w.sync().ok  # 150 s on: no sweep, the retry list asks it again
        assert stock(w)["TEA-001"] == 10
        assert w.sync().ok
        assert stock(w)["TEA-001"] == 8 and _cursor(w)["retry"] == {}
        for _ in range(2):
            w.time.offset += HOUR
            assert w.sync().ok
        assert _orders_logged(w) == [-2] and _read(store, held) >= 3
        assert [r for r in w.log("error") if held in str(r["Detail"])]


# -- window splitting --------------------------------------------------------------------------


def test_over_15000_numbers_in_the_sweep_window_are_split_and_a_late_one_among_them_found(
    rakuten: RakutenStandIn,
) -> None:
    """16,200 known orders over the 27 days the sweep reads, and one unknown: no search is
    left with hits past the 15,000th, and only the unknown order is read."""
    rakuten.add_item("tee:red", 99_999)
    known: set[str] = set()
    first = NOW - SWEEP_BACK + HOUR
    span = SWEEP_BACK - OVERLAP - 2 * HOUR
    count = SEARCH_CAP + 1_200
    late = ""
    for i in range(count):
        number = rakuten.place_order(
            [("tee:red", 1)], placed_at=first + span * i / count, force=True
        )
        if i == count - 7:  # past the 15,000th of the whole window
            late = number
        else:
            known.add(number)
    channel = _channel(rakuten)
    try:
        result = channel.fetch_orders(_sweep_cursor(), [], NOW, known_orders=known)
    finally:
        channel.close()
    assert [o.order_id for o in result.orders] == [late]
    (get,) = rakuten.requests_to("getOrder")
    assert get.json()["orderNumberList"] == [late]
    pages = [
        r.json()["PaginationRequestModel"]["requestPage"]
        for r in rakuten.requests_to("searchOrder")
    ]
    assert max(pages) <= SEARCH_CAP // 1_000


# -- clocks ------------------------------------------------------------------------------------


def test_without_a_date_header_the_sweep_runs_hourly_on_this_machines_clock(
    tmp_path: Path,
) -> None:
    """Rakuten's answers lose their `Date` header (a proxy in between): the sweep is timed on
    this machine's clock, still once an hour, and the late order is applied once."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        start = datetime.fromisoformat(_cursor(w)["start"])

        def no_date(h: BaseHTTPRequestHandler) -> None:
            h.date_time_string = lambda timestamp=None: ""  # type: ignore[method-assign]
            StandIn._dispatch(store, h)

        store._dispatch = no_date  # type: ignore[method-assign]
        held = _hidden_for(w, store, 4)
        store.show_order(held)
        store.requests.clear()
        for _ in range(13):  # 65 minutes of 5-minute cycles (`sync` adds 150 s)
            w.time.offset += timedelta(seconds=150)
            assert w.sync().ok
        assert len(_sweeps(store, start)) == 1
        assert stock(w)["TEA-001"] == 8 and _orders_logged(w) == [-2]


def test_a_vm_clock_two_days_behind_rakuten_still_sweeps_hourly_and_applies_once(
    tmp_path: Path,
) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        start = datetime.fromisoformat(_cursor(w)["start"])
        held = _hidden_for(w, store, 5)
        VMClock(w).move(-2 * DAY)  # NTP lost: the VM two days behind
        store.show_order(held)
        store.requests.clear()
        for _ in range(13):
            w.time.offset += timedelta(seconds=150)
            assert w.sync().ok
        assert len(_sweeps(store, start)) == 1
        assert stock(w)["TEA-001"] == 8 and _orders_logged(w) == [-2]


# -- a run loop, the shared limiter, an old cursor ---------------------------------------------


def test_a_run_loop_sweeps_once_an_hour_and_applies_a_late_order_once(tmp_path: Path) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        start = datetime.fromisoformat(_cursor(w)["start"])
        held = store.place_order([("TEA-001", 2)])
        store.hide_order(held)
        with w.bot() as cycle:
            for _ in range(4):
                next_cycle(w, 86_400)
                assert cycle.run().ok
            store.show_order(held)
            store.requests.clear()
            for _ in range(30):  # 150 minutes at 5 minutes
                next_cycle(w, 300)
                assert cycle.run().ok
        assert len(_sweeps(store, start)) == 2
        assert stock(w)["TEA-001"] == 8 and _orders_logged(w) == [-2]
        assert store.quantity("TEA-001") == 8


def test_the_sweep_and_getorder_keep_to_one_order_api_request_a_second(
    rakuten: RakutenStandIn,
) -> None:
    """2,500 orders in the sweep's days, 150 of them unknown: 3 sweep pages, 1 overlap page
    and 2 getOrder calls, each at least a second after the last on the adapter's clock."""
    rakuten.add_item("tee:red", 99_999)
    known: set[str] = set()
    placed = NOW - 25 * DAY
    for i in range(2_500):
        number = rakuten.place_order([("tee:red", 1)], placed_at=placed, force=True)
        if i % 17:
            known.add(number)
        placed += 20 * DAY / 2_500
    fake = FakeTime()
    stamps: list[float] = []
    for i, (method, pattern, handler) in enumerate(list(rakuten._routes)):
        if "order" in pattern.pattern:

            def stamped(request: Request, handler: Any = handler) -> Response:
                stamps.append(fake.now)
                response: Response = handler(request)
                return response

            rakuten._routes[i] = (method, pattern, stamped)
    channel = _channel(rakuten, fake)
    try:
        result = channel.fetch_orders(_sweep_cursor(), [], NOW, known_orders=known)
    finally:
        channel.close()
    assert len(result.orders) == 2_500 - len(known) == 148
    assert len(rakuten.requests_to("searchOrder")) == 4
    assert len(rakuten.requests_to("getOrder")) == 2
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert len(stamps) == 6 and min(gaps) >= 1.0 - 1e-6


def test_a_time_only_cursor_in_the_state_file_sweeps_back_to_the_kept_clean_start(
    tmp_path: Path,
) -> None:
    """The oldest cursors held only `until`; the state file keeps the clean start beside them.
    The sweep reaches back to that start (not to ten minutes before `until`) and applies an
    order Rakuten listed five days late, once."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        start = datetime.fromisoformat(_cursor(w)["start"])
        held = _hidden_for(w, store, 5)
        until = _cursor(w)["until"]
        with closing(sqlite3.connect(w.tmp / "state.sqlite3")) as db, db:
            db.execute(
                "UPDATE cursors SET cursor=? WHERE channel='rakuten'",
                (json.dumps({"until": until}),),
            )
        store.show_order(held)
        store.requests.clear()
        assert w.sync().ok
        (sweep,) = _sweeps(store, start)
        assert _window(sweep)[0] == start
        assert stock(w)["TEA-001"] == 8
        w.time.offset += HOUR
        assert w.sync().ok
        assert _orders_logged(w) == [-2] and _cursor(w)["start"] == start.isoformat()
