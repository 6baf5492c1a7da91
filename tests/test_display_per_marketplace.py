"""Per-marketplace display settings (SPEC.md section 2): `Amazon display` and the others."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.inventory import parse_inventory
from bot.rules import DisplaySetting
from tests.world import World, world

COLUMNS = {"sku": 0, "stock": 1, "display": 2, "shown": 3, "status": 4, "amazon_display": 5}


def _row(display: object, amazon: object):
    grid = [
        ["SKU", "Stock", "Display", "Shown", "Status", "Amazon display"],
        ["A", 30, display, "", "", amazon],
    ]
    return parse_inventory(grid, COLUMNS)[0]


def test_own_setting_replaces_display_for_that_marketplace_only() -> None:
    row = _row("-10", "50%")
    assert row.setting("amazon") == DisplaySetting("percent", 50)
    assert row.setting("rakuten") == DisplaySetting("minus", 10)


def test_blank_own_setting_falls_back_to_display() -> None:
    row = _row("+5", "  ")
    assert row.setting("amazon") == DisplaySetting("plus", 5)


def test_broken_own_setting_stops_only_that_marketplace() -> None:
    row = _row("", "abc")
    assert row.setting("amazon") is None
    assert row.setting("rakuten") == DisplaySetting("real")
    assert row.pushable and row.problems == ()
    assert "Amazon display" in row.display_problems[0]
    assert "nothing new is pushed to amazon" in row.display_problems[0]


def test_broken_display_stops_only_marketplaces_without_their_own() -> None:
    row = _row("abc", "3")
    assert row.setting("amazon") == DisplaySetting("fixed", 3)
    assert row.setting("rakuten") is None


def test_japanese_header_aliases_are_read() -> None:
    from bot.sheet.layout import map_columns

    header = ["商品コード", "在庫数", "表示在庫設定", "表示在庫", "状態", "楽天表示在庫設定"]
    header += ["Yahoo表示在庫設定", "Amazon表示在庫設定", "Shopify表示在庫設定", "セット構成"]
    columns = map_columns("inventory", "在庫", header)
    assert [columns[k] for k in ("rakuten_display", "yahoo_display")] == [5, 6]
    assert [columns[k] for k in ("amazon_display", "shopify_display", "set")] == [7, 8, 9]


ROWS = [
    # SKU, Name, Stock, Display, Rakuten, Yahoo, Amazon, Shopify, Shown, Status; K Amazon display
    ["TEA-001", "Sencha", 30, "-10", "", "", "", "", "", ""],
    ["CUP-001", "Cup", 12, "", "", "", "", "", "", ""],
]


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("rakuten", "amazon")) as w:
        w.create_sheet(ROWS)
        w.sheets.set_value(w.sheet_id, "Inventory", "K1", "Amazon display", raw=True)
        w.sheets.set_value(w.sheet_id, "Inventory", "K2", "50%", raw=True)
        for market in w.markets.values():
            for item in ("TEA-001", "CUP-001"):
                market.add_item(item, 0)
        yield w


def test_amazon_gets_its_own_share_and_shown_keeps_display(shop: World) -> None:
    w = shop
    assert w.sync().ok
    assert w.markets["rakuten"].quantity("TEA-001") == 20
    assert w.markets["amazon"].quantity("TEA-001") == 15
    assert w.row("TEA-001")["Shown"] == 20
    pushes = {r["Channel"]: r["Detail"] for r in w.log("push")}
    assert "TEA-001=15" in pushes["amazon"] and "TEA-001=20" in pushes["rakuten"]


def test_a_broken_amazon_setting_stops_amazon_only_and_says_so(shop: World) -> None:
    w = shop
    w.sync()
    w.set_cell("TEA-001", "K", "half")
    w.set_stock("TEA-001", 40)
    assert w.sync().ok
    assert w.markets["rakuten"].quantity("TEA-001") == 30
    assert w.markets["amazon"].quantity("TEA-001") == 15
    status = w.row("TEA-001")["Status"]
    assert "Amazon display" in status and "amazon" in status
    w.set_cell("TEA-001", "K", "")
    assert w.sync().ok
    assert w.markets["amazon"].quantity("TEA-001") == 30
    assert w.row("TEA-001")["Status"] == "OK"


def test_a_broken_display_still_pushes_where_the_marketplace_has_its_own(shop: World) -> None:
    w = shop
    w.sync()
    w.set_cell("TEA-001", "D", "lots")
    w.set_stock("TEA-001", 50)
    assert w.sync().ok
    assert w.markets["amazon"].quantity("TEA-001") == 25
    assert w.markets["rakuten"].quantity("TEA-001") == 20  # unchanged: Display is broken
    assert "Display" in w.row("TEA-001")["Status"]
