"""A Log `error` row that would repeat every cycle is written once until it changes (issue 10).

SPEC.md section 4, "Nothing silent": the first occurrence is always logged, and the Channels
tab's `Last error` (or the row's Status) keeps showing the problem every cycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.repeats import Logged, due, dump, load, remember
from tests.world import World, world

ROWS = [
    ["TEA-001", "Sencha", 30, "", "", "", "", "", "", ""],
    ["TEA-002", "Gyokuro", 30, "", "", "", "", "", "", ""],
]


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(ROWS)
        for item in ("TEA-001", "TEA-002"):
            w.markets["rakuten"].add_item(item, 0)
        w.sync()  # the clean start
        yield w


def errors(w: World) -> list[str]:
    """The Details of the Log's `error` rows."""
    return [str(r["Detail"]) for r in w.log("error")]


def last_error(w: World) -> str:
    """The rakuten row's Last error in the Channels tab."""
    grid = w.sheets.get_values(w.sheet_id, "Channels")
    return next(str([*r, "", "", ""][3]) for r in grid[1:] if r and r[0] == "rakuten")


def heal(w: World) -> None:
    """The marketplace answers again."""
    with w.markets["rakuten"].lock:
        w.markets["rakuten"].faults.clear()


def test_a_marketplace_failing_the_same_way_is_logged_once_and_shown_every_cycle(
    w: World,
) -> None:
    w.markets["rakuten"].fail(503, times=10_000, match="searchOrder")
    for _cycle in range(3):
        report = w.sync()
        assert "rakuten" in report.failed_channels
        assert "503" in last_error(w)  # Channels › Last error says it every cycle
    assert len(errors(w)) == 1
    assert "503" in errors(w)[0]


def test_a_failure_with_another_text_is_logged_again(w: World) -> None:
    w.markets["rakuten"].fail(503, times=10_000, match="searchOrder")
    w.sync()
    w.sync()
    heal(w)
    w.markets["rakuten"].fail(500, times=10_000, match="searchOrder")
    w.sync()
    w.sync()
    assert [("503" in e, "500" in e) for e in errors(w)] == [(True, False), (False, True)]


def test_a_failure_that_ended_and_came_back_is_logged_again(w: World) -> None:
    w.markets["rakuten"].fail(503, times=10_000, match="searchOrder")
    w.sync()
    w.sync()
    heal(w)
    assert w.sync().ok
    assert last_error(w) == ""
    w.markets["rakuten"].fail(503, times=10_000, match="searchOrder")
    w.sync()
    w.sync()
    assert len(errors(w)) == 2


def test_a_failing_push_is_logged_once(w: World) -> None:
    w.markets["rakuten"].fail(503, times=10_000, match="inventories/bulk-upsert")
    for value in (31, 32, 33):
        w.set_stock("TEA-001", value)
        report = w.sync()
        assert "rakuten" in report.failed_channels
    pushes = [e for e in errors(w) if "bulk-upsert" in e]
    assert len(pushes) == 1
    assert "503" in last_error(w)
    assert len(w.log("manual")) == 3  # the edits themselves are each logged, as always


def test_a_lasting_failure_is_logged_again_once_a_day_with_when_it_started(w: World) -> None:
    w.markets["rakuten"].fail(503, times=10_000, match="searchOrder")
    w.sync()
    first = w.log("error")[0]["Time"]
    w.time.offset += timedelta(hours=23)
    w.sync()
    assert len(errors(w)) == 1
    w.time.offset += timedelta(hours=1, minutes=1)
    w.sync()
    w.sync()
    assert len(errors(w)) == 2
    assert "503" in errors(w)[1]
    assert f"since {first}" in errors(w)[1]


def test_held_orders_of_a_broken_row_are_logged_once(w: World) -> None:
    w.set_stock("TEA-002", "lots")
    w.markets["rakuten"].place_order([("TEA-002", 1)])
    for _cycle in range(3):
        w.sync()
    held = [e for e in errors(w) if "held" in e]
    assert len(held) == 1
    assert "Stock" in str(w.row("TEA-002")["Status"])


# -- the pure part ---------------------------------------------------------------------------
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_due_writes_new_and_changed_problems_and_a_daily_reminder() -> None:
    logged = {
        "same": Logged("A", NOW - timedelta(hours=2), NOW - timedelta(hours=2)),
        "changed": Logged("B", NOW - timedelta(hours=2), NOW - timedelta(hours=2)),
        "old": Logged("C", NOW - timedelta(days=3), NOW - timedelta(days=1)),
    }
    current = {"same": "A", "changed": "B2", "old": "C", "new": "D"}
    assert due(current, logged, NOW) == {"changed": None, "old": logged["old"], "new": None}


def test_remember_forgets_what_ended_and_keeps_when_it_started() -> None:
    logged = {
        "same": Logged("A", NOW - timedelta(hours=2), NOW - timedelta(hours=2)),
        "gone": Logged("G", NOW - timedelta(hours=2), NOW - timedelta(hours=2)),
        "old": Logged("C", NOW - timedelta(days=3), NOW - timedelta(days=1)),
    }
    current = {"same": "A", "old": "C", "new": "D"}
    kept = remember(current, logged, due(current, logged, NOW), NOW)
    assert kept == {
        "same": logged["same"],
        "old": Logged("C", NOW - timedelta(days=3), NOW),
        "new": Logged("D", NOW, NOW),
    }
    assert load(dump(kept)) == kept
    assert load(None) == {} and load("not json") == {}
