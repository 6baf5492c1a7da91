"""Bounded state and bounded Sheets use for years of cycles (issue 8, SPEC.md section 7).

Whole cycles only: the real gspread client and the real adapters talk to the stand-ins.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.staff import dimension, stock
from tests.world import world


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
