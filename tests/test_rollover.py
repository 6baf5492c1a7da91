"""The Log tab rolled over when full (SPEC.md section 7, bot.rollover): renamed, never
rewritten, a new `Log` tab started, and no Log row lost or doubled across it.

Whole cycles only: the real gspread client and the real adapters talk to the stand-ins. The
stand-in creates tabs of 1000 x 26 cells, so a threshold of 26,000 cells makes the first Log
tab full at once and the new one (2 rows when started) far from full.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.errors import SheetError
from tests.world import LOG_HEADER, World, world

FULL = 26_000


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    """Rakuten only; TEA-001 sold there under its SKU, 30 in Stock; one cycle done."""
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet([["TEA-001", "", 30, "", "", "", "", "", "", ""]])
        w.markets["rakuten"].add_item("TEA-001", 0)
        w.sync()
        yield w


def _tabs(w: World) -> list[str]:
    return list(w.sheets.tab_ids(w.sheet_id))


def _old_logs(w: World) -> list[str]:
    return [t for t in _tabs(w) if t.startswith("Log until ")]


def _all_log_rows(w: World) -> list[list[object]]:
    """Every Log row of every Log tab, old tabs first, without their header rows."""
    rows: list[list[object]] = []
    for title in [*sorted(_old_logs(w)), "Log"]:
        grid = w.sheets.get_values(w.sheet_id, title)
        assert grid[0] == LOG_HEADER
        rows += grid[1:]
    return rows


def _orders(w: World) -> list[object]:
    return [r[3] for r in _all_log_rows(w) if r[1] == "order"]


def test_a_full_log_tab_is_renamed_and_a_new_one_started(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = w.markets["rakuten"]
    first = store.place_order([("TEA-001", 1)])
    w.sync()
    before = w.sheets.get_values(w.sheet_id, "Log")
    monkeypatch.setattr("bot.rollover.LOG_ROLL_CELLS", FULL)
    second = store.place_order([("TEA-001", 2)])
    report = w.sync()
    day = w.today().isoformat()
    assert report.log_rolled_over == f"Log until {day}"
    assert _old_logs(w) == [f"Log until {day}"]
    # The full tab is renamed as it was, never rewritten; the new one has the headers and
    # this cycle's rows, including the report's push rows written after the commit.
    assert w.sheets.get_values(w.sheet_id, f"Log until {day}") == before
    new = w.sheets.get_values(w.sheet_id, "Log")
    assert new[0] == LOG_HEADER
    assert [r[1] for r in new[1:]] == ["order", "push"]
    assert _orders(w) == [first, second]
    assert w.row("TEA-001")["Stock"] == 27
    # The new tab is far from full: the next cycles write to it.
    third = store.place_order([("TEA-001", 1)])
    w.sync()
    assert _old_logs(w) == [f"Log until {day}"]
    assert _orders(w) == [first, second, third]


def test_a_second_rollover_on_the_same_day_gets_its_own_title(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.rollover.LOG_ROLL_CELLS", FULL)
    w.sync()
    monkeypatch.setattr("bot.rollover.LOG_ROLL_CELLS", 1)
    w.sync()
    day = w.today().isoformat()
    assert sorted(_old_logs(w)) == [f"Log until {day}", f"Log until {day} (2)"]


def test_no_log_row_is_lost_or_doubled_when_the_rollover_commits_answer_is_lost(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.rollover.LOG_ROLL_CELLS", FULL)
    order = w.markets["rakuten"].place_order([("TEA-001", 2)])
    # The commit carrying the rollover lands, but its answer never comes back (a crash or a
    # network cut right after sending it): the marker tells the bot it landed.
    w.sheets.drop(times=1, match=":batchUpdate", after=True)
    w.sync()
    w.sync()
    assert len(_old_logs(w)) == 1
    assert _orders(w) == [order]
    assert w.row("TEA-001")["Stock"] == 28


def test_no_log_row_is_lost_or_doubled_when_the_rollover_commit_never_lands(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.rollover.LOG_ROLL_CELLS", FULL)
    order = w.markets["rakuten"].place_order([("TEA-001", 2)])
    w.sheets.fail(500, times=1, match=":batchUpdate")  # refused: it never lands, sent again
    w.sync()
    assert len(_old_logs(w)) == 1
    assert _orders(w) == [order]
    assert w.row("TEA-001")["Stock"] == 28


class _Refused(Exception):
    """Raised by a Sheets stand-in hook: the stand-in answers 500 and does not apply it."""


def test_log_rows_waiting_from_a_lost_report_land_once_in_the_new_log_tab(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = w.markets["rakuten"].place_order([("TEA-001", 2)])

    def refuse_report(request: Any) -> None:
        if request.path.endswith(":batchUpdate") and b'"push"' in request.body:
            raise _Refused

    w.sheets.add_hook(refuse_report)
    with pytest.raises(SheetError):
        w.sync()  # the report with the push row never lands: its rows wait in the state file
    w.sheets.remove_hook(refuse_report)
    assert [r["Event"] for r in w.log()][-1] == "order"
    monkeypatch.setattr("bot.rollover.LOG_ROLL_CELLS", FULL)
    w.sync()
    assert len(_old_logs(w)) == 1
    assert _orders(w) == [order]
    new = w.sheets.get_values(w.sheet_id, "Log")
    assert [r[1] for r in new[1:]] == ["push"]  # the waiting push row, once, in the new tab


def test_a_nearly_full_spreadsheet_is_reported_once_a_day(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.sync.WARN_TOTAL_CELLS", 50_000)  # the three tabs hold 78,000

    def warnings() -> list[dict[str, Any]]:
        return [r for r in w.log("error") if "cells Google allows" in str(r["Detail"])]

    w.sync()
    w.sync()
    assert len(warnings()) == 1
    assert "78,000 of the 10,000,000" in warnings()[0]["Detail"]
    w.time.offset += timedelta(days=1)
    w.sync()
    assert len(warnings()) == 2
