"""The staff-edit window (issue 8): what the bot does between the re-read and the commit.

The re-read is narrow: the header row and the SKU and Stock cells of the rows the commit
writes (one values:batchGetByDataFilter request). When it answers them as the first read
did, the commit is sent at once (its body encoded beforehand); anything else takes the full
read of the SKU and Stock columns, which finds moves and staff edits as before. When the
commit writes too many rows, the full read is the re-read, unless it writes no Stock at all (a
first cycle): then only the header row and the bottom are read first, and its rows are checked
in the commit's answer.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import positions
from bot.errors import StockbotError
from bot.positions import Columns, narrow_ranges, row_runs
from bot.sheet.layout import Tab
from bot.standins.base import Request
from tests.staff import at_commit, at_read, dimension, rakuten_shop, sort_rows, stock
from tests.world import World, world

COLUMNS = {"sku": 0, "stock": 2}


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    yield from rakuten_shop(tmp_path)


def _row_by_row_forbidden(*args: Any) -> bool:
    raise AssertionError("the re-read was compared row by row")


def test_a_quiet_cycle_commits_without_comparing_row_by_row(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A row without a SKU in the middle and a row with only a Name at the end: the first
    # read shows them as "" and short rows, the column read as "" and not at all.
    w.sheets.set_value(w.sheet_id, "Inventory", "B6", "a note", raw=True)
    w.sheets.set_value(w.sheet_id, "Inventory", "C6", 5)
    w.sheets.set_value(w.sheet_id, "Inventory", "B8", "end", raw=True)
    w.sync()
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    monkeypatch.setattr(positions, "_unchanged", _row_by_row_forbidden)
    assert w.sync().ok
    assert stock(w)["TEA-001"] == 28


def test_a_stock_edited_at_the_reread_is_still_kept(w: World) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    at_read(w, 2, lambda: w.set_stock("TEA-001", 100))
    assert w.sync().ok
    assert stock(w)["TEA-001"] == 98
    assert [(x["Change"], x["After"]) for x in w.log("manual")] == [(70, 100)]


def test_rows_sorted_at_the_reread_are_followed_by_their_sku(w: World) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("TEA-001", 2)])

    def swap() -> None:
        first, second = w.row("TEA-001"), w.row("TEA-002")
        for column, key in (("A", "SKU"), ("C", "Stock"), ("D", "Display")):
            w.sheets.set_value(w.sheet_id, "Inventory", f"{column}2", second[key], raw=True)
            w.sheets.set_value(w.sheet_id, "Inventory", f"{column}3", first[key], raw=True)

    at_read(w, 2, swap)
    assert w.sync().ok
    assert stock(w) == {"TEA-001": 28, "TEA-002": 30, "TEA-003": 30, "CUP-001": 12}
    assert w.log("manual") == []


def test_the_columns_are_compared_as_a_column_read_answers_them() -> None:
    grid = [["SKU", "Name", "Stock"], ["A", "", 3], ["", "x", ""], ["B", "", 4], ["", "end"]]
    basis = Columns.of(grid, COLUMNS)
    assert basis.same(["SKU", "A", "", "B"], ["Stock", 3, "", 4])
    assert not basis.same(["SKU", "A", "", "B"], ["Stock", 3, "", 5])
    assert not basis.same(["SKU", "B", "", "A"], ["Stock", 4, "", 3])
    assert not basis.same(["SKU", "A", "", "B", "C"], ["Stock", 3, "", 4])


def test_true_typed_over_1_is_a_change_although_python_finds_them_equal() -> None:
    basis = Columns.of([["SKU", "Name", "Stock"], [1, "", 1]], COLUMNS)
    assert basis.same(["SKU", 1], ["Stock", 1])
    assert not basis.same(["SKU", 1], ["Stock", True])
    assert not basis.same(["SKU", True], ["Stock", 1])
    was_true = Columns.of([["SKU", "Name", "Stock"], ["A", "", True]], COLUMNS)
    assert not was_true.same(["SKU", "A"], ["Stock", 1])


# -- the narrow re-read -------------------------------------------------------------------------
NARROW = "values:batchGetByDataFilter"


def _cycle_reads(w: World, since: int) -> list[Request]:
    """The values reads and the commit of the requests since `since`, in order."""
    return [
        r
        for r in w.sheets.requests[since:]
        if "values:batchGet" in r.path
        or (r.path.endswith(":batchUpdate") and b"stockbot.commit" in r.body)
    ]


def _before_commit(w: World, since: int) -> list[str]:
    """What was read between the cycle's first read and its commit: `narrow` or `full`."""
    seen = []
    for r in _cycle_reads(w, since)[1:]:
        if r.path.endswith(":batchUpdate"):
            return seen
        seen.append("narrow" if r.path.endswith(NARROW) else "full")
    raise AssertionError("no commit")


def _filters(request: Request) -> list[str]:
    return [f["a1Range"] for f in request.json()["dataFilters"]]


@pytest.fixture
def big(tmp_path: Path) -> Iterator[World]:
    """60 products of Stock 10, each sold on Rakuten."""
    with world(tmp_path, ("rakuten",)) as w:
        rows = [[f"S-{i:03d}", "", 10, "", "", "", "", "", "", ""] for i in range(60)]
        w.create_sheet(rows)
        for row in rows:
            w.markets["rakuten"].add_item(str(row[0]), 0)
        yield w


def test_the_reread_reads_only_the_cells_of_the_rows_the_commit_writes(big: World) -> None:
    w = big
    w.sync()
    w.markets["rakuten"].place_order([("S-010", 1), ("S-011", 1), ("S-040", 2)])
    since = len(w.sheets.requests)
    report = w.sync()
    assert report.ok
    assert _before_commit(w, since) == ["narrow"]
    (narrow,) = [r for r in w.sheets.requests[since:] if r.path.endswith(NARROW)]
    body = narrow.json()
    assert (body["valueRenderOption"], body["majorDimension"]) == ("FORMULA", "COLUMNS")
    # The header row; SKU to Stock of rows 12-13 and 42; below the last product, row 61.
    assert _filters(narrow) == [
        "'Inventory'!1:1",
        "'Inventory'!A12:C13",
        "'Inventory'!A42:C42",
        "'Inventory'!A61:C",
    ]
    assert report.sheet_reads + report.sheet_writes <= 6
    assert [stock(w)[s] for s in ("S-010", "S-011", "S-040", "S-041")] == [9, 9, 8, 10]


def test_a_commit_writing_more_rows_than_pay_takes_the_full_read(
    big: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = big
    w.sync()
    w.markets["rakuten"].place_order([("S-010", 1), ("S-040", 2)])
    monkeypatch.setattr(positions, "NARROW_MAX_ROWS", 1)
    since = len(w.sheets.requests)
    assert w.sync().ok
    assert _before_commit(w, since) == ["full"]
    assert [stock(w)[s] for s in ("S-010", "S-040")] == [9, 8]


# -- a commit writing Shown and Status to more rows than a narrow read pays for ------------------
# A first cycle writes every row's Shown and Status; at 100,000 rows, checking them all before
# the commit made staff wait 0.6 s. Those cells are the bot's own: such rows are checked in the
# commit's answer and put right there (`Writes.checked_first`).
def _held_back(i: int) -> int:
    return 1 + i % 4


@pytest.fixture
def shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """60 products of Stock 10, each holding back 1-4 ("-k"): neighbours show different
    quantities. A narrow read pays for 5 rows here, as for 2,000 in a real sheet."""
    monkeypatch.setattr(positions, "NARROW_MAX_ROWS", 5)
    with world(tmp_path, ("rakuten",)) as w:
        rows = [[f"S-{i:03d}", "", 10, f"-{_held_back(i)}"] + [""] * 6 for i in range(60)]
        w.create_sheet(rows)
        for row in rows:
            w.markets["rakuten"].add_item(str(row[0]), 0)
        yield w


def _shown_right(w: World) -> dict[str, Any]:
    """Each product whose Shown, Status or Rakuten quantity is not its Stock less its margin."""
    wrong: dict[str, Any] = {}
    for row in w.inventory():
        i = int(str(row["SKU"])[2:])
        meant = row["Stock"] - _held_back(i)
        if (row["Shown"], row["Status"], w.markets["rakuten"].quantity(row["SKU"])) != (
            meant,
            "OK",
            meant,
        ):
            wrong[row["SKU"]] = (row["Shown"], row["Status"], meant)
    return wrong


def _swap(w: World, a: str, b: str) -> None:
    """Staff drag two rows past each other: every cell of each row moves."""
    order = [str(r["SKU"]) for r in w.inventory()]
    i, j = order.index(a), order.index(b)
    order[i], order[j] = order[j], order[i]
    sort_rows(w, lambda r: order.index(str(r["SKU"])))


def test_a_first_cycle_writing_every_row_reads_only_the_header_and_the_bottom_first(
    shown: World,
) -> None:
    w = shown
    since = len(w.sheets.requests)
    assert w.sync().ok
    assert _before_commit(w, since) == ["narrow"]
    (narrow,) = [r for r in w.sheets.requests[since:] if r.path.endswith(NARROW)]
    assert _filters(narrow) == ["'Inventory'!1:1", "'Inventory'!A61:C"]
    assert _shown_right(w) == {}


def test_rows_swapped_before_a_commit_of_shown_and_status_are_put_right_from_its_answer(
    shown: World,
) -> None:
    w = shown
    at_read(w, 2, lambda: _swap(w, "S-010", "S-021"))  # kept count and bottom: unseen
    report = w.sync()
    assert report.ok
    assert len(report.repaired) == 1
    assert _shown_right(w) == {}
    assert set(stock(w).values()) == {10}
    assert [r["SKU"] for r in w.inventory()][10:22:11] == ["S-021", "S-010"]
    (error,) = w.log("error")
    assert error["Detail"].startswith("rows were moved while the bot synced")
    again = w.sync()
    assert again.ok and not again.repaired
    assert w.log("manual") == []


def test_a_stock_typed_before_a_commit_of_shown_and_status_is_kept_and_pushed_next_cycle(
    shown: World,
) -> None:
    w = shown
    at_read(w, 2, lambda: w.set_stock("S-030", 50))
    assert w.sync().ok
    assert stock(w)["S-030"] == 50  # not overwritten; Shown from the first read until next cycle
    assert w.sync().ok
    assert [(e["SKU"], e["Before"], e["After"]) for e in w.log("manual")] == [("S-030", 10, 50)]
    assert _shown_right(w) == {}


def test_a_failed_repair_of_shown_and_status_leaves_stock_typed_since_alone(
    shown: World,
) -> None:
    w = shown
    at_read(w, 2, lambda: _swap(w, "S-010", "S-021"))
    at_commit(w, lambda: w.sheets.fail(503, times=1_000, match=":batchUpdate"))
    with pytest.raises(StockbotError):
        w.sync()
    with w.sheets.lock:
        w.sheets.faults.clear()
    w.set_stock("S-010", 40)  # in its new row
    assert w.sync().ok
    assert stock(w)["S-010"] == 40
    assert [(e["SKU"], e["Before"], e["After"]) for e in w.log("manual")] == [("S-010", 10, 40)]
    assert _shown_right(w) == {}


def test_a_stock_edited_in_a_written_row_takes_the_full_read_and_is_kept(w: World) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    at_read(w, 2, lambda: w.set_stock("TEA-001", 100))
    since = len(w.sheets.requests)
    assert w.sync().ok
    assert _before_commit(w, since) == ["narrow", "full"]
    assert stock(w)["TEA-001"] == 98
    assert [(x["SKU"], x["Change"], x["After"]) for x in w.log("manual")] == [("TEA-001", 70, 100)]


def test_a_stock_edited_in_a_row_the_commit_does_not_write_is_logged_next_cycle(w: World) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    at_read(w, 2, lambda: w.set_stock("TEA-003", 7))
    since = len(w.sheets.requests)
    assert w.sync().ok
    assert _before_commit(w, since) == ["narrow"]
    assert stock(w) == {"TEA-001": 28, "TEA-002": 30, "TEA-003": 7, "CUP-001": 12}
    assert w.log("manual") == []  # not seen yet, and not overwritten
    assert w.sync().ok
    assert stock(w)["TEA-003"] == 7
    assert [(x["SKU"], x["Before"], x["After"]) for x in w.log("manual")] == [("TEA-003", 30, 7)]
    assert w.markets["rakuten"].quantity("TEA-003") == 3  # its Display "3" on the Stock typed


def test_a_row_inserted_above_at_the_reread_takes_the_full_read_and_is_followed(w: World) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("TEA-002", 2)])
    at_read(w, 2, lambda: dimension(w, "insertDimension", "ROWS", 1))
    since = len(w.sheets.requests)
    assert w.sync().ok
    assert _before_commit(w, since) == ["narrow", "full"]
    assert stock(w) == {"TEA-001": 30, "TEA-002": 28, "TEA-003": 30, "CUP-001": 12}
    assert w.inventory()[0]["SKU"] == ""  # the new blank row got nothing
    assert w.inventory()[0]["Stock"] == ""
    assert w.log("manual") == []


def test_a_row_added_below_the_table_at_the_reread_takes_the_full_read(w: World) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    at_read(w, 2, lambda: w.sheets.set_value(w.sheet_id, "Inventory", "A6", "TEA-001", raw=True))
    since = len(w.sheets.requests)
    assert w.sync().ok
    assert _before_commit(w, since) == ["narrow", "full"]
    # As the full read always did: every row of the first read is where it was, so the commit
    # goes ahead there; the new row is not written, and the next cycle sees the copy.
    first, *_, added = w.inventory()
    assert (first["SKU"], first["Stock"], added["SKU"], added["Stock"]) == (
        "TEA-001",
        28,
        "TEA-001",
        "",
    )


def test_a_column_inserted_at_the_reread_takes_the_full_read_and_is_followed(w: World) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    at_read(w, 2, lambda: dimension(w, "insertDimension", "COLUMNS", 1))
    since = len(w.sheets.requests)
    assert w.sync().ok
    assert _before_commit(w, since)[:2] == ["narrow", "full"]
    assert stock(w)["TEA-001"] == 28
    assert all(r.get("Name") != 28 for r in w.inventory())


def test_a_set_component_edited_at_the_reread_is_checked_with_the_set(tmp_path: Path) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(
            [
                ["TEA-001", "Sencha", 10, "3", "", "", "", "", "", ""],
                ["CUP-001", "Cup", 7, "", "", "", "", "", "", ""],
                ["GIFT-001", "Gift box", 0, "", "", "", "", "", "", ""],
            ]
        )
        w.sheets.set_value(w.sheet_id, "Inventory", "K1", "Set", raw=True)
        w.sheets.set_value(w.sheet_id, "Inventory", "K4", "TEA-001*2 + CUP-001", raw=True)
        for item in ("TEA-001", "CUP-001", "GIFT-001"):
            w.markets["rakuten"].add_item(item, 0)
        assert w.sync().ok
        assert stock(w)["GIFT-001"] == 5
        w.markets["rakuten"].place_order([("TEA-001", 2)])  # the set stays at 4
        at_read(w, 2, lambda: w.set_stock("CUP-001", 1))
        since = len(w.sheets.requests)
        assert w.sync().ok
        narrow = next(r for r in w.sheets.requests[since:] if r.path.endswith(NARROW))
        # TEA-001 and GIFT-001 are written; CUP-001's row between them is checked too.
        assert _filters(narrow)[1] == "'Inventory'!A2:C4"
        assert _before_commit(w, since) == ["narrow", "full"]
        assert stock(w) == {"TEA-001": 8, "CUP-001": 1, "GIFT-001": 1}
        assert [(x["SKU"], x["After"]) for x in w.log("manual")] == [("CUP-001", 1)]


def test_a_repair_keeps_a_stock_edit_the_narrow_read_saw(w: World) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("TEA-001", 1), ("TEA-002", 1)])
    at_read(w, 2, lambda: w.set_stock("TEA-001", 25))  # a written row: seen, full read
    at_commit(w, lambda: dimension(w, "insertDimension", "ROWS", 1))
    report = w.sync()
    assert report.repaired
    assert stock(w) == {"TEA-001": 24, "TEA-002": 29, "TEA-003": 30, "CUP-001": 12}
    assert [(e["SKU"], e["Change"]) for e in w.log("manual")] == [("TEA-001", -5)]


def test_a_repair_says_when_it_put_back_a_stock_the_narrow_read_did_not_see(w: World) -> None:
    w.sync()
    w.markets["rakuten"].place_order([("TEA-002", 1)])
    at_read(w, 2, lambda: w.set_stock("TEA-001", 25))  # not written: not re-read
    # A blank row inserted in the instant of the commit: TEA-002's write lands on TEA-001.
    at_commit(w, lambda: dimension(w, "insertDimension", "ROWS", 1))
    report = w.sync()
    assert report.repaired
    assert stock(w) == {"TEA-001": 30, "TEA-002": 29, "TEA-003": 30, "CUP-001": 12}
    assert "row 3 (TEA-001): its Stock was put back to 30" in report.repaired[0]
    assert any("type it again" in e["Detail"] for e in w.log("error"))


# -- the ranges ---------------------------------------------------------------------------------
@given(st.sets(st.integers(1, 300), max_size=60))
def test_row_runs_cover_exactly_the_rows_given(rows: set[int]) -> None:
    runs = row_runs(rows)
    covered = [i for first, last in runs for i in range(first, last + 1)]
    assert covered == sorted(rows)
    # Maximal: a run never ends right before the next one starts.
    assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(runs))


@given(st.sets(st.integers(1, 300), max_size=60), st.sampled_from([(0, 2), (3, 1), (0, 20)]))
def test_narrow_ranges_take_the_sku_and_stock_cells_of_exactly_the_rows_given(
    rows: set[int], columns: tuple[int, int]
) -> None:
    sku, stock = columns
    tab = Tab("Inventory", 0, 1000, 26, {"sku": sku, "stock": stock})
    ranges = narrow_ranges(tab, row_runs(rows), 301)
    assert ranges[0] == "'Inventory'!1:1"
    cells: list[tuple[int, int]] = []  # (column, row), 0-based
    tail: set[int] = set()
    for text in ranges[1:]:
        found = re.fullmatch(r"'Inventory'!([A-Z])(\d+):([A-Z])(\d*)", text)
        assert found is not None, text
        left, right = ord(found[1]) - 65, ord(found[3]) - 65
        if not found[4]:
            assert int(found[2]) == 302
            tail |= set(range(left, right + 1))
            continue
        lines = range(int(found[2]) - 1, int(found[4]))
        cells += [(c, r) for c in range(left, right + 1) for r in lines]
    assert len(cells) == len(set(cells))  # no cell twice
    wanted = {(c, r) for c in (sku, stock) for r in rows}
    assert wanted <= set(cells)
    assert {r for _, r in cells} == rows  # no other row
    assert {sku, stock} <= tail
    if abs(sku - stock) < positions.SPAN:  # one range per run, the columns between coming along
        assert len(ranges) == len(row_runs(rows)) + 2


def _six_columns_left_of_stock(w: World) -> None:
    """Staff insert six columns left of Stock: the Stock column takes Shown's old place."""
    for _ in range(6):
        dimension(w, "insertDimension", "COLUMNS", 2)


def test_a_column_move_in_the_instant_of_a_first_cycles_commit_names_the_rows_put_back_once(
    shown: World,
) -> None:
    w = shown
    at_commit(w, lambda: _six_columns_left_of_stock(w))
    report = w.sync()
    assert report.ok
    (repaired,) = report.repaired
    assert repaired.endswith(
        "; the Stock of 60 rows (2-61) was put back to what the cycle read at its start; if "
        "staff changed any of them during the cycle, type it again"
    )
    assert set(stock(w).values()) == {10}
    assert w.sync().ok
    assert w.log("manual") == []
    assert _shown_right(w) == {}


@pytest.mark.xfail(
    strict=True,
    reason="known limit (README): a first cycle writes no Stock, so its re-read checks no row; "
    "a column moved in the very instant of its commit puts Shown into Stock cells, and the "
    "repair puts each back to the cycle's first read, not to a Stock staff typed since (the "
    "Log names the rows)",
)
def test_a_stock_typed_during_a_first_cycle_survives_a_column_move_in_its_commits_instant(
    shown: World,
) -> None:
    w = shown
    at_read(w, 2, lambda: w.set_stock("S-030", 50))
    at_commit(w, lambda: _six_columns_left_of_stock(w))
    assert w.sync().ok
    assert stock(w)["S-030"] == 50
