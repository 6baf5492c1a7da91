"""Bounded state and bounded Sheets use for years of cycles (issue 8, SPEC.md section 7).

Whole cycles only: the real gspread client and the real adapters talk to the stand-ins.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.apply import Event
from bot.channels.base import PushResult, StockUpdate
from bot.ledger import CACHE_KIB, Ledger
from bot.pushing import PushPlan
from bot.report import log_row, push_events
from bot.sheet.layout import Layout, find_layout
from tests.staff import dimension, stock
from tests.world import HEADER, LOG_HEADER, world


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
        w.create_sheet([["TEA-001", "", 10, "", "", "", "", "", "", ""]])
        store = w.markets["rakuten"]
        store.add_item("TEA-001", 0)
        w.sync()
        order = store.place_order([("TEA-001", 2)])
        w.sync()
        store.ship(order)
        w.sync()
        w.time.offset += timedelta(days=200)
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
        assert stock(w)["TEA-001"] == 8
        assert len(w.log("order")) == 1
        assert w.log("cancel") == []


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
        {item: item for item in items},
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
