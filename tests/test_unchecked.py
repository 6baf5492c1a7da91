"""The pure judgements of a commit the bot stopped before checking (`bot.unchecked`): which row
took a Stock write after rows were sorted since (review attacks 19, attack 4)."""

from __future__ import annotations

import pytest

from bot.inventory import Row
from bot.rules import DisplaySetting
from bot.unchecked import carries, own_shown, took_after_sort

REAL = DisplaySetting("real")
BASELINE = {"p-1": 8, "p-5": 10, "p-6": 10}
# The commit wrote P-1's Stock 8 and Shown 8 at row index 2; rows were sorted since.
MISSED = {2: ("P-1", 8)}
CELLS: dict[str, dict[int, object]] = {"shown": {2: 8}}


def _row(
    index: int,
    sku: str,
    stock: int | None,
    shown: object,
    *,
    display: DisplaySetting = REAL,
    status_cell: object = "OK",
    duplicate: bool = False,
) -> Row:
    return Row(
        index=index,
        sku=sku,
        stock=stock,
        display=display,
        shown_cell=shown,
        status_cell=status_cell,
        duplicate=duplicate,
    )


@pytest.mark.parametrize(
    ("rows", "found"),
    [
        # The row that took the write carries its Stock and Shown wherever it is now.
        ([_row(2, "P-6", 10, 10), _row(6, "P-5", 8, 8)], {"P-5": 8}),
        # Recounted since: its Stock is staff's.
        ([_row(6, "P-5", 12, 8)], {}),
        # A Stock typed equal to the value written, beside the Shown the bot wrote for it.
        ([_row(2, "P-6", 8, 10)], {}),
        # Two rows fit: nothing tells which one took it.
        ([_row(3, "P-5", 8, 8), _row(4, "P-6", 8, 8)], {}),
        # Its own Stock shows the Shown written (a Display of -2): not told from an edit.
        ([_row(6, "P-5", 8, 8, display=DisplaySetting("minus", 2))], {}),
        # The product meant, sorted elsewhere, holding its own write.
        ([_row(6, "P-1", 8, 8)], {}),
        # A copied row (duplicate SKU) is not judged.
        ([_row(6, "P-5", 8, 8, duplicate=True)], {}),
    ],
)
def test_took_after_sort_finds_the_one_row_carrying_the_cells_written(
    rows: list[Row], found: dict[str, int]
) -> None:
    assert took_after_sort(rows, MISSED, CELLS, BASELINE) == found


def test_took_after_sort_needs_a_shown_written_beside_the_stock() -> None:
    rows = [_row(6, "P-5", 8, 8)]
    assert took_after_sort(rows, MISSED, {"status": {2: "OK"}}, BASELINE) == {}


def test_took_after_sort_compares_the_status_written_too() -> None:
    cells: dict[str, dict[int, object]] = {"shown": {2: 8}, "status": {2: "Display: bad"}}
    rows = [_row(5, "P-5", 8, 8, status_cell="Display: bad"), _row(6, "P-6", 8, 8)]
    assert took_after_sort(rows, MISSED, cells, BASELINE) == {"P-5": 8}


@pytest.mark.parametrize(
    ("line", "cells", "held"),
    [
        (["P-5", 8, 8, "OK"], {"shown": {2: 8}}, True),
        (["P-6", 8, 10, "OK"], {"shown": {2: 8}}, False),
        (["P-5", 8, 8, "OK"], {"shown": {2: 8}, "status": {2: "OK"}}, True),
        (["P-5", 8, 8, ""], {"status": {2: "Display: bad"}}, False),
        (["P-6", 8, 10, "OK"], {}, True),  # nothing kept: nothing tells
        (["P-6", 8], {"shown": {2: 8}}, False),  # a short line: its Shown is blank
    ],
)
def test_carries_tells_a_row_without_the_shown_or_status_written(
    line: list[object], cells: dict[str, dict[int, object]], held: bool
) -> None:
    columns = {"sku": 0, "stock": 1, "shown": 2, "status": 3}
    assert carries(line, columns, 2, cells) is held


def test_carries_does_not_take_a_shown_the_rows_own_stock_shows_for_proof() -> None:
    columns = {"sku": 0, "stock": 1, "shown": 2, "status": 3}
    line = ["P-6", 8, 8, "OK"]
    assert carries(line, columns, 2, CELLS, shows="8") is False
    assert carries(line, columns, 2, CELLS, shows="10") is True
    row = _row(2, "P-6", 8, 8, display=DisplaySetting("minus", 2))
    assert own_shown(row, BASELINE) == "8"


def test_took_after_sort_pairs_writes_alike_with_as_many_rows() -> None:
    missed = {2: ("P-1", 8), 3: ("P-2", 8)}
    cells: dict[str, dict[int, object]] = {"shown": {2: 8, 3: 8}}
    baseline = {**BASELINE, "p-2": 8}
    two = [_row(6, "P-5", 8, 8), _row(7, "P-6", 8, 8)]
    assert took_after_sort(two, missed, cells, baseline) == {"P-5": 8, "P-6": 8}
    three = [*two, _row(5, "P-4", 8, 8)]
    assert took_after_sort(three, missed, cells, {**baseline, "p-4": 10}) == {}
