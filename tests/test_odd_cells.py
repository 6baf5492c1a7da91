"""Odd cells and odd rows, through whole cycles (issue 6, defects 3, 6, 7 and 11).

The real gspread client and the real Rakuten adapter against the stand-ins: a Stock beyond what
the state can hold, a formula or a date in Stock, a copied row, a renamed SKU.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.channels.http import RetryPolicy
from bot.sheet.client import SheetClient
from bot.sheet.setup import init_sheet
from tests.world import HEADER, World, world

ITEM = "sencha:green"  # the Rakuten item (manageNumber:variantId) of TEA-001
ROWS = [
    # SKU, Name, Stock, Display, Rakuten, Yahoo, Amazon, Shopify, Shown, Status
    ["TEA-001", "Sencha", 30, "", ITEM, "", "", "", "", ""],
    ["TEA-002", "Gyokuro", 30, "", "", "", "", "", "", ""],
]


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(ROWS)
        w.markets["rakuten"].add_item(ITEM, 0)
        w.markets["rakuten"].add_item("TEA-002", 0)
        yield w


def _store(w: World) -> Any:
    return w.markets["rakuten"]


def _copy_row(w: World, sku: str, at: int) -> None:
    """Staff copy a product's row and paste it into sheet row `at`."""
    row = w.row(sku)
    w.sheets.set_values(w.sheet_id, "Inventory", f"A{at}", [[row[h] for h in HEADER]], raw=True)


def _delete_row(w: World, at: int) -> None:
    """Staff delete sheet row `at`."""
    tab = w.sheets.tab_ids(w.sheet_id)["Inventory"]
    w.sheets.batch_update(
        w.sheet_id,
        [
            {
                "deleteDimension": {
                    "range": {
                        "sheetId": tab,
                        "dimension": "ROWS",
                        "startIndex": at - 1,
                        "endIndex": at,
                    }
                }
            }
        ],
    )


# -- defect 3: values beyond what a marketplace or the state can hold ---------------------------
def test_stock_1e20_is_a_row_error_and_never_crashes_the_commit(w: World) -> None:
    w.sync()
    w.set_stock("TEA-001", 1e20)
    _store(w).place_order([(ITEM, 2)])
    report = w.sync()
    assert report.ok
    assert "beyond what the bot can keep" in w.row("TEA-001")["Status"]
    assert w.row("TEA-001")["Stock"] == 1e20  # never written
    assert [e for e in w.log("error") if "TEA-001" in e["Detail"]]
    assert w.sync().ok  # no pending commit left behind, no crash at the next start
    w.set_stock("TEA-001", 30)
    w.sync()
    assert w.row("TEA-001")["Stock"] == 28
    assert w.row("TEA-001")["Status"] == "OK"
    assert len(w.log("order")) == 1


def test_a_5000_digit_stock_is_a_row_error(w: World) -> None:
    w.sync()
    w.set_stock("TEA-001", "9" * 5000)
    _store(w).place_order([("TEA-002", 1)])
    assert w.sync().ok
    assert "beyond what the bot can keep" in w.row("TEA-001")["Status"]
    assert w.row("TEA-002")["Stock"] == 29  # the other rows sync


# -- defect 11: formulas and dates in Stock ------------------------------------------------------
def test_formula_in_stock_is_reported_and_never_overwritten(w: World) -> None:
    w.sync()
    w.sheets.set_value(w.sheet_id, "Inventory", "K2", 30)
    w.sheets.set_value(w.sheet_id, "Inventory", "C2", "=K2")  # typed: a formula
    _store(w).place_order([(ITEM, 2)])
    assert w.sync().ok
    formulas = w.sheets.get_values(w.sheet_id, "Inventory", render="FORMULA")
    assert formulas[1][2] == "=K2"
    assert "never overwrites a formula" in w.row("TEA-001")["Status"]
    assert w.log("order") == []
    w.set_stock("TEA-001", 30)
    w.sync()
    assert w.row("TEA-001")["Stock"] == 28


def test_date_typed_into_stock_is_a_row_error(w: World) -> None:
    w.sync()
    w.sheets.set_value(w.sheet_id, "Inventory", "C2", "3/4")  # typed: Sheets makes it a date
    assert w.sync().ok
    assert "looks like a date" in w.row("TEA-001")["Status"]
    assert w.log("manual") == []
    assert _store(w).quantity(ITEM) == 30


def test_init_sheet_warns_on_stock_that_is_not_a_whole_number(w: World) -> None:
    settings = w.settings()
    assert settings.google_credentials is not None
    sheet = SheetClient(
        settings.sheet_id,
        settings.google_credentials,
        settings.sheets_api_url,
        policy=RetryPolicy(sleep=w.time.sleep),
    )
    for _ in range(2):  # safe to run twice: the rule is set again, not added
        init_sheet(sheet, ["rakuten"])
    stock = [v for v in w.sheets.data_validations(w.sheet_id, "Inventory") if v["range"] == "C2:C"]
    (rule,) = [v["rule"] for v in stock]
    assert rule["strict"] is False  # a warning: staff are never blocked
    assert rule["condition"] == {
        "type": "CUSTOM_FORMULA",
        "values": [{"userEnteredValue": "=AND(ISNUMBER(C2),C2=INT(C2),ABS(C2)<=1000000000)"}],
    }


# -- defect 6: copied rows -------------------------------------------------------------------
def test_exact_duplicate_skus_log_no_invented_manual_rows(w: World) -> None:
    w.sync()
    _copy_row(w, "TEA-001", 4)
    w.set_cell("TEA-001", "C", 73)  # the first row: the copy keeps 30
    for _ in range(3):
        assert w.sync().ok
    assert w.log("manual") == []
    statuses = [r["Status"] for r in w.inventory() if r["SKU"] == "TEA-001"]
    assert len(statuses) == 2 and all("appears in rows 2, 4" in s for s in statuses)


def test_cancellation_while_a_row_is_duplicated_is_kept_until_one_row_remains(w: World) -> None:
    w.sync()
    order = _store(w).place_order([(ITEM, 3)])
    w.sync()
    assert w.row("TEA-001")["Stock"] == 27
    _copy_row(w, "TEA-001", 4)
    _store(w).cancel_order(order)
    w.sync()
    w.sync()
    assert [r["Stock"] for r in w.inventory() if r["SKU"] == "TEA-001"] == [27, 27]
    (held,) = [e for e in w.log("error") if "appears in rows 2, 4" in e["Detail"]]
    assert held["Order"] == order
    _delete_row(w, 4)  # staff keep the first row
    w.sync()
    w.sync()
    assert w.row("TEA-001")["Stock"] == 30
    assert [(c["SKU"], c["Change"]) for c in w.log("cancel")] == [("TEA-001", 3)]
    assert w.log("manual") == []


# -- defect 7: a SKU renamed by staff ------------------------------------------------------------
def test_cancellation_after_a_sku_rename_is_put_back_on_the_renamed_row(w: World) -> None:
    w.sync()
    order = _store(w).place_order([(ITEM, 2)])
    w.sync()
    w.set_cell("TEA-001", "A", "SENCHA-100G")  # same Rakuten item
    _store(w).cancel_order(order)
    w.sync()
    w.sync()
    assert w.row("SENCHA-100G")["Stock"] == 30
    (cancel,) = w.log("cancel")
    assert (cancel["SKU"], cancel["Change"]) == ("SENCHA-100G", 2)
    assert "TEA-001" in cancel["Detail"]
    assert not [e for e in w.log("error") if "no Inventory row lists" in e["Detail"]]
    assert w.log("manual") == []
