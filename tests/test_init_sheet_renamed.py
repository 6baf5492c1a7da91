"""`init-sheet` over a renamed header or tab: it names what to rename back and adds nothing.

Without the check it would add an empty `Stock` column or an empty `Inventory` tab beside the
renamed one holding the real data (issue 10, rough edges). Run through the CLI against the
Sheets stand-in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.world import HEADER, World, world

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
