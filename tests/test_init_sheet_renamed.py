"""`init-sheet` over a renamed header or tab: it names what to rename back and adds nothing.

Without the check it would add an empty `Stock` column or an empty `Inventory` tab beside the
renamed one holding the real data (issue 10, rough edges). Run through the CLI against the
Sheets stand-in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.world import HEADER, LOG_HEADER, World, world

ROWS = [["TEA-001", "Sencha", 30, "+20", "", "", "", "", "", ""]]


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(ROWS)
        yield w


def _writes(w: World) -> int:
    return sum(1 for r in w.sheets.requests if r.method == "POST" and ":batchUpdate" in r.path)


def _rename_tab(w: World, old: str, new: str) -> None:
    tab = w.sheets.tab_ids(w.sheet_id)[old]
    w.sheets.batch_update(
        w.sheet_id,
        [
            {
                "updateSheetProperties": {
                    "properties": {"sheetId": tab, "title": new},
                    "fields": "title",
                }
            }
        ],
    )


def test_a_renamed_stock_header_is_named_and_no_column_is_added(w: World) -> None:
    w.sheets.set_value(w.sheet_id, "Inventory", "C1", "在庫", raw=True)
    before = _writes(w)
    done = w.run_cli("init-sheet")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'Stock'" in done.stderr and "'在庫'" in done.stderr
    assert "rename the column back" in done.stderr
    assert _writes(w) == before
    assert w.sheets.get_values(w.sheet_id, "Inventory")[0] == [
        "在庫" if h == "Stock" else h for h in HEADER
    ]


def test_a_renamed_inventory_tab_is_named_and_no_tab_is_added(w: World) -> None:
    _rename_tab(w, "Inventory", "Stock list")
    before = _writes(w)
    done = w.run_cli("init-sheet")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'Stock list'" in done.stderr and "'Inventory'" in done.stderr
    assert _writes(w) == before
    assert set(w.sheets.tab_ids(w.sheet_id)) == {"Stock list", "Log", "Channels"}


def test_a_renamed_tab_in_japanese_is_told_in_japanese(w: World) -> None:
    _rename_tab(w, "Inventory", "在庫一覧")
    w.env["STOCKBOT_LANGUAGE"] = "ja"
    done = w.run_cli("init-sheet")
    assert done.returncode == 2
    assert "'在庫一覧'" in done.stderr and "名前を" in done.stderr


def test_a_truly_missing_header_is_still_added(w: World) -> None:
    w.sheets.set_value(w.sheet_id, "Inventory", "J1", "", raw=True)  # Status gone, nothing else
    done = w.run_cli("init-sheet")
    assert done.returncode == 0, done.stderr
    assert "added header Status" in done.stdout
    assert w.sheets.get_values(w.sheet_id, "Inventory")[0][:10] == HEADER


def test_staff_columns_on_a_tab_without_data_do_not_stop_a_missing_header(w: World) -> None:
    w.sheet_id = w.sheets.create_spreadsheet(
        "new", {"Inventory": [["SKU", "Stock", "Memo"]], "Sheet1": []}
    )
    w.env["STOCKBOT_SHEET_ID"] = w.sheet_id
    done = w.run_cli("init-sheet")
    assert done.returncode == 0, done.stderr
    assert "added header Display" in done.stdout and "added tab Log" in done.stdout


def test_a_tab_of_the_shop_s_own_does_not_stop_missing_tabs(w: World) -> None:
    w.sheet_id = w.sheets.create_spreadsheet(
        "own", {"Inventory": [HEADER, *ROWS], "仕入れ": [["商品コード", "数量"], ["TEA-001", 5]]}
    )
    w.env["STOCKBOT_SHEET_ID"] = w.sheet_id
    done = w.run_cli("init-sheet")
    assert done.returncode == 0, done.stderr
    assert "added tab Log" in done.stdout and "added tab Channels" in done.stdout


# -- what is not a rename (review 6): a shop's own tabs and columns, the bot's old Log tabs ---
def test_a_renamed_log_tab_is_still_named_and_no_tab_is_added(w: World) -> None:
    _rename_tab(w, "Log", "Log (old)")
    done = w.run_cli("init-sheet")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'Log (old)'" in done.stderr and "rename it back" in done.stderr
    assert set(w.sheets.tab_ids(w.sheet_id)) == {"Inventory", "Log (old)", "Channels"}


def test_a_renamed_display_column_beside_staff_columns_is_added_not_refused(w: World) -> None:
    # Only SKU and Stock hide staff data when added empty; the rest is added (a shop's first
    # set-up has no Display, Shown or Status, and its own columns beside them).
    w.sheets.set_value(w.sheet_id, "Inventory", "J1", "Memo", raw=True)  # Status gone
    done = w.run_cli("init-sheet")
    assert done.returncode == 0, done.stderr
    assert "added header Status" in done.stdout


def test_sync_advises_init_sheet_for_a_missing_log_beside_a_shop_s_orders_tab(w: World) -> None:
    w.sheet_id = w.sheets.create_spreadsheet(
        "shop",
        {
            "Inventory": [HEADER, *ROWS],
            "Orders": [["Date", "Order", "SKU", "Qty"], ["2026-11-01", "A-1", "TEA-001", 2]],
            "Log until 2026-11-30": [LOG_HEADER],
            "Channels": [["Channel", "Enabled", "Last sync", "Last error"]],
        },
    )
    w.env["STOCKBOT_SHEET_ID"] = w.sheet_id
    done = w.run_cli("sync")
    assert done.returncode == 2
    assert "run `stockbot init-sheet` to add it" in done.stderr, done.stderr
    assert "rename it back" not in done.stderr


def test_sync_advises_init_sheet_for_a_missing_status_beside_staff_columns(w: World) -> None:
    w.sheets.set_value(w.sheet_id, "Inventory", "J1", "Memo", raw=True)
    done = w.run_cli("sync")
    assert done.returncode == 2
    assert "'Status'" in done.stderr and "run `stockbot init-sheet`" in done.stderr
    assert "rename it back" not in done.stderr


def test_a_tab_is_taken_for_a_renamed_one_only_with_most_of_its_headers() -> None:
    from datetime import date

    from bot.i18n import set_language
    from bot.rollover import plan_rollover
    from bot.sheet.layout import Tab, is_log_archive, looks_like

    assert looks_like("log", "History", LOG_HEADER)
    assert looks_like("log", "History", LOG_HEADER[:5])  # 5 of 9
    assert not looks_like("log", "Orders", ["Date", "Order", "SKU", "Qty"])
    assert not looks_like("inventory", "Products", ["SKU", "Name", "Stock", "Price"])
    assert looks_like("inventory", "在庫一覧", ["商品コード", "在庫数", "表示在庫設定"])
    assert not looks_like("channels", "Shops", ["Channel", "URL"])
    # The bot's own rolled-over Log tabs, as bot/rollover.py titles them in either language.
    try:
        for lang, log in (("en", "Log"), ("ja", "ログ"), ("ja", "Log")):
            set_language(lang)
            titles = {"Log"}
            for _ in range(2):  # a second rollover the same day: `… (2)`
                roll = plan_rollover(
                    {"sheets": [{"properties": {"title": t}} for t in titles]},
                    Tab(log, 7, 10, 9, {}),
                    LOG_HEADER,
                    date(2026, 11, 30),
                    limit=1,
                )
                assert roll is not None and is_log_archive(roll.old_title), roll
                assert not looks_like("log", roll.old_title, LOG_HEADER)
                titles.add(roll.old_title)
    finally:
        set_language("en")
    assert not is_log_archive("Log") and not is_log_archive("Logistics 2026-11-30")


def test_a_renamed_display_on_a_sheet_the_bot_set_up_is_named_and_not_added_blank(w: World) -> None:
    # Shown and Status are there: the bot set this tab up, so a Display gone while an unknown
    # column appeared is a rename; a blank Display beside it would drop every hold-back.
    w.sheets.set_value(w.sheet_id, "Inventory", "D1", "表示設定", raw=True)
    before = _writes(w)
    done = w.run_cli("init-sheet")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'Display'" in done.stderr and "'表示設定'" in done.stderr
    assert _writes(w) == before


def test_a_shop_sheet_without_bot_columns_gets_its_display_column_added(w: World) -> None:
    # A shop's own list (SKU, Name, Stock, Price) before the bot ever set it up: Display,
    # Shown and Status are simply added, whatever the shop's own columns are.
    blank: list[object] = [None] * 6
    shop = [["SKU", "Name", "Stock", "Price", *blank], ["TEA-001", "Sencha", 30, 800, *blank]]
    w.sheets.set_values(w.sheet_id, "Inventory", "A1", shop)
    done = w.run_cli("init-sheet")
    assert done.returncode == 0, done.stdout + done.stderr
    header = w.sheets.get_values(w.sheet_id, "Inventory")[0]
    assert {"Display", "Shown", "Status", "Price"} <= set(header)
