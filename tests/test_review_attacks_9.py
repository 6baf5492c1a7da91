"""Review attacks 9: guards that held (clock jump, typed Rakuten ids, narrow re-read)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.staff import SHOP, at_read, stock
from tests.world import World, world


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("rakuten", "yahoo")) as w:
        w.create_sheet(SHOP)
        for market in w.markets.values():
            for item in ("TEA-001", "CUP-001", "POT-001"):
                market.add_item(item, 0)
        yield w


def _settle(w: World) -> None:
    assert w.sync().ok
    assert stock(w) == {"TEA-001": 10, "CUP-001": 7, "POT-001": 5}


# -- late orders still count / exactly once: the VM clock years fast for one cycle ------------
@pytest.mark.parametrize("fast_cycles", [1, 2])
def test_clock_three_years_fast_for_one_cycle_does_not_swallow_a_real_new_order(
    shop: World, fast_cycles: int
) -> None:
    w = shop
    _settle(w)
    real = w.time.offset
    # The marketplaces keep true time; only the bot's VM clock jumps.
    for market in w.markets.values():
        market.now = lambda: datetime.now(UTC) + real  # type: ignore[attr-defined]
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    w.time.offset = real + timedelta(days=3 * 365)
    for _ in range(fast_cycles):
        w.sync()
    w.time.offset = real + timedelta(minutes=10)
    w.sync()
    w.sync()
    assert stock(w)["TEA-001"] == 8
    assert [(r["SKU"], r["Change"]) for r in w.log("order")] == [("TEA-001", -2)]


# -- rakuten item id typed with blanks around it and in other case ----------------------------
def test_rakuten_item_typed_with_blanks_and_upper_case_matches_its_orders(tmp_path: Path) -> None:
    rows = [["tea-x", "Sencha", 10, "", "  TEA-001  ", "", "", "", "", ""]]
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(rows)
        w.markets["rakuten"].add_item("TEA-001", 0)
        assert w.sync().ok
        assert w.markets["rakuten"].quantity("TEA-001") == 10
        w.markets["rakuten"].place_order([("TEA-001", 3)])
        w.sync()
        w.sync()
        assert stock(w) == {"tea-x": 7}
        assert w.markets["rakuten"].quantity("TEA-001") == 7


# -- rows may move: a SKU renamed at the narrow re-read in a written row ------------------------
def test_sku_renamed_at_reread_in_a_written_row_is_not_written(shop: World) -> None:
    w = shop
    _settle(w)
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    at_read(w, 2, lambda: w.sheets.set_value(w.sheet_id, "Inventory", "A2", "TEA-009", raw=True))
    w.sync()
    assert w.row("TEA-009")["Stock"] == 10
    assert w.log("order") == []


# -- rows may move: a copy of a written row appended at the bottom at the re-read --------------
def test_written_row_copied_to_bottom_at_reread(shop: World) -> None:
    w = shop
    _settle(w)
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    at_read(
        w,
        2,
        lambda: w.sheets.set_values(w.sheet_id, "Inventory", "A5:C5", [["TEA-001", "Sencha", 10]]),
    )
    w.sync()
    w.sync()
    w.sync()
    # two rows now claim TEA-001: its order waits, nothing is pushed from either row
    teas = [r["Stock"] for r in w.inventory() if r["SKU"] == "TEA-001"]
    assert teas in ([10, 10], [8, 10], [10, 8])
    assert w.markets["yahoo"].quantity("TEA-001") in (10, 8)
