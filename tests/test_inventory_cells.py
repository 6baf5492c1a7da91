"""`parse_inventory` reads a row the same whatever the API left out or added around it.

The Sheets API leaves out a row's empty cells at its end, a tab may lack the optional columns
and staff keep columns of their own to the right. The parser pads or cuts each row to the
columns it reads (issue 8); these properties hold it to reading only the cells of its columns.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from bot.inventory import Row, item_key, parse_inventory

HEADER = ["SKU", "Stock", "Display", "Rakuten", "Amazon", "Set", "Amazon display", "Shown"]
HEADER += ["Status"]
COLUMNS = {name.lower().replace(" ", "_"): i for i, name in enumerate(HEADER)}
LEAN = {"sku": 0, "stock": 1, "display": 2, "shown": 7, "status": 8}  # optional ones left out

cells = st.one_of(
    st.just(""),
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=False),
    st.sampled_from(["A-1", " a-1 ", "\u200bB", "+2", "-", "50%", "=A1", "A-1*2", "ー３"]),
    st.text(max_size=6),
)
lines = st.lists(st.lists(cells, max_size=len(HEADER)), min_size=1, max_size=6)


def _facts(grid: list[list[Any]], columns: dict[str, int]) -> list[tuple[Any, ...]]:
    return [
        (
            *(
                r.index,
                r.sku,
                r.stock,
                r.display,
                r.items,
                r.rakuten_key,
                r.shown_cell,
                r.status_cell,
            ),
            *(r.problems, r.own_display, r.display_problems, r.components, r.set_broken),
            *(r.duplicate, r.clashes, r.sku_unread),
        )
        for r in parse_inventory(grid, columns)
    ]


@given(lines)
def test_a_short_row_reads_as_if_its_missing_cells_were_blank(rows: list[list[Any]]) -> None:
    padded = [row + [""] * (len(HEADER) - len(row)) for row in rows]
    assert _facts([HEADER, *rows], COLUMNS) == _facts([HEADER, *padded], COLUMNS)


@given(lines, st.lists(cells, min_size=1, max_size=3))
def test_staff_columns_to_the_right_change_nothing(rows: list[list[Any]], extra: list[Any]) -> None:
    padded = [row + [""] * (len(HEADER) - len(row)) for row in rows]
    wider = [row + extra for row in padded]
    # A row that was blank is one no longer: only compare rows that hold something.
    kept = [i for i, row in enumerate(padded, 1) if any(v not in ("", None) for v in row)]
    facts = [f for f in _facts([HEADER + ["Notes"] * len(extra), *wider], COLUMNS) if f[0] in kept]
    assert facts == _facts([HEADER, *padded], COLUMNS)


@given(lines)
def test_a_tab_without_the_optional_columns_reads_them_as_blank(rows: list[list[Any]]) -> None:
    blanked = [[v if i in LEAN.values() else "" for i, v in enumerate(row)] for row in rows]
    expected = _facts([HEADER, *blanked], COLUMNS)
    # A row holding something in the other columns only is still a row (with no SKU).
    kept = {f[0] for f in expected}
    assert [f for f in _facts([HEADER, *rows], LEAN) if f[0] in kept] == expected


@given(lines)
def test_only_a_rakuten_item_has_a_key_other_than_itself(rows: list[list[Any]]) -> None:
    for row in parse_inventory([HEADER, *rows], COLUMNS):
        for channel, item in row.items.items():
            expected = None if item is None else item_key(channel, item)
            assert row.key(channel) == expected


def test_row_fields_keep_the_order_parse_inventory_builds_them_in() -> None:
    """`parse_inventory` makes each `Row` by position (a fifth of its cost by name, issue 8):
    a field added or moved must be added or moved there too, and this list with it."""
    assert [f.name for f in fields(Row)] == [
        "index",
        "sku",
        "stock",
        "display",
        "typed_items",
        "rakuten_key",
        "shown_cell",
        "status_cell",
        "problems",
        "duplicate",
        "clashes",
        "sku_unread",
        "own_display",
        "display_problems",
        "components",
        "set_broken",
    ]


@given(lines, st.booleans())
@example([["", "", "", "", "", "", "", math.nan]], False)  # a NaN Shown cell (found by CI)
def test_each_field_comes_from_its_own_cell(rows: list[list[Any]], formulas: bool) -> None:
    """Built by position, a field given another's value would show here: every field is
    what its cell alone says (the named checks of the properties above, all at once)."""
    for row in parse_inventory([HEADER, *rows], COLUMNS, formulas=formulas):
        line = [*rows[row.index - 1], *[""] * len(HEADER)]
        shown, status = line[COLUMNS["shown"]], line[COLUMNS["status"]]
        # `is` for the cell itself: a NaN (read as a float cell) is not equal to itself.
        assert row.shown_cell is (None if shown == "" else shown)
        assert row.status_cell is (None if status == "" else status)
        assert isinstance(row.duplicate, bool) and isinstance(row.sku_unread, bool)
        assert isinstance(row.clashes, frozenset) and isinstance(row.set_broken, bool)
        assert isinstance(row.problems, tuple) and isinstance(row.display_problems, tuple)
        assert row.components is None or isinstance(row.components, tuple)
        assert row.rakuten_key is None or row.rakuten_key == item_key(
            "rakuten", row.item("rakuten") or ""
        )
