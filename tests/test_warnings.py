"""Values applied as they are but warned about (issue 10, item 5): a huge Stock jump, a cap."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.apply import Event
from bot.inventory import Row
from bot.rules import DisplaySetting
from bot.warnings import Jump, capped, is_jump, standing_jumps
from tests.world import World, world

ROWS = [
    ["TEA-001", "Sencha", 48, "", "", "", "", "", "", ""],
    ["TEA-002", "Gyokuro", 30, "", "", "", "", "", "", ""],
]


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(ROWS)
        for item in ("TEA-001", "TEA-002"):
            w.markets["rakuten"].add_item(item, 0)
        w.sync()  # the clean start and the first push
        yield w


def test_a_huge_stock_jump_is_applied_and_pushed_but_staff_are_asked_to_check_it(
    w: World,
) -> None:
    w.set_stock("TEA-001", 99_999_999)
    w.sync()
    assert w.row("TEA-001")["Stock"] == 99_999_999  # staff are the authority on Stock
    (manual,) = w.log("manual")
    assert manual["After"] == 99_999_999
    assert "check that it is not a typo" in manual["Detail"]
    status = str(w.row("TEA-001")["Status"])
    assert "Stock jumped from 48 to 99,999,999: check that it is not a typo" in status
    # Rakuten takes 99,999 at most: pushed as that, and the Status says so too.
    assert w.markets["rakuten"].quantity("TEA-001") == 99_999
    assert "rakuten takes at most 99,999" in status
    assert w.row("TEA-002")["Status"] == "OK"


def test_the_jump_warning_stays_until_stock_is_edited_again(w: World) -> None:
    w.set_stock("TEA-001", 50_000)
    w.sync()
    w.sync()
    assert "Stock jumped from 48 to 50,000" in str(w.row("TEA-001")["Status"])
    w.set_stock("TEA-001", 50)  # the typo put right
    w.sync()
    assert w.row("TEA-001")["Status"] == "OK"
    assert "typo" not in w.log("manual")[-1]["Detail"]


def test_the_jump_warning_goes_after_a_day(w: World) -> None:
    w.set_stock("TEA-001", 50_000)
    w.sync()
    w.time.offset += timedelta(hours=23)
    w.sync()
    assert "Stock jumped" in str(w.row("TEA-001")["Status"])
    w.time.offset += timedelta(hours=1)
    w.sync()
    assert w.row("TEA-001")["Status"] == "OK"
    assert w.row("TEA-001")["Stock"] == 50_000


def test_an_ordinary_delivery_is_not_warned_about(w: World) -> None:
    w.set_stock("TEA-001", 448)  # a big delivery, or one zero too many: too small to tell
    w.set_stock("TEA-002", 300)  # ten times, but +270
    w.sync()
    assert [r["Status"] for r in w.inventory()] == ["OK", "OK"]
    assert all("typo" not in r["Detail"] for r in w.log("manual"))


def test_a_display_above_the_marketplace_maximum_is_pushed_capped_and_said(w: World) -> None:
    w.set_cell("TEA-002", "D", "+99990")
    w.sync()
    assert w.markets["rakuten"].quantity("TEA-002") == 99_999  # not blocked
    assert w.row("TEA-002")["Shown"] == 100_020
    status = str(w.row("TEA-002")["Status"])
    assert status == "rakuten takes at most 99,999: 99,999 is shown there, not 100,020"
    w.set_cell("TEA-002", "D", "+10")
    w.sync()
    assert w.row("TEA-002")["Status"] == "OK"
    assert w.markets["rakuten"].quantity("TEA-002") == 40


# -- the pure part ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("before", "after", "jump"),
    [
        (48, 99_999_999, True),
        (48, 4_800, True),  # two zeros too many
        (0, 1_001, True),
        (-5, 1_000, True),  # more than +1,000 from an oversold -5
        (0, 1_000, False),  # +1,000 exactly
        (48, 480, False),  # ten times, but only +432
        (200, 2_001, True),
        (200, 2_000, False),  # ten times exactly
        (5_000, 40_000, False),  # +35,000 but eight times
        (99_999_999, 48, False),  # decreases show less, never more
    ],
)
def test_what_counts_as_a_jump(before: int, after: int, jump: bool) -> None:
    assert is_jump(before, after) is jump


NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_standing_jumps_keeps_earlier_ones_until_edited_or_a_day_old() -> None:
    shown = {
        "A": Jump("a", NOW - timedelta(hours=1)),
        "B": Jump("b", NOW - timedelta(hours=1)),
        "C": Jump("c", NOW - timedelta(days=1)),
    }
    events = [
        Event("manual", sku="B", change=-10, before=5_000, after=4_990),
        Event("manual", sku="D", change=4_952, before=48, after=5_000),
        Event("order", "rakuten", "o-1", sku="A", change=-1, before=5_000, after=4_999),
    ]
    kept = standing_jumps(shown, events, NOW)
    assert list(kept) == ["A", "D"]
    assert kept["A"] == shown["A"]
    assert kept["D"].at == NOW and "from 48 to 5,000" in kept["D"].text


def test_capped_names_each_marketplace_whose_maximum_is_below_the_setting() -> None:
    row = Row(
        index=1,
        sku="TEA-001",
        stock=100_000,
        display=DisplaySetting("real"),
        typed_items={"yahoo": "tea-001", "amazon": None},
        own_display={"yahoo": DisplaySetting("percent", 50)},
    )
    caps = {"rakuten": 99_999, "yahoo": 99_999, "amazon": 99_999, "shopify": 1_000_000_000}
    assert capped(row, 100_000, caps) == [
        "rakuten takes at most 99,999: 99,999 is shown there, not 100,000"
    ]
    assert capped(row, 99_999, caps) == []


def test_capped_sees_a_plus_setting_push_a_row_without_own_settings_over_a_cap() -> None:
    row = Row(index=1, sku="TEA-001", stock=99_995, display=DisplaySetting("plus", 10))
    caps = {"rakuten": 99_999, "shopify": 1_000_000_000}
    assert capped(row, 99_995, caps) == [
        "rakuten takes at most 99,999: 99,999 is shown there, not 100,005"
    ]
    assert capped(row, 99_989, caps) == []  # 99,999 shown: at the cap, not over it
