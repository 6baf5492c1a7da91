"""Whether a sheet that reads without error still looks like the shop's inventory (`check`).

A renamed column is caught by the layout; these catch what reads as valid but is not: every
product row broken (e.g. Stock filled with text), or the products the state file knows gone
from the sheet (e.g. the SKU column cleared or the rows deleted).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from bot.i18n import _
from bot.inventory import Row

__all__ = ["sheet_problems"]


def sheet_problems(rows: Sequence[Row], known_skus: Collection[str]) -> list[str]:
    """What makes the Inventory tab as a whole unusable; empty when it looks right."""
    problems: list[str] = []
    if rows and all(row.problems for row in rows):
        problems.append(
            _(
                "every one of the {count} Inventory rows has a problem (see each row's Status)"
            ).format(count=len(rows))
        )
    present = {row.sku.casefold() for row in rows if row.sku}
    if known_skus and not present & {sku.casefold() for sku in known_skus}:
        problems.append(
            _(
                "none of the {count} SKUs this state file knows is in the Inventory tab: if the "
                "SKU column was cleared or the rows deleted, restore them (File › Version "
                "history), or check that STOCKBOT_SHEET_ID is the right spreadsheet"
            ).format(count=len(known_skus))
        )
    return problems
