"""Whole cycles against the Amazon stand-in: what a real shop's first day on Amazon meets.

The real gspread client and the real Amazon adapter talk to the stand-ins over loopback
(tests/world.py); only time is fake.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.standins.amazon import AmazonStandIn
from tests.world import World, world

ROWS = [
    # SKU, Name, Stock, Display, Rakuten, Yahoo, Amazon, Shopify, Shown, Status
    ["TEA-001", "Sencha", 30, "", "", "", "TEA-001-AMZ", "", "", ""],
    ["TEA-002", "Gyokuro", 20, "", "", "", "TEA-002-AMZ", "", "", ""],
    ["CUP-001", "Cup", 12, "", "", "", "CUP-001-AMZ", "", "", ""],
]


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("amazon",)) as w:
        w.create_sheet(ROWS)
        yield w


def amazon(w: World) -> AmazonStandIn:
    store = w.markets["amazon"]
    assert isinstance(store, AmazonStandIn)
    return store


def test_a_restricted_listing_is_reported_and_the_other_skus_are_pushed(w: World) -> None:
    store = amazon(w)
    for sku in ("TEA-001-AMZ", "TEA-002-AMZ", "CUP-001-AMZ"):
        store.add_item(sku, 0)
    store.restrict_listing("TEA-002-AMZ")  # brand-gated: 403 for this SKU, the token is good
    report = w.sync()
    assert report.failed_channels == {}
    assert store.quantity("TEA-001-AMZ") == 30 and store.quantity("CUP-001-AMZ") == 12
    assert store.quantity("TEA-002-AMZ") == 0
    errors = w.log("error")
    assert [(e["Channel"], e["SKU"]) for e in errors] == [("amazon", "TEA-002")]
    assert "TEA-002-AMZ" in errors[0]["Detail"] and "Seller Central" in errors[0]["Detail"]
    status = w.row("TEA-002")["Status"]
    assert status.startswith("amazon: ") and "403 Unauthorized" in status
    assert [w.row(s)["Status"] for s in ("TEA-001", "CUP-001")] == ["OK", "OK"]

    store.lift_restriction("TEA-002-AMZ")  # staff sorted it out in Seller Central
    w.sync()
    assert store.quantity("TEA-002-AMZ") == 20
    assert w.row("TEA-002")["Status"] == "OK"


def test_a_cycle_keeps_the_sellers_handling_time_and_restock_date(w: World) -> None:
    store = amazon(w)
    store.add_item("TEA-001-AMZ", 0, lead_time_to_ship_max_days=4, restock_date="2026-12-24")
    store.add_item("TEA-002-AMZ", 0, lead_time_to_ship_max_days=10)
    store.add_item("CUP-001-AMZ", 0)
    w.sync()
    w.set_stock("TEA-001", 25)
    w.sync()
    assert store.availability("TEA-001-AMZ") == [
        {
            "fulfillment_channel_code": "DEFAULT",
            "quantity": 25,
            "lead_time_to_ship_max_days": 4,
            "restock_date": "2026-12-24",
        }
    ]
    assert store.availability("TEA-002-AMZ") == [
        {"fulfillment_channel_code": "DEFAULT", "quantity": 20, "lead_time_to_ship_max_days": 10}
    ]
