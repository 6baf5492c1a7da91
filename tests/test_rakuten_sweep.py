"""Rakuten's hourly 30-day sweep for orders Rakuten lists late (`bot.channels.rakuten`).

The real adapter against the Rakuten stand-in over loopback: whole cycles in a `world`, and
single fetches where the cost of one sweep is counted in searchOrder calls.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.channels.late import WindowCursor
from bot.channels.rakuten import (
    AHEAD,
    JST,
    OVERLAP,
    SEARCH_SPAN,
    SWEEP_BACK,
    SWEEP_EVERY,
    RakutenChannel,
)
from bot.channels.yahoo_cursor import YahooCursor
from bot.config import Settings
from bot.errors import SheetError
from bot.standins.base import Request
from bot.standins.rakuten import RakutenStandIn
from bot.sync import RETAIN_IDS, RETAIN_ORDERS
from tests.fakes import FakeTime
from tests.staff import VMClock, stock
from tests.world import World, world

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
NOW = datetime.now(JST).replace(microsecond=0)


def _window(request: Request) -> tuple[datetime, datetime]:
    body = request.json()
    return (
        datetime.strptime(body["startDatetime"], "%Y-%m-%dT%H:%M:%S%z"),
        datetime.strptime(body["endDatetime"], "%Y-%m-%dT%H:%M:%S%z"),
    )


def _clean_start(w: World) -> datetime:
    """The clean start the stored Rakuten cursor holds."""
    with closing(sqlite3.connect(w.tmp / "state.sqlite3")) as db:
        (text,) = db.execute("SELECT cursor FROM cursors WHERE channel='rakuten'").fetchone()
    return datetime.fromisoformat(json.loads(text)["start"])


def _sweeps(w: World, store: RakutenStandIn) -> list[datetime]:
    """The end of every searchOrder that reached back to the clean start: a sweep, once the
    world is over `OVERLAP` old (and under `SWEEP_BACK`)."""
    start = _clean_start(w)
    return [end for begin, end in map(_window, store.requests_to("searchOrder")) if begin <= start]


def _shop(w: World, stock_count: int = 10) -> RakutenStandIn:
    w.create_sheet([["TEA-001", "Sencha", stock_count, "", "", "", "", "", "", ""]])
    store = w.markets["rakuten"]
    store.add_item("TEA-001", 0)
    assert w.sync().ok  # the clean start
    return store  # type: ignore[return-value]


def _orders_logged(w: World) -> list[int]:
    return sorted(int(r["Change"]) for r in w.log("order") if r["SKU"] == "TEA-001")


def _read(store: RakutenStandIn, number: str) -> int:
    """How many getOrder calls asked for `number`."""
    return sum(number in r.json()["orderNumberList"] for r in store.requests_to("getOrder"))


# -- an order listed late ----------------------------------------------------------------------


@pytest.mark.parametrize("late", [4, 12, 29])
def test_an_order_rakuten_lists_days_late_is_applied_once_by_the_next_hourly_sweep(
    tmp_path: Path, late: int
) -> None:
    """An order of 2 is hidden from searchOrder (a payment or fraud review) for `late` days
    while daily cycles run; once listed it is applied by the next sweep (the first cycle an
    hour after the last), once, and stays so through later sweeps."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        store.place_order([("TEA-001", 1)])
        held = store.place_order([("TEA-001", 2)])
        store.hide_order(held)
        assert w.sync().ok
        for _ in range(late):
            w.time.offset += DAY
            assert w.sync().ok
        assert stock(w)["TEA-001"] == 9
        store.show_order(held)  # just after a sweep (every daily cycle swept)
        for _ in range(2):  # 22.5 and 45 minutes on: the 3-day overlap does not reach it
            w.time.offset += timedelta(minutes=20)  # and 150 s for each `sync`
            assert w.sync().ok
            assert stock(w)["TEA-001"] == 9
        w.time.offset += timedelta(minutes=20)
        assert w.sync().ok  # 67.5 minutes: the first cycle an hour past the last sweep
        assert stock(w)["TEA-001"] == 7 and store.quantity("TEA-001") == 7
        for _ in range(3):  # more sweeps see it again: it is known, nothing moves
            w.time.offset += HOUR
            assert w.sync().ok
        assert stock(w)["TEA-001"] == 7 and store.quantity("TEA-001") == 7
        assert _orders_logged(w) == [-2, -1]
        assert _read(store, held) >= 1


def test_an_order_listed_more_than_thirty_days_late_is_still_missed(tmp_path: Path) -> None:
    """The limit README's Known limits states: past `SWEEP_BACK` the order is not searched."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        held = store.place_order([("TEA-001", 2)])
        store.hide_order(held)
        assert w.sync().ok
        for _ in range(SWEEP_BACK.days + 1):
            w.time.offset += DAY
            assert w.sync().ok
        store.show_order(held)
        for _ in range(2):
            w.time.offset += HOUR
            assert w.sync().ok
        assert stock(w)["TEA-001"] == 10
        assert _read(store, held) == 0


# -- how often, and on whose clock -------------------------------------------------------------


def test_the_sweep_runs_at_most_once_an_hour_of_rakutens_clock(tmp_path: Path) -> None:
    """Five days of daily cycles, then a cycle every 5 minutes for 150 minutes: the sweep runs
    2 times, an hour or more apart, and every cycle reads the 3-day overlap once."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        for _ in range(5):
            w.time.offset += DAY
            assert w.sync().ok
        store.requests.clear()
        for _ in range(30):
            w.time.offset += timedelta(seconds=150)  # with `sync`'s own 150 s: 5 minutes
            assert w.sync().ok
        sweeps = _sweeps(w, store)
        searches = [_window(r) for r in store.requests_to("searchOrder")]
        assert len(sweeps) == 2
        assert len(searches) == 30 + 2  # one page a cycle (a small shop), one more a sweep
        ordinary = [(start, end) for start, end in searches if end not in sweeps]
        assert len(ordinary) == 30
        assert all(
            end - start <= OVERLAP + AHEAD + timedelta(minutes=10) for start, end in ordinary
        )
        # Each sweep reads on from the clean start to where the overlap begins; an hour apart.
        assert sweeps[1] - sweeps[0] >= SWEEP_EVERY - timedelta(minutes=5)


def test_a_vm_clock_jumping_ahead_does_not_make_sweeps_more_often(tmp_path: Path) -> None:
    """The period is measured on Rakuten's `Date` headers kept in the cursor: the VM's clock
    running a day ahead for 55 minutes of cycles after a sweep adds no sweep."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        for _ in range(4):
            w.time.offset += DAY
            assert w.sync().ok
        store.requests.clear()
        VMClock(w).move(DAY)  # the VM alone is a day ahead
        for _ in range(11):  # 55 minutes of Rakuten's time at 5-minute cycles
            w.time.offset += timedelta(seconds=150)
            assert w.sync().ok
        assert len(store.requests_to("searchOrder")) == 11
        assert _sweeps(w, store) == []
        for _ in range(2):
            w.time.offset += timedelta(seconds=150)
            assert w.sync().ok
        assert len(_sweeps(w, store)) == 1  # an hour of Rakuten's time on


# -- old cursors ---------------------------------------------------------------------------------


@pytest.fixture
def rakuten() -> Iterator[RakutenStandIn]:
    stand_in = RakutenStandIn()
    stand_in.enforce_rate_limits = False  # the adapter's clock is fake, the stand-in's is not
    stand_in.now = lambda: NOW
    with stand_in:
        yield stand_in


def _channel(stand_in: RakutenStandIn) -> RakutenChannel:
    fake = FakeTime()
    return RakutenChannel.from_settings(
        Settings.from_env(stand_in.env()),
        sleep=fake.sleep,
        clock=fake.clock,
        wall_clock=lambda: NOW,
    )


def _previous_version_cursor(until: datetime, start: datetime) -> str:
    """What the version before the sweep wrote (`WindowCursor.dump` then)."""
    data = {"retry": {}, "start": start.isoformat(), "until": until.isoformat()}
    return json.dumps(data, sort_keys=True)


def test_a_cursor_of_the_version_before_the_sweep_loads_and_sweeps_once(
    rakuten: RakutenStandIn,
) -> None:
    rakuten.add_item("tee:red", 50)
    start = NOW - 20 * DAY
    late = rakuten.place_order([("tee:red", 1)], placed_at=NOW - 10 * DAY)
    old = _previous_version_cursor(NOW - timedelta(minutes=5), start)
    assert WindowCursor.load("rakuten", old).swept is None
    channel = _channel(rakuten)
    try:
        first = channel.fetch_orders(old, [], NOW)
        assert [o.order_id for o in first.orders] == [late]
        overlap, sweep = map(_window, rakuten.requests_to("searchOrder"))
        assert overlap[0] == NOW - timedelta(minutes=5) - OVERLAP
        # On back from there to 30 days, held at the clean start: never swept, so a sweep.
        assert sweep == (start, overlap[0] - timedelta(seconds=1))
        cursor = json.loads(first.cursor)
        assert datetime.fromisoformat(cursor["swept"]) == NOW
        assert datetime.fromisoformat(cursor["start"]) == start
        rakuten.requests.clear()
        second = channel.fetch_orders(first.cursor, [], NOW, known_orders={late})
        assert second.orders == []
        (search,) = rakuten.requests_to("searchOrder")
        assert _window(search)[0] == NOW - OVERLAP  # swept a moment ago: the overlap only
        assert json.loads(second.cursor)["swept"] == cursor["swept"]
    finally:
        channel.close()


def test_a_time_only_cursor_still_loads(rakuten: RakutenStandIn) -> None:
    """The oldest cursors held only `until`: the clean start is taken 10 minutes before it."""
    until = NOW - timedelta(minutes=5)
    channel = _channel(rakuten)
    try:
        result = channel.fetch_orders(json.dumps({"until": until.isoformat()}), [], NOW)
    finally:
        channel.close()
    (search,) = rakuten.requests_to("searchOrder")
    assert _window(search)[0] == until - timedelta(minutes=10)
    assert datetime.fromisoformat(json.loads(result.cursor)["swept"]) == NOW


def test_cursors_without_a_sweep_are_written_as_before() -> None:
    """Yahoo! shares `WindowCursor`: with no sweep its JSON keeps the earlier keys exactly."""
    plain = WindowCursor(NOW, NOW - DAY)
    assert set(json.loads(plain.dump())) == {"until", "start", "retry"}
    swept = WindowCursor(NOW, NOW - DAY, swept=NOW)
    assert WindowCursor.load("rakuten", swept.dump()) == swept
    assert "swept" not in json.loads(YahooCursor(plain).dump())


# -- known orders, and what the ledger keeps ---------------------------------------------------


def test_the_sweep_reaches_back_less_than_the_ledger_keeps_orders() -> None:
    """Every order a sweep finds again is still held by the ledger (or its id is), so it is in
    `known_orders` and neither read again nor applied twice; one searchOrder window holds it."""
    assert OVERLAP < SWEEP_BACK < RETAIN_ORDERS < RETAIN_IDS
    assert SWEEP_BACK + AHEAD <= SEARCH_SPAN


def test_a_known_order_found_again_by_the_sweep_is_not_read_again_nor_applied_twice(
    tmp_path: Path,
) -> None:
    """A cancelled order is closed: later cycles do not read it. Ten days of sweeps list its
    number again every hour; getOrder is never asked for it and its sale and cancel stay one
    each."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        sold = store.place_order([("TEA-001", 1)])
        gone = store.place_order([("TEA-001", 3)])
        assert w.sync().ok
        store.cancel_order(gone)
        assert w.sync().ok
        assert stock(w)["TEA-001"] == 9
        for _ in range(4):  # older than OVERLAP, so a sweep is told from the overlap
            w.time.offset += DAY
            assert w.sync().ok
        store.requests.clear()
        for _ in range(6):
            w.time.offset += DAY
            assert w.sync().ok
            w.time.offset += HOUR  # with `sync`'s 150 s: over an hour, a sweep again
            assert w.sync().ok
        assert len(_sweeps(w, store)) == 12  # each cycle an hour or more after the last
        assert _read(store, gone) == 0
        assert stock(w)["TEA-001"] == 9 and store.quantity("TEA-001") == 9
        assert _orders_logged(w) == [-3, -1]
        assert [int(r["Change"]) for r in w.log("cancel")] == [3]
        assert _read(store, sold) >= 1  # still open: read as every cycle reads open orders


def test_a_sweep_costs_14_more_searchorder_calls_for_500_orders_a_day_and_no_getorder(
    rakuten: RakutenStandIn,
) -> None:
    """The module docstring's figures for a shop of 500 orders a day: the 3-day overlap is 2
    searchOrder pages, the sweep's 27 days before it 14 more; all the numbers are known, so no
    getOrder. The next fetch, an ordinary one, costs 2."""
    rakuten.add_item("tee:red", 99_999)
    numbers: list[str] = []
    placed = NOW - SWEEP_BACK
    while placed <= NOW:
        numbers.append(rakuten.place_order([("tee:red", 1)], placed_at=placed, force=True))
        placed += timedelta(days=1) / 500
    cursor = WindowCursor(NOW - timedelta(minutes=5), NOW - 60 * DAY).dump()
    channel = _channel(rakuten)
    try:
        swept = channel.fetch_orders(cursor, [], NOW, known_orders=set(numbers))
        assert swept.orders == []
        assert len(rakuten.requests_to("searchOrder")) == 16
        assert not rakuten.requests_to("getOrder")
        rakuten.requests.clear()
        ordinary = channel.fetch_orders(swept.cursor, [], NOW, known_orders=set(numbers))
        assert ordinary.orders == []
        assert len(rakuten.requests_to("searchOrder")) == 2
        assert not rakuten.requests_to("getOrder")
    finally:
        channel.close()


# -- killed and restarted ----------------------------------------------------------------------


def test_a_cycle_killed_before_its_commit_sweeps_again_and_applies_the_order_once(
    tmp_path: Path,
) -> None:
    """The sweep's time lives in the cursor, which is stored with the cycle's commit: a cycle
    whose commit never lands (the bot stopped there) leaves no trace of its sweep, so the next
    cycle, a new bot, sweeps again and applies the late order once; the cycle after does not
    sweep."""
    with world(tmp_path, ("rakuten",)) as w:
        store = _shop(w)
        held = store.place_order([("TEA-001", 2)])
        store.hide_order(held)
        assert w.sync().ok
        for _ in range(6):
            w.time.offset += DAY
            assert w.sync().ok  # each swept: a day since the last
        store.show_order(held)
        store.requests.clear()
        w.time.offset += HOUR  # the next cycle is due to sweep

        def refuse_commit(request: Any) -> None:
            if request.path.endswith(":batchUpdate") and b"stockbot.commit" in request.body:
                raise RuntimeError("the bot was stopped here")

        w.sheets.add_hook(refuse_commit)
        try:
            with pytest.raises(SheetError, match="the bot was stopped here"):
                w.sync()
        finally:
            w.sheets.remove_hook(refuse_commit)
        assert len(_sweeps(w, store)) == 1
        assert stock(w)["TEA-001"] == 10
        assert w.sync().ok  # a new bot: the stored cursor says the last sweep is an hour old
        assert len(_sweeps(w, store)) == 2
        assert stock(w)["TEA-001"] == 8 and store.quantity("TEA-001") == 8
        assert w.sync().ok
        assert len(_sweeps(w, store)) == 2
        assert _orders_logged(w) == [-2]
