"""Review attacks 15: staff and operator mess inside one long `stockbot run`, against the
settled push quantities the ledger keeps between cycles, `plan`'s indexes of only the items a
cycle's lines name, and `PushPlan.typed` (item -> SKU only for items typed in a marketplace
column).

1. A push settles, then staff sort the rows, insert a row or a column, and edit Stock: the
   next cycles push the right quantity to every store.
2. An item typed in a marketplace column is renamed between cycles of one run (and back
   again): the store of the new item gets pushed, nothing stale is skipped.
3. An operator restores a state-file backup between two cycles of one run after pushes
   changed: the bot stops before planning from it, never leaves a store wrong silently.

Held: 1, 2, 3. In all three restore stories the bot stopped at the next cycle with
`StateMismatchError` ("the state file ... is older than the sheet"): every cycle that pushed
also committed to the sheet, so the restored file never saw the sheet's last commit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.handover import StateMismatchError
from tests.staff import backup, dimension, next_cycle, put, sort_rows
from tests.world import World, world

NAMES = ("rakuten", "yahoo", "amazon", "shopify")
SHOP = [
    ["TEA-001", "Sencha", 4, "", "", "", "", "", "", ""],
    ["CUP-001", "Cup", 5, "", "", "", "", "", "", ""],
    ["POT-001", "Pot", 6, "", "", "", "", "", "", ""],
]
SKUS = ("TEA-001", "CUP-001", "POT-001")


def _expect(w: World, want: dict[str, int]) -> None:
    got = {name: {sku: w.markets[name].quantity(sku) for sku in want} for name in w.markets}
    assert got == dict.fromkeys(w.markets, want)


def _all_stores(w: World, items: tuple[str, ...] = SKUS) -> None:
    for name in NAMES:
        for item in items:
            w.markets[name].add_item(item, 0)


# -- 1. moves, sorts and inserted columns after a settled push -----------------------------


def test_rows_sorted_and_columns_inserted_between_cycles_keep_every_store_right(
    tmp_path: Path,
) -> None:
    with world(tmp_path, NAMES) as w:
        w.create_sheet(SHOP)
        _all_stores(w)
        with w.bot() as cycle:
            assert cycle.run().ok
            _expect(w, {"TEA-001": 4, "CUP-001": 5, "POT-001": 6})
            next_cycle(w)
            assert cycle.run().ok  # quiet: the kept answer is warm
            # Staff sort by name descending, then change two Stocks.
            sort_rows(w, lambda r: str(r["Name"]))  # Cup, Pot, Sencha
            put(w, "TEA-001", "Stock", 9)
            put(w, "CUP-001", "Stock", 1)
            next_cycle(w)
            assert cycle.run().ok
            _expect(w, {"TEA-001": 9, "CUP-001": 1, "POT-001": 6})
            # Staff insert an empty row at the top and a column before Stock.
            dimension(w, "insertDimension", "ROWS", 1)
            dimension(w, "insertDimension", "COLUMNS", 2)
            put(w, "POT-001", "Stock", 2)
            put(w, "TEA-001", "Stock", 4)  # back to a quantity a store showed before
            next_cycle(w)
            assert cycle.run().ok
            _expect(w, {"TEA-001": 4, "CUP-001": 1, "POT-001": 2})
            # Sort back by SKU, and put the moved values back where they started.
            sort_rows(w, lambda r: str(r["SKU"]))
            put(w, "CUP-001", "Stock", 5)
            put(w, "POT-001", "Stock", 6)
            next_cycle(w)
            assert cycle.run().ok
            _expect(w, {"TEA-001": 4, "CUP-001": 5, "POT-001": 6})
            next_cycle(w)
            assert cycle.run().ok
            _expect(w, {"TEA-001": 4, "CUP-001": 5, "POT-001": 6})


def test_a_sort_between_an_order_and_its_cycle_applies_the_order_to_the_right_row(
    tmp_path: Path,
) -> None:
    with world(tmp_path, NAMES) as w:
        w.create_sheet(SHOP)
        _all_stores(w)
        with w.bot() as cycle:
            assert cycle.run().ok
            w.markets["amazon"].place_order([("CUP-001", 2)])
            sort_rows(w, lambda r: -int(r["Stock"]))  # POT 6, CUP 5, TEA 4
            dimension(w, "insertDimension", "COLUMNS", 1)
            next_cycle(w)
            assert cycle.run().ok
            stock = {str(r["SKU"]): r["Stock"] for r in w.inventory() if r["SKU"]}
            assert stock == {"TEA-001": 4, "CUP-001": 3, "POT-001": 6}
            _expect(w, {"TEA-001": 4, "CUP-001": 3, "POT-001": 6})
            put(w, "CUP-001", "Stock", 5)  # staff recount
            next_cycle(w)
            assert cycle.run().ok
            _expect(w, {"TEA-001": 4, "CUP-001": 5, "POT-001": 6})


# -- 2. an item typed in a marketplace column, renamed mid-run ------------------------------


@pytest.mark.parametrize("column", ["Rakuten", "Yahoo", "Amazon", "Shopify"])
def test_a_typed_item_renamed_and_renamed_back_is_pushed_each_time(
    tmp_path: Path, column: str
) -> None:
    name = column.lower()
    with world(tmp_path, (name,)) as w:
        w.create_sheet(SHOP)
        store = w.markets[name]
        for item in ("CUP-001", "POT-001", "X-1", "X-2"):
            store.add_item(item, 0)
        put(w, "TEA-001", column, "X-1")
        with w.bot() as cycle:
            assert cycle.run().ok
            assert (store.quantity("X-1"), store.quantity("X-2")) == (4, 0)
            next_cycle(w)
            assert cycle.run().ok
            put(w, "TEA-001", column, "X-2")
            next_cycle(w)
            assert cycle.run().ok
            assert store.quantity("X-2") == 4
            put(w, "TEA-001", "Stock", 10)
            next_cycle(w)
            assert cycle.run().ok
            assert store.quantity("X-2") == 10
            put(w, "TEA-001", column, "X-1")  # renamed back: X-1 still shows 4
            next_cycle(w)
            assert cycle.run().ok
            assert store.quantity("X-1") == 10
            put(w, "TEA-001", "Stock", 4)
            put(w, "TEA-001", column, "X-2")  # X-2 shows 10, the kept answer says 10
            next_cycle(w)
            assert cycle.run().ok
            assert store.quantity("X-2") == 4
            # An order on the typed item after all the renames lands on TEA-001.
            store.place_order([("X-2", 1)])
            next_cycle(w)
            assert cycle.run().ok
            assert w.row("TEA-001")["Stock"] == 3
            assert store.quantity("X-2") == 3


def test_a_typed_item_moved_to_another_row_is_pushed_that_rows_stock(tmp_path: Path) -> None:
    """Staff move the Amazon item AMZ-1 from TEA-001's row to CUP-001's (a mistake fixed)."""
    with world(tmp_path, ("amazon",)) as w:
        w.create_sheet(SHOP)
        store = w.markets["amazon"]
        for item in ("AMZ-1", "CUP-001", "POT-001", "TEA-001"):
            store.add_item(item, 0)
        put(w, "TEA-001", "Amazon", "AMZ-1")
        with w.bot() as cycle:
            assert cycle.run().ok
            assert store.quantity("AMZ-1") == 4
            next_cycle(w)
            assert cycle.run().ok
            put(w, "TEA-001", "Amazon", "")
            put(w, "CUP-001", "Amazon", "AMZ-1")
            next_cycle(w)
            assert cycle.run().ok
            assert store.quantity("AMZ-1") == 5
            assert store.quantity("TEA-001") == 4
            store.place_order([("AMZ-1", 2)])
            next_cycle(w)
            assert cycle.run().ok
            assert (w.row("TEA-001")["Stock"], w.row("CUP-001")["Stock"]) == (4, 3)
            assert store.quantity("AMZ-1") == 3


def test_a_sku_renamed_under_a_typed_item_keeps_its_store_right(tmp_path: Path) -> None:
    with world(tmp_path, ("amazon",)) as w:
        w.create_sheet(SHOP)
        store = w.markets["amazon"]
        for item in ("AMZ-1", "CUP-001", "POT-001"):
            store.add_item(item, 0)
        put(w, "TEA-001", "Amazon", "AMZ-1")
        with w.bot() as cycle:
            assert cycle.run().ok
            assert store.quantity("AMZ-1") == 4
            put(w, "TEA-001", "SKU", "TEA-100")
            put(w, "TEA-100", "Stock", 7)
            next_cycle(w)
            assert cycle.run().ok
            assert store.quantity("AMZ-1") == 7
            store.place_order([("AMZ-1", 1)])
            next_cycle(w)
            assert cycle.run().ok
            assert w.row("TEA-100")["Stock"] == 6
            assert store.quantity("AMZ-1") == 6


# -- 3. a state-file backup restored between two cycles of one run --------------------------


def _refuses_the_restored_file(cycle: Any) -> None:
    """The restored file is older than the sheet (it misses the commits the cycles since made):
    the bot stops before it plans from it (README Deployment, SPEC.md 4), whatever it kept in
    memory for the stores."""
    with pytest.raises(StateMismatchError):
        cycle.run()


def test_a_backup_restored_after_a_stock_edit_never_leaves_a_store_wrong(tmp_path: Path) -> None:
    """Stock 4 pushed, backup taken; staff restock to 10 (pushed); the operator restores the
    backup (it says the stores show 4); staff take Stock back to 4: the bot must stop rather
    than trust the file (or the memory it kept of the stores)."""
    with world(tmp_path, NAMES) as w:
        w.create_sheet(SHOP)
        _all_stores(w)
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        saved = tmp_path / "saved.sqlite3"
        with w.bot() as cycle:
            assert cycle.run().ok
            next_cycle(w)
            assert cycle.run().ok
            backup(state, saved)
            for sku in SKUS:
                put(w, sku, "Stock", 10)
            next_cycle(w)
            assert cycle.run().ok
            _expect(w, dict.fromkeys(SKUS, 10))
            next_cycle(w)
            assert cycle.run().ok  # the kept answer holds 10
            backup(saved, state)
            put(w, "TEA-001", "Stock", 4)
            put(w, "CUP-001", "Stock", 5)
            put(w, "POT-001", "Stock", 6)
            next_cycle(w)
            _refuses_the_restored_file(cycle)


def test_a_backup_restored_after_an_order_never_leaves_a_store_wrong(tmp_path: Path) -> None:
    with world(tmp_path, NAMES) as w:
        w.create_sheet(SHOP)
        _all_stores(w)
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        saved = tmp_path / "saved.sqlite3"
        with w.bot() as cycle:
            assert cycle.run().ok
            next_cycle(w)
            assert cycle.run().ok
            backup(state, saved)
            w.markets["rakuten"].place_order([("TEA-001", 3)])
            next_cycle(w)
            assert cycle.run().ok
            _expect(w, {"TEA-001": 1, "CUP-001": 5, "POT-001": 6})
            backup(saved, state)
            put(w, "TEA-001", "Stock", 4)
            next_cycle(w)
            _refuses_the_restored_file(cycle)


def test_a_backup_restored_with_a_renamed_typed_item(tmp_path: Path) -> None:
    """The backup knew AMZ-1 at 4; AMZ-1 then went to 10, staff renamed the column to AMZ-2,
    the backup came back, and staff renamed to AMZ-1 with Stock 4 again."""
    with world(tmp_path, ("amazon",)) as w:
        w.create_sheet(SHOP)
        store = w.markets["amazon"]
        for item in ("AMZ-1", "AMZ-2", "CUP-001", "POT-001"):
            store.add_item(item, 0)
        put(w, "TEA-001", "Amazon", "AMZ-1")
        state = Path(w.env["STOCKBOT_STATE_PATH"])
        saved = tmp_path / "saved.sqlite3"
        with w.bot() as cycle:
            assert cycle.run().ok
            backup(state, saved)
            put(w, "TEA-001", "Stock", 10)
            next_cycle(w)
            assert cycle.run().ok
            assert store.quantity("AMZ-1") == 10
            put(w, "TEA-001", "Amazon", "AMZ-2")
            next_cycle(w)
            assert cycle.run().ok
            assert store.quantity("AMZ-2") == 10
            backup(saved, state)
            put(w, "TEA-001", "Amazon", "AMZ-1")
            put(w, "TEA-001", "Stock", 4)
            next_cycle(w)
            _refuses_the_restored_file(cycle)
