"""Cells a failed repair still owes: kept in the state file by identity, put back next cycle.

A commit that landed on rows or columns moved in its own instant is repaired at once
(`bot.positions.repair_cells`). When that repair cannot be sent (Sheets answers 503, the
network drops), two things are kept in the state file, in one transaction: the products whose
Stock may be wrong (*suspects*, `Cycle._restore_suspects`) and the other cells the repair owed
(here): a bot value left in a staff column (Name, Display, a marketplace id), in a column
inserted meanwhile, or in a row that was blank. A product row's Stock, Shown and Status cells
are not kept: the suspects put its Stock back, and every cycle writes Shown and Status anew.

Staff may move rows and columns again before the next cycle, so each owed cell is named by
identity, never by position: its row by the SKU it holds (a row without one: by the nearest
row above that has one, and how far below it), its column by its header (one without a header:
by the nearest header to its left, and how far right of it); with the value to put back and
the value the bot wrote there by mistake. The next cycle finds each cell again in its first
read (`locate`) and puts it back only while it holds exactly that wrong value: staff may have
typed over it since (left alone), and a put-back that landed before a stop is not made twice.
A row or column that cannot be found (deleted, a header renamed) owes nothing any more; a cell
whose SKU is in several rows stays owed until staff keep one row.

A bot stopped between a commit whose columns moved in its instant and its landing check owes
cells too (`Cycle._columns_after_stop`): blank in a column added meanwhile, and in a staff
column what the commit's first read held there, which the commit kept with its record
(`Changes.written_lines`, for a commit of at most `NARROW_MAX_ROWS` rows). A write of that
commit that landed on a SKU cell renamed its row, so that row cannot be named by its SKU: it is
named by position (row "" and `below`: its row index, where rows stay when only columns move)
with a `check`, a cell of that row (by header) that must still hold what the state file
expects there; it is put back, before any other owed cell is looked for, only while the SKU
cell holds exactly the bot's value and the check holds (else it is said in the Log).
Such a commit's Stock write that landed on the row of a product whose Stock cannot be read
(rows moved in its instant) owes that row's Stock and Shown back as staff left them (kept with
`written_lines`, `bot.unchecked.unread_cells_taken`): the state file has no Stock for it to set
back. While owed, that row has no Stock (`sync._held_back`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.i18n import _
from bot.positions import WRITTEN, Writes
from bot.rules import cell_text
from bot.sheet.layout import Tab, header_key

__all__ = ["Owed", "locate", "lost_text", "owed_cells", "rows_by_sku", "text_at"]


@dataclass(frozen=True)
class Owed:
    """One cell a failed repair still owes, named by identity."""

    row: str  # the row's SKU, or the nearest SKU above it ("": the header row)
    below: int  # how many rows below that row the cell is (0: that row itself)
    column: str  # the column's header, or the nearest header to its left ("": column A)
    right: int  # how many columns right of that column the cell is (0: that column itself)
    back: object  # the value to put back (None: blank)
    wrong: object  # the value the bot wrote there by mistake
    # A SKU cell only (named by position): (a header, the text that column's cell of the row
    # must hold), so that a row moved since is not renamed.
    check: tuple[str, str] | None = None

    def to_json(self) -> list[Any]:
        """As kept in the state file (the `check` only when set: earlier versions read six)."""
        out = [self.row, self.below, self.column, self.right, self.back, self.wrong]
        return out if self.check is None else [*out, list(self.check)]

    @classmethod
    def from_json(cls, data: Sequence[Any]) -> Owed:
        """Read back what `to_json` wrote."""
        row, below, column, right, back, wrong = data[:6]
        check = (str(data[6][0]), str(data[6][1])) if len(data) > 6 else None
        return cls(str(row), int(below), str(column), int(right), back, wrong, check)


def text_at(grid: Sequence[Sequence[Any]], row: int, column: int) -> str:
    """A cell's text as the bot reads it; "" past the grid's edge."""
    line = grid[row] if row < len(grid) else []
    return cell_text(line[column]) if column < len(line) else ""


def rows_by_sku(
    grid: Sequence[Sequence[Any]], sku_column: int, renamed: Mapping[int, str] | None = None
) -> dict[str, list[int]]:
    """Each SKU in `grid` (case-folded) with the rows holding it, below the header row;
    `renamed`: rows whose SKU is taken to be another text (a SKU cell about to be put back)."""
    rows: dict[str, list[int]] = {}
    for i in range(1, len(grid)):
        sku = (renamed or {}).get(i) or text_at(grid, i, sku_column)
        if sku:
            rows.setdefault(sku.casefold(), []).append(i)
    return rows


def _anchor(names: Sequence[str], at: int, start: int) -> tuple[str, int]:
    """The nearest name at or before `at` (from `start`), and how far `at` lies past it."""
    for i in range(at, start - 1, -1):
        if names[i]:
            return names[i], at - i
    return "", at


def owed_cells(
    writes: Writes,
    old_tab: Tab,
    now_tab: Tab,
    now_header: Sequence[Any],
    now_skus: Sequence[Sequence[Any]],
    undo: Mapping[int, Mapping[int, object]],
    *,
    columns_moved: bool,
) -> list[Owed]:
    """The cells of a repair's `undo` that nothing else sets right should the repair fail.

    The arguments are `repair_cells`' (`undo` its second answer): `writes` were sent by the
    positions of `old_tab`; the others are the sheet as read after the commit. A cell that
    landed on a SKU cell is not kept: its row can no longer be named by its SKU (left to
    staff, who see the product's row name a number).
    """
    wrote = {
        (index, old_tab.columns[key]): value
        for key, values in writes.cells.items()
        for index, value in values.items()
    }
    sku_column = now_tab.columns["sku"]
    bot_columns = {now_tab.columns[key] for key in WRITTEN}
    # Rows stay in place when columns move, so a row is its product's even where the write
    # landed on its SKU cell (as `repair_cells` takes it).
    height = max([len(now_skus), *(index + 1 for index in undo)])
    skus = [text_at(now_skus, i, 0) for i in range(height)]
    for index, sku in writes.skus.items() if columns_moved else ():
        if index < height:
            skus[index] = sku
    width = max([len(now_header), *(c + 1 for cells in undo.values() for c in cells)])
    headers = [text_at([now_header], 0, c) for c in range(width)]
    out: list[Owed] = []
    for index, cells in sorted(undo.items()):
        sku = skus[index]
        for column, back in sorted(cells.items()):
            if column == sku_column or (sku and column in bot_columns):
                continue
            if sku:
                row, below = sku, 0
            else:  # a blank row: named by the nearest product row above it
                row, above = _anchor(skus, index - 1, 1)
                below = above + 1
            name, right = _anchor(headers, column, 0)
            out.append(Owed(row, below, name, right, back, wrote[(index, column)]))
    return out


def locate(
    owed: Sequence[Owed], grid: Sequence[Sequence[Any]], sku_column: int
) -> tuple[dict[int, dict[int, object]], list[Owed], list[Owed]]:
    """Where the owed cells are in `grid` (a first read) while they hold the bot's wrong value:
    {row: {column: value to put back}}; the cells still owed (their SKU in several rows); and
    the cells lost (their row's SKU or their column's header is nowhere, or twice a header).
    """
    headers = [cell_text(h) for h in (grid[0] if grid else [])]
    keys = [header_key(h) for h in headers]
    put: dict[int, dict[int, object]] = {}
    kept: list[Owed] = []
    lost: list[Owed] = []
    renamed: dict[int, str] = {}
    for cell in owed:
        if cell.check is None:
            continue
        # A SKU cell, by position: first, so that the row's other cells are found by its SKU.
        row, checked = cell.below, cell.check
        now = text_at(grid, row, sku_column)
        if not now or now != cell_text(cell.wrong):
            continue  # staff typed over it since
        at = keys.index(header_key(checked[0])) if keys.count(header_key(checked[0])) == 1 else -1
        if at < 0 or text_at(grid, row, at) != checked[1]:
            lost.append(cell)  # rows moved, or the row changed: left to staff (the Log says)
            continue
        put.setdefault(row, {})[sku_column] = cell.back
        renamed[row] = cell_text(cell.back)
    rows = rows_by_sku(grid, sku_column, renamed)
    for cell in owed:
        if cell.check is not None:
            continue
        found = rows.get(cell.row.casefold(), []) if cell.row else [0]
        if len(found) > 1:
            kept.append(cell)
            continue
        # Headers as the bot reads them (SPEC.md 2: case and blanks around them ignored).
        named = (
            [i for i, h in enumerate(headers) if header_key(h) == header_key(cell.column)]
            if cell.column
            else [0]
        )
        if len(found) != 1 or len(named) != 1:
            # Deleted, or renamed (a SKU, a header): the cell cannot be named any more. Said
            # in the Log (`lost_text`), since a renamed row may still hold the bot's value.
            lost.append(cell)
            continue
        row, column = found[0] + cell.below, named[0] + cell.right
        if cell.below and text_at(grid, row, sku_column):
            continue  # rows moved: the row there now holds a product
        if cell.right and column < len(headers) and headers[column]:
            continue  # columns moved: the column there now has a header
        now = text_at(grid, row, column)
        if now and now == cell_text(cell.wrong):
            put.setdefault(row, {})[column] = cell.back
    return put, kept, lost


def lost_text(cell: Owed) -> str:
    """For staff: where a cell that could not be found again was, and what to do about it."""
    if not cell.row:
        row = _("row {number}").format(number=cell.below + 1)
    elif cell.below:
        row = _("{count} row(s) below the row of {sku}").format(count=cell.below, sku=cell.row)
    else:
        row = _("the row of {sku}").format(sku=cell.row)
    column = cell.column or "A"
    if cell.right:
        column = _("{count} column(s) right of {header}").format(count=cell.right, header=column)
    return _(
        "a cell the bot wrote by mistake could not be found again to put it back ({row}, "
        "column {column}: the row or column was deleted or renamed since); if it is still "
        "there, it holds {wrong}: type back what it held, {back}"
    ).format(
        row=row,
        column=column,
        wrong=cell_text(cell.wrong) or '""',
        back=cell_text(cell.back) or _("nothing"),
    )
