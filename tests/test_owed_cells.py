"""Cells a failed repair still owes (`bot.owed`): kept in the state file, put back next cycle.

Whole cycles of the real bot against the stand-ins, Rakuten and Yahoo, eight products of
Stock 10 (`tests.test_review_attacks_19`). In the commit's instant staff insert four columns
left of Stock, so P-1's Stock 8 lands in an inserted column (C3) and its Shown 8 in its Rakuten
id (I3), P-3's Shown 8 in its Rakuten id (I5) and P-2's Status text in its Yahoo id (J4); every
batchUpdate answers 503 from then on, the repair too. The kill -9 after the put-back landed is
`Ledger.complete` raising for it (the sheet holds the write, the state file does not yet), as
in `tests.test_review_attacks_12`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.errors import StockbotError
from bot.ledger import Ledger
from tests.staff import at_commit, dimension, meta_value, put, rakuten_shop, row_number, stock
from tests.test_review_attacks_4 import _a_row_deleted_in_the_commit_and_the_repair_refused
from tests.test_review_attacks_19 import MARKETS, MOVES, _applied, _open, _stores_off, _swap
from tests.world import World, world

PUT_BACK = "were put back now"


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[World]:
    """Eight products of Stock 10 on Rakuten and Yahoo, synced once."""
    with world(tmp_path, MARKETS) as w:
        _open(w)
        yield w


def _grid(w: World) -> list[list[Any]]:
    return w.sheets.get_values(w.sheet_id, "Inventory")


def _cell(w: World, a1: str) -> Any:
    column, row = ord(a1[0]) - ord("A"), int(a1[1:]) - 1
    grid = _grid(w)
    line = grid[row] if row < len(grid) else []
    return line[column] if column < len(line) else ""


def _staff_cells(grid: list[list[Any]], head: list[Any]) -> list[list[Any]]:
    """Every cell but those of the Stock, Shown and Status columns."""
    bot = {head.index(h) for h in ("Stock", "Shown", "Status")}
    padded = [[*g, *[""] * (len(head) - len(g))] for g in grid]
    return [[c for i, c in enumerate(g) if i not in bot] for g in padded]


def _owed(w: World) -> Any:
    text = meta_value(Path(w.env["STOCKBOT_STATE_PATH"]), "owed_cells")
    return json.loads(text) if text else []


def _put_back_rows(w: World) -> list[str]:
    return [str(r["Detail"]) for r in w.log("error") if PUT_BACK in str(r["Detail"])]


def _failed_repair(w: World) -> list[list[Any]]:
    """The commit lands on moved columns and its repair fails: the grid staff left."""
    put(w, "P-2", "Display", "abc")
    put(w, "P-3", "Display", "-2")
    w.markets["rakuten"].place_order([("P-1", 2)])
    moved: list[list[Any]] = []

    def staff() -> None:
        MOVES["shown_on_rakuten"](w)
        moved.extend(_grid(w))
        w.sheets.fail(503, times=1_000, match=":batchUpdate")

    at_commit(w, staff)
    with pytest.raises(StockbotError):
        w.sync()
    assert (_cell(w, "C3"), _cell(w, "I3"), _cell(w, "I5")) == (8, 8, 8)
    assert str(_cell(w, "J4")).startswith('Display "abc"')
    assert len(_owed(w)) == 4
    return moved


def _network_back(w: World) -> None:
    with w.sheets.lock:
        w.sheets.faults.clear()


def test_a_put_back_that_fails_again_stays_owed_until_the_network_is_back(shop: World) -> None:
    w = shop
    moved = _failed_repair(w)
    with pytest.raises(StockbotError):
        w.sync()  # still 503: nothing put back, still owed
    assert (_cell(w, "C3"), _cell(w, "I5")) == (8, 8)
    assert len(_owed(w)) == 4
    _network_back(w)
    assert w.sync().ok
    assert w.sync().ok
    assert _staff_cells(_grid(w), moved[0]) == _staff_cells(moved, moved[0])
    assert _put_back_rows(w) == [
        "rows or columns were moved in the very instant the bot wrote to the sheet and its "
        "repair could not be sent then; the cells it wrote in the wrong place were put back "
        "now (C3, I3, J4, I5)"
    ]
    assert _owed(w) == []
    assert _applied(w, "P-1") == [-2]
    assert _stores_off(w) == {}


def test_an_owed_cell_staff_typed_over_is_left_alone(shop: World) -> None:
    w = shop
    moved = _failed_repair(w)
    _network_back(w)
    put(w, "P-2", "Yahoo", "p2-yahoo")  # over the Status text the bot left there
    w.sync()
    w.sync()
    assert _cell(w, "J4") == "p2-yahoo"
    assert (_cell(w, "C3"), _cell(w, "I3"), _cell(w, "I5")) == ("", "", "")
    assert [p.rsplit(" ", 3)[1:] for p in _put_back_rows(w)] == [["(C3,", "I3,", "I5)"]]
    assert _owed(w) == []
    moved[3][9] = "p2-yahoo"
    assert _staff_cells(_grid(w), moved[0]) == _staff_cells(moved, moved[0])


def test_an_owed_cell_in_a_row_deleted_since_owes_nothing(shop: World) -> None:
    w = shop
    moved = _failed_repair(w)
    _network_back(w)
    dimension(w, "deleteDimension", "ROWS", row_number(w, "P-3"))
    del moved[4]
    assert w.sync().ok
    assert w.sync().ok
    assert _staff_cells(_grid(w), moved[0]) == _staff_cells(moved, moved[0])
    assert [p.rsplit(" ", 3)[1:] for p in _put_back_rows(w)] == [["(C3,", "I3,", "J4)"]]
    assert _owed(w) == []


class _Stopped(Exception):
    """kill -9 after the put-back landed, before the state file completed it."""


def stopped_after_the_put_back(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """One cycle whose put-back lands and which stops before the state file completes it."""
    real = Ledger.complete

    def stop(self: Ledger, commit_id: str) -> None:
        pending = self.pending()
        if pending is not None and pending.id == commit_id and pending.kind == "owed":
            raise _Stopped
        real(self, commit_id)

    with monkeypatch.context() as m:
        m.setattr(Ledger, "complete", stop)
        with pytest.raises(_Stopped):
            w.sync()


def test_a_kill_after_the_put_back_landed_puts_nothing_back_twice(
    shop: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = shop
    moved = _failed_repair(w)
    _network_back(w)
    stopped_after_the_put_back(w, monkeypatch)
    assert _staff_cells(_grid(w), moved[0]) == _staff_cells(moved, moved[0])
    assert len(_owed(w)) == 4  # the state file did not see the put-back land
    # Staff then type the very value the bot had left there, into the column they inserted.
    w.sheets.set_value(w.sheet_id, "Inventory", "C3", 8, raw=False)
    assert w.sync().ok
    assert w.sync().ok
    assert _cell(w, "C3") == 8
    assert len(_put_back_rows(w)) == 1
    assert _owed(w) == []
    assert _applied(w, "P-1") == [-2]
    assert _stores_off(w) == {}


def test_a_blank_row_owed_is_found_below_its_product_after_rows_were_inserted(
    tmp_path: Path,
) -> None:
    """TEA-002's row is deleted in the commit's instant, so CUP-001's cells land in the blank
    row below it (`tests.test_review_attacks_4`); staff then insert two rows at the top. The
    blank row is found again one row below CUP-001, where it is now, and cleared."""
    for w in rakuten_shop(tmp_path):
        w.sync()
        w.markets["rakuten"].place_order([("cup-001:white", 2)])
        _a_row_deleted_in_the_commit_and_the_repair_refused(w, 2)
        assert [e[:2] for e in _owed(w)] == [["CUP-001", 1]] * 2  # Stock, Shown
        dimension(w, "insertDimension", "ROWS", 1)
        dimension(w, "insertDimension", "ROWS", 1)
        assert w.sync().ok
        assert w.sync().ok
        assert [r for r in w.inventory() if not r["SKU"] and any(r.values())] == []
        assert stock(w) == {"TEA-001": 30, "TEA-003": 30, "CUP-001": 10}
        assert [p.rsplit(" ", 3)[1:] for p in _put_back_rows(w)] == [["now", "(C7,", "I7)"]]
        assert _owed(w) == []


def test_cells_still_owed_outlast_a_later_repair_that_lands(shop: World) -> None:
    """The put-back fails at the start of the next cycle (three 503s), whose own commit then
    lands on rows swapped in its instant and is repaired at once: that repair owes nothing
    elsewhere, and the cells the first one owed stay owed, then are put back, following P-1's
    row to where the swap took it."""
    w = shop
    moved = _failed_repair(w)
    _network_back(w)
    w.sheets.fail(503, times=3, match=":batchUpdate")
    at_commit(w, lambda: _swap(w, "P-1", "P-5"))
    w.sync()
    assert len(_owed(w)) == 4
    assert _put_back_rows(w) == []
    assert w.sync().ok
    assert w.sync().ok
    assert len(_put_back_rows(w)) == 1
    assert _owed(w) == []
    moved[2], moved[6] = moved[6], moved[2]  # the rows of P-1 and P-5, swapped
    assert _staff_cells(_grid(w), moved[0]) == _staff_cells(moved, moved[0])
    assert _applied(w, "P-1") == [-2]
    assert _stores_off(w) == {}


def test_an_owed_cell_whose_column_header_was_renamed_is_left_alone(shop: World) -> None:
    """P-1's Stock 8 in C3 is named by the header left of it ("Name", one to the right); staff
    rename that header before the retry: the cell is not looked for, the others are put back."""
    w = shop
    _failed_repair(w)
    _network_back(w)
    w.sheets.set_value(w.sheet_id, "Inventory", "B1", "Product", raw=True)
    w.sync()
    assert (_cell(w, "C3"), _cell(w, "I3"), _cell(w, "I5")) == (8, "", "")
    assert [p.rsplit(" ", 3)[1:] for p in _put_back_rows(w)] == [["(I3,", "J4,", "I5)"]]
    assert _owed(w) == []
