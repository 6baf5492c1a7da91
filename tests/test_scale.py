"""Bounded state and bounded Sheets use for years of cycles (issue 8, SPEC.md section 7).

Whole cycles, where the real gspread client and the real adapters talk to the stand-ins; the
state file's horizons on the ledger alone, years of virtual days in seconds.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import sync
from bot.apply import Event
from bot.channels.base import PushResult, StockUpdate
from bot.errors import LockedError, StockbotError
from bot.ledger import CACHE_KIB, Changes, Ledger, LineState
from bot.pushing import PushPlan
from bot.report import log_row, push_events
from bot.sheet.layout import Layout, find_layout
from bot.sync import RETAIN_IDS, RETAIN_ORDERS
from tests.staff import asdict_text, dimension, put_lease, shipped_order, stock
from tests.world import HEADER, LOG_HEADER, World, world


def test_push_state_of_a_deleted_row_is_forgotten_after_a_day(tmp_path: Path) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(
            [
                ["TEA-001", "", 10, "", "", "", "", "", "", ""],
                ["CUP-001", "", 5, "", "", "", "", "", "", ""],
            ]
        )
        store = w.markets["rakuten"]
        store.add_item("TEA-001", 0)
        store.add_item("CUP-001", 0)
        w.sync()
        with w.bot() as cycle:
            assert set(cycle.ledger.pushes("rakuten")) == {"TEA-001", "CUP-001"}
        dimension(w, "deleteDimension", "ROWS", 2)  # CUP-001's row
        w.time.offset += timedelta(days=2)
        w.sync()
        with w.bot() as cycle:
            assert set(cycle.ledger.pushes("rakuten")) == {"TEA-001"}


def test_a_pruned_order_cancelled_on_its_marketplace_is_not_put_back(tmp_path: Path) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        order = shipped_order(w, "rakuten")
        store = w.markets["rakuten"]
        w.time.offset += timedelta(days=200)
        store.place_order([("TEA-001", 1)])  # the order is 200 days older than this one
        w.sync()  # Rakuten's shipped order reads as closed now (final 30 days on)
        w.time.offset += timedelta(days=2)
        w.sync()  # the next day's pruning forgets it
        with w.bot() as cycle:
            assert cycle.ledger.lines("rakuten", order) == {}
            assert cycle.ledger.forgotten("rakuten") == {order}
        # Half a year on, the shop cancels the long-closed order in RMS: the bot no longer
        # holds its lines, so it must neither put the units back nor count it as a new sale.
        store.cancel_order(order)
        w.sync()
        assert stock(w)["TEA-001"] == 7
        assert len(w.log("order")) == 2
        assert w.log("cancel") == []


def test_an_order_archived_years_after_its_id_was_forgotten_is_not_a_new_sale(
    tmp_path: Path,
) -> None:
    # Shopify lists orders by update time: archiving a years-old order shows it again, long
    # after the state file dropped its id (`RETAIN_IDS`, 800 days after it was placed).
    with world(tmp_path, ("shopify",)) as w:
        order = shipped_order(w, "shopify")
        store = w.markets["shopify"]
        w.time.offset += timedelta(days=900)
        newer = store.place_order([("TEA-001", 1)])  # ages are measured from Shopify's orders
        w.sync()
        w.time.offset += timedelta(days=2)
        w.sync()  # pruned: whole order gone, its id kept in `forgotten`
        w.time.offset += timedelta(days=2)
        w.sync()  # the next day's pruning drops the id too
        with w.bot() as cycle:
            assert cycle.ledger.forgotten("shopify") == set()
            assert cycle.ledger.all_orders("shopify") == {newer}
        store.archive(order)
        assert w.sync().ok
        assert stock(w)["TEA-001"] == 7
        assert len(w.log("order")) == 2
        # A new order is still a sale.
        store.place_order([("TEA-001", 1)])
        w.sync()
        assert stock(w)["TEA-001"] == 6


def test_a_run_loop_at_a_one_hour_interval_makes_five_sheets_requests_a_cycle(
    tmp_path: Path,
) -> None:
    """The lease a `run` commit leaves (an interval and `LEASE` ahead) needs no write next cycle.

    Before, a cycle took the lease again whenever less than an interval was left, which at an
    interval over `LEASE` was every cycle: a sixth request. The lease still keeps a second bot
    out between the cycles.
    """
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet([["TEA-001", "", 10, "", "", "", "", "", "", ""]])
        store = w.markets["rakuten"]
        store.add_item("TEA-001", 0)
        hour = timedelta(hours=1)
        with w.bot() as cycle:
            cycle.interval = cycle.lease.interval = hour  # STOCKBOT_INTERVAL_SECONDS=3600
            cycle.run()
            made = []
            for n in range(4):
                w.time.offset += hour
                w.time.advance(hour.total_seconds())
                if n == 2:
                    store.place_order([("TEA-001", 1)])
                report = cycle.run()
                assert report.ok
                made.append(report.sheet_reads + report.sheet_writes)
                lease = json.loads(w.sheets.developer_metadata(w.sheet_id)["stockbot.lease"])
                left = datetime.fromisoformat(lease["until"]) - w.time.now()
                assert left > hour  # an interval and 15 minutes from the last commit
            assert made == [5, 5, 5, 5]
            assert stock(w)["TEA-001"] == 9
            # Another bot between two cycles is refused, as before.
            w.env["STOCKBOT_STATE_PATH"] = str(tmp_path / "other.sqlite3")
            with w.bot() as other, pytest.raises(LockedError):
                other.run()


def test_a_lease_with_little_time_left_is_taken_again_at_the_start(tmp_path: Path) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet([["TEA-001", "", 10, "", "", "", "", "", "", ""]])
        w.markets["rakuten"].add_item("TEA-001", 0)
        with w.bot() as cycle:
            cycle.run()
            ours = json.loads(w.sheets.developer_metadata(w.sheet_id)["stockbot.lease"])
            # A cycle that failed before its commit: its lease has 4 minutes left.
            ours["until"] = (w.time.now() + timedelta(minutes=4)).isoformat()
            put_lease(w, ours)
            writes = cycle.sheet.writes
            cycle.run()
            assert cycle.sheet.writes - writes == 3  # the lease, the commit, the report
        lease = json.loads(w.sheets.developer_metadata(w.sheet_id)["stockbot.lease"])
        assert datetime.fromisoformat(lease["until"]) - w.time.now() > timedelta(minutes=15)


def _layout() -> Layout:
    titles = ("Inventory", "Log", "Channels")
    metadata = {
        "sheets": [
            {"properties": {"title": t, "sheetId": i, "gridProperties": {"rowCount": 9}}}
            for i, t in enumerate(titles)
        ]
    }
    headers = {
        "inventory": HEADER,
        "log": LOG_HEADER,
        "channels": ["Channel", "Enabled", "Last sync", "Last error"],
    }
    return find_layout(metadata, headers)


def test_no_log_cell_of_a_push_of_100000_items_reaches_googles_50000_characters() -> None:
    items = [f"TEA-{n:06d}-GREEN-LEAF" for n in range(100_000)]
    plan = PushPlan(
        "shopify",
        [StockUpdate(item, 5) for item in items],
        {},
        resync=set(items),  # every item was re-read first: the note names them too
    )
    events = push_events([plan], {"shopify": PushResult(calls=400)}, {})
    row = log_row(_layout(), "2026-11-30T10:00:00+09:00", events[0])
    assert max(len(str(v)) for v in row if v is not None) <= 50_000
    assert "100000 item(s)" in str(row[8])


def test_a_log_detail_longer_than_a_cell_holds_is_cut_to_fit() -> None:
    event = Event("error", "amazon", detail="x" * 70_000)
    row = log_row(_layout(), "2026-11-30T10:00:00+09:00", event)
    assert len(row[8]) == 50_000 and row[8].endswith("…")


def test_the_state_files_page_cache_in_memory_is_capped(tmp_path: Path) -> None:
    # What a long `run` keeps in memory of the state file grows with the file up to this cap.
    ledger = Ledger(tmp_path / "state.sqlite3")
    try:
        (size,) = ledger._db.execute("PRAGMA cache_size").fetchone()
    finally:
        ledger.close()
    assert size == -CACHE_KIB


def test_the_state_file_stops_growing_once_past_its_horizons(tmp_path: Path) -> None:
    """Years of orders that close: what the state file holds levels off, and so does its size.

    Every 5 virtual days, 10 orders of one line each are placed and applied, and the orders
    placed 5 days earlier close (shipped); then the state is pruned as `Cycle._prune` does it.
    Whole orders go 180 days after they were placed (`RETAIN_ORDERS`), their ids 800 days after
    (`RETAIN_IDS`): past 800 days the counts must stop moving, and the file with them.
    """
    ledger = Ledger(tmp_path / "state.sqlite3")
    ledger._db.execute("PRAGMA synchronous=OFF")  # speed only: no crash in this test
    start = datetime(2026, 1, 1, tzinfo=UTC)
    every, per_step = 5, 4
    seen: dict[int, tuple[int, int, int, int]] = {}

    def placed(day: int, n: int) -> str:
        return (start + timedelta(days=day, hours=n)).isoformat()

    def count(table: str) -> int:
        return int(ledger._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    try:
        for day in range(every, 1_200 + 1, every):
            changes = Changes()
            for n in range(per_step):
                order = f"{day}-{n}"
                changes.orders.append(("shopify", order, placed(day, n), False))
                changes.lines.append(LineState("shopify", order, "1", "TEA-001", "TEA-001", 1, 1))
                if day > every:
                    changes.orders.append(
                        ("shopify", f"{day - every}-{n}", placed(day - every, n), True)
                    )
            ledger.prepare(f"c{day}", "cycle", changes)
            ledger.complete(f"c{day}")
            ledger.prune(start + timedelta(days=day + 1), keep=RETAIN_ORDERS, keep_ids=RETAIN_IDS)
            if day in (300, 1_000, 1_100, 1_200):
                ledger._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                (pages,) = ledger._db.execute("PRAGMA page_count").fetchone()
                seen[day] = (count("orders"), count("lines"), count("forgotten"), int(pages))
    finally:
        ledger.close()
    orders, lines, ids, pages = seen[1_000]
    # Orders placed at most 180 days before the newest are held whole (the newest was placed
    # at hour 3 of its day, so one of the orders 180 days before it is exactly that old and
    # stays); the ids of those placed 180 to 800 days before it.
    assert orders == lines == RETAIN_ORDERS.days // every * per_step + 1
    assert ids == (RETAIN_IDS - RETAIN_ORDERS).days // every * per_step
    # Past the horizons nothing more is kept, however many more orders come and go...
    assert seen[1_100][:3] == seen[1_200][:3] == (orders, lines, ids)
    # ...and the file reuses the pages freed (a few pages of slack for the B-trees' shape).
    assert seen[1_200][3] <= pages + 3
    # While ids were still piling up (before 800 days) the file was smaller: it grew, then
    # stopped.
    assert seen[300][3] < pages


# -- Python's cycle collector: off while a cycle builds its rows, on over the pushes' objects --
def _shop_of(w: World, count: int) -> None:
    w.create_sheet([[f"SKU-{i:04d}", "", 5, "", "", "", "", "", "", ""] for i in range(count)])
    for market in w.markets.values():
        for i in range(count):
            market.add_item(f"SKU-{i:04d}", 0)


def test_a_cycle_leaves_the_collector_as_it_found_it_also_when_it_fails(tmp_path: Path) -> None:
    thresholds = gc.get_threshold()
    with world(tmp_path, ("rakuten",)) as w:
        _shop_of(w, 3)
        assert w.sync().ok
        assert (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()) == (True, thresholds, 0)
        w.markets["rakuten"].place_order([("SKU-0001", 1)])
        w.sheets.fail(503, times=10, match=":batchUpdate")
        with pytest.raises(StockbotError):
            w.sync()
        w.sheets.faults.clear()
        assert (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()) == (True, thresholds, 0)
        gc.disable()
        try:
            w.markets["rakuten"].place_order([("SKU-0002", 1)])
            assert w.sync().ok
            assert not gc.isenabled()  # whoever turned it off turns it on
            assert gc.get_freeze_count() == 0
        finally:
            gc.enable()


@pytest.mark.parametrize(
    "market, push_from, from_calls, on_while_pushing",
    [
        ("rakuten", 1, 1_000, True),  # 3 items of at least 1
        ("rakuten", 20_000, 1_000, False),  # 3 items in 1 call: a small push
        ("amazon", 20_000, 3, True),  # 3 items, a PATCH each: 3 calls of at least 3
        ("rakuten", 20_000, 3, False),  # 3 items in 1 bulk-upsert
    ],
)
def test_the_collector_is_off_while_rows_are_built_and_on_while_pushing_a_large_push(
    tmp_path: Path, market: str, push_from: int, from_calls: int, on_while_pushing: bool
) -> None:
    """Every httpx call leaves a reference cycle: the collector runs during a large push, or a
    first cycle at 100,000 SKUs holds their answers to its end (355 MB instead of 290, issue
    8's bench_scale, where this is measured), and 2,999 Amazon PATCHes hold 23 MB (review
    attacks 13). A small push (a cycle's orders) leaves little, and turning the collector on
    would walk every object the cycle made (0.16 s at 100,000 rows): it stays off
    (`sync.PUSH_COLLECTOR_FROM` items, `sync.PUSH_COLLECTOR_FROM_CALLS` calls)."""
    seen: dict[str, bool] = {}

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            seen[name] = gc.isenabled()
            return real(*args, **kwargs)

        return call

    with world(tmp_path, (market,)) as w:
        _shop_of(w, 3)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sync, "PUSH_COLLECTOR_FROM", push_from)
            patch.setattr(sync, "PUSH_COLLECTOR_FROM_CALLS", from_calls)
            patch.setattr(sync, "parse_inventory", spy("parse", sync.parse_inventory))
            patch.setattr(sync, "push_all", spy("push", sync.push_all))
            assert w.sync().ok
    assert seen == {"parse": False, "push": on_while_pushing}
    assert gc.isenabled()


def test_each_marketplace_names_the_fewest_calls_a_push_makes(tmp_path: Path) -> None:
    """What the collector rule counts: the batch limits of each API (MARKETPLACES.md)."""
    expected = {
        "rakuten": {0: 0, 1: 1, 400: 1, 401: 2},  # bulk-upsert, 400 items
        "yahoo": {1: 1, 1_000: 1, 1_001: 2},  # setStock, 1,000 items
        "shopify": {1: 1, 250: 1, 251: 2},  # inventorySetQuantities, 250 entries
        "amazon": {1: 1, 2_999: 2_999, 3_000: 5, 25_000: 5, 25_001: 10},  # PATCH, then feeds
    }
    with world(tmp_path, tuple(expected)) as w:
        _shop_of(w, 1)
        with w.bot() as cycle:
            for market, calls in expected.items():
                got = {count: cycle.channels[market].push_calls(count) for count in calls}
                assert got == calls, market


def test_garbage_of_a_cycles_first_steps_does_not_pile_up_over_cycles(tmp_path: Path) -> None:
    """The collector is off until the pushes: what a cycle's reads and order fetches leave in
    reference cycles must still be collected, or a long `run` grows (it grew 150 KB a cycle
    when the pushes froze the objects made before them, `gc.freeze`)."""
    with world(tmp_path, ("rakuten", "shopify")) as w:
        _shop_of(w, 20)
        with w.bot() as cycle:
            assert cycle.run().ok  # the clean start: every SKU pushed, 5 in each store
            tracked = []
            for n in range(45):
                w.markets["rakuten" if n % 2 else "shopify"].place_order([(f"SKU-{n % 20:04d}", 1)])
                assert cycle.run().ok
                if n in (14, 44):
                    tracked.append(len(gc.get_objects()))
        assert tracked[1] - tracked[0] < 3_000, tracked


_text = st.text(max_size=6)
_line_states = st.builds(
    LineState,
    _text,
    _text,
    _text,
    _text,
    st.none() | _text,
    st.integers(-5, 5),
    st.integers(-5, 5),
    st.booleans(),
    st.booleans(),
    st.none() | st.lists(st.tuples(_text, st.integers(1, 3)), max_size=2).map(tuple),
)
_changes = st.builds(
    Changes,
    lines=st.lists(_line_states, max_size=3),
    orders=st.lists(st.tuples(_text, _text, _text, st.booleans()), max_size=3),
    cursors=st.dictionaries(_text, st.tuples(_text, _text), max_size=2),
    stock=st.dictionaries(_text, st.integers()),
    adjust=st.lists(st.tuples(_text, _text, st.integers()), max_size=3),
    log_rows=st.lists(st.lists(st.one_of(_text, st.integers(), st.none()), max_size=3)),
    outbox_done=st.lists(st.integers(0, 99), max_size=3),
    forget_stock=st.lists(_text, max_size=3),
    written=st.lists(st.lists(st.one_of(_text, st.integers()), max_size=3), max_size=3),
    refusals_logged=st.lists(st.lists(_text, max_size=2), max_size=2),
)


@given(_changes)
def test_a_pending_commit_is_saved_as_dataclasses_asdict_writes_it(changes: Changes) -> None:
    # `to_json` leaves out asdict's copy of the 100,000 baselines of a first cycle; the text
    # must stay the same, and read back to the same changes.
    assert changes.to_json() == asdict_text(changes)
    assert Changes.from_json(changes.to_json()) == Changes.from_json(asdict_text(changes))
