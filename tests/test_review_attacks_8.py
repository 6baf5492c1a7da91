"""Review attacks 8: the per-row optimisations of issue 8 (branch `cpu`) against the old code.

Each test ran the real bot against the stand-ins and failed on `cpu` while passing on `main`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.errors import SheetStructureError
from bot.standins.amazon import AmazonStandIn
from tests.staff import dimension
from tests.world import HEADER, World, world

AMAZON_ROWS = [
    # SKU, Name, Stock, Display, Rakuten, Yahoo, Amazon, Shopify, Shown, Status
    ["TEA-001", "Sencha", 30, "", "", "", "TEA-001-AMZ", "", "", ""],
    ["TEA-002", "Gyokuro", 20, "", "", "", "TEA-002-AMZ", "", "", ""],
    ["CUP-001", "Cup", 12, "", "", "", "CUP-001-AMZ", "", "", ""],
]


@pytest.fixture
def amazon_shop(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("amazon",)) as w:
        w.create_sheet(AMAZON_ROWS)
        # A staff column right of Status (K): the bot never writes there.
        w.sheets.set_values(
            w.sheet_id, "Inventory", "K1:K4", [["Notes"], ["note 1"], ["note 2"], ["note 3"]]
        )
        store = w.markets["amazon"]
        assert isinstance(store, AmazonStandIn)
        for item in ("TEA-001-AMZ", "TEA-002-AMZ", "CUP-001-AMZ"):
            store.add_item(item, 0)
        yield w


def at_report(w: World, action: Any) -> None:
    """Run `action` just before the cycle's second write (the report, after the pushes)."""
    commits: list[str] = []

    def hook(request: Any) -> None:
        if request.path.endswith(":batchUpdate") and b"stockbot.commit" in request.body:
            commits.append(request.path)
            if len(commits) == 2:
                w.sheets.remove_hook(hook)
                action()

    w.sheets.add_hook(hook)


# -- rows and columns may move: the report's Status write lands on a staff column -------------
def test_report_status_landing_on_a_staff_column_is_put_back(amazon_shop: World) -> None:
    """`sheet.grid = []` after the commit: the report's repair has no first read any more.

    A push refused (Amazon 403) makes the report write that row's Status. Staff delete the Name
    column in the instant of that write: the Status value lands on `Notes`, a staff column. The
    repair must put the staff note back (from the cycle's first read), not blank it.
    """
    w = amazon_shop
    store = w.markets["amazon"]
    assert isinstance(store, AmazonStandIn)
    store.restrict_listing("TEA-002-AMZ")
    at_report(w, lambda: dimension(w, "deleteDimension", "COLUMNS", 1))  # Name
    report = w.sync()
    assert report.repaired, "the report's write should have been seen landing off"
    notes = {r["SKU"]: r["Notes"] for r in w.inventory()}
    assert notes == {"TEA-001": "note 1", "TEA-002": "note 2", "CUP-001": "note 3"}
    assert "403" in w.row("TEA-002")["Status"]


def test_report_status_landing_on_the_header_row_is_put_back(amazon_shop: World) -> None:
    """`sheet.grid = []` after the commit: `_restore_header` has no header row to put back.

    The first product's push is refused, so the report writes its Status (row 2). A row is
    inserted above the headers in the instant of that write: the Status text lands on the
    header row. The bot must put the header cell back (SPEC 4, rows may move).
    """
    w = amazon_shop
    store = w.markets["amazon"]
    assert isinstance(store, AmazonStandIn)
    store.restrict_listing("TEA-001-AMZ")
    at_report(w, lambda: dimension(w, "insertDimension", "ROWS", 0))
    with pytest.raises(SheetStructureError, match="header cells it overwrote were put back"):
        w.sync()
    grid = w.sheets.get_values(w.sheet_id, "Inventory")
    assert all(v == "" for v in grid[0])  # the row staff inserted
    assert grid[1] == [*HEADER, "Notes"]
