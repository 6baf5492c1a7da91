"""Where each product's row and each bot column are, checked at the last moment and after.

Staff may insert, delete, move and sort rows and columns at any time, also while a cycle runs
(SPEC.md section 4, rows and columns may move). The Sheets API writes cells by position and has
no conditional write, so the cycle addresses by identity in three steps:

1. **Re-read right before the commit** (`reread`): the header row, the SKU column and the Stock
   column in one read. Columns are found again by their headers (a second read follows only
   when they moved); rows are matched by SKU, so a sorted or shifted sheet is re-planned onto
   the rows where each product is now. A product that vanished or became ambiguous is left out
   of this cycle's writes.
2. **Check the commit's own answer** (`misplaced`): the commit asks `spreadsheets.batchUpdate`
   to include the spreadsheet as it is after the update (`includeSpreadsheetInResponse`,
   `responseRanges`: the header row and the SKU cells of every row written; Sheets API v4
   reference, BatchUpdateSpreadsheetRequest and its response's `updatedSpreadsheet`, "the
   spreadsheet after updates were applied"). A row or column moved inside the last round trip
   shows there as a SKU or header other than the one the writes were meant for.
3. **Repair at once** (`repair_cells`): every cell the commit wrote is set back to what belongs
   there now (the value read for the product and column that are there now, or blank for a row
   or column added meanwhile), and each product gets its intended cells where it is now. The
   repair is itself checked the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bot.errors import SheetError
from bot.i18n import _
from bot.inventory import Row
from bot.rules import CellError, cell_text, parse_stock
from bot.sheet.client import SheetClient
from bot.sheet.layout import INVENTORY_HEADERS, Tab, column_letters, header_key, map_columns
from bot.sheet.writes import column_runs

__all__ = [
    "SKU_HEADERS",
    "Columns",
    "Misplaced",
    "Reread",
    "Writes",
    "left_out",
    "misplaced",
    "misplaced_in",
    "read_positions",
    "repair_cells",
    "reread",
]

SKU_HEADERS = frozenset(header_key(n) for n in INVENTORY_HEADERS["sku"])

WRITTEN = ("stock", "shown", "status")  # the columns a commit writes, in this order


def left_out() -> str:
    """How the note of a row left out of the commit ends (the cycle logs those notes)."""
    return _("; its changes wait for the next cycle")


@dataclass
class Writes:
    """The Inventory cells a commit writes: column key -> {row index: value}, and whose rows."""

    cells: dict[str, dict[int, object]] = field(default_factory=dict)
    skus: dict[int, str] = field(default_factory=dict)  # row index -> the SKU it is meant for

    def put(self, key: str, index: int, sku: str, value: object) -> None:
        """Write `value` into column `key` of the row of `sku` (now at `index`)."""
        self.cells.setdefault(key, {})[index] = value
        self.skus[index] = sku

    def requests(self, tab: Tab) -> list[dict[str, Any]]:
        """The updateCells requests, by the tab's current columns."""
        out: list[dict[str, Any]] = []
        for key in WRITTEN:
            values = self.cells.get(key)
            if values:
                out += column_runs(tab.sheet_id, tab.columns[key], values)
        return out

    def response_ranges(self, tab: Tab) -> list[str]:
        """The header row and the SKU cells of every written row: what to check afterwards."""
        letter = column_letters(tab.columns["sku"])
        ranges = [f"{tab.a1}!1:1"]
        rows = sorted(self.skus)
        start = 0
        while start < len(rows):
            end = start
            while end + 1 < len(rows) and rows[end + 1] == rows[end] + 1:
                end += 1
            ranges.append(f"{tab.a1}!{letter}{rows[start] + 1}:{letter}{rows[end] + 1}")
            start = end + 1
        return ranges


@dataclass
class Reread:
    """What the read right before the commit found."""

    tab: Tab  # the Inventory tab with its columns as they are now
    rows: list[Row]  # the rows that can be written, at their current index, Stock as now
    changed: bool  # a Stock edit or a move: the plan must be made again
    notes: list[str]  # what moved, for the process log and the Log tab


@dataclass(frozen=True)
class Columns:
    """The SKU and Stock cells of every row as a read saw them (`""` for an empty cell)."""

    skus: list[Any]
    stocks: list[Any]
    plain: bool  # no TRUE or FALSE among them: see `same`

    @classmethod
    def of(cls, grid: Sequence[Sequence[Any]], columns: Mapping[str, int]) -> Columns:
        """The two columns of a read of the whole tab (rows as long as their last value)."""
        skus, stocks = _column(grid, columns["sku"]), _column(grid, columns["stock"])
        return cls(skus, stocks, not _has_bool(skus) and not _has_bool(stocks))

    def same(self, skus: list[Any], stocks: list[Any]) -> bool:
        """Whether a column-major read answered every cell as it was, of the same type.

        Python's `==` takes TRUE for 1 and FALSE for 0; numbers and text compare exactly.
        """
        return (
            self.plain
            and skus == self.skus
            and stocks == self.stocks
            and not _has_bool(skus)
            and not _has_bool(stocks)
        )


def _column(grid: Sequence[Sequence[Any]], at: int) -> list[Any]:
    out = [line[at] if at < len(line) else "" for line in grid]
    while out and out[-1] == "":
        out.pop()
    return out


def _has_bool(cells: list[Any]) -> bool:
    return bool in set(map(type, cells))  # the types seen, collected in C: fast at 100,000


def _grid_text(grid: Sequence[Sequence[Any]], index: int) -> str:
    return cell_text(grid[index][0]) if index < len(grid) and grid[index] else ""


def reread(
    sheet: SheetClient,
    tab: Tab,
    rows: Sequence[Row],
    keep: Collection[str] = (),
    basis: Columns | None = None,
) -> Reread:
    """Header row, SKU and Stock right before the commit; rows matched again by SKU.

    `keep` names (case-folded) SKUs whose Stock the cycle writes back from the state file:
    their cells are known to be wrong, so what they hold is no staff edit. `basis` is the SKU
    and Stock columns of the read `rows` come from: when the re-read answers them unchanged,
    cell for cell, nothing moved and no Stock was edited, and the commit can follow at once.
    """
    notes: list[str] = []
    header, sku_column, stock_column = _read_columns(sheet, tab, tab.columns)
    columns = map_columns("inventory", tab.title, header[0] if header else [])
    if any(columns.get(k) != tab.columns.get(k) for k in {*columns, *tab.columns}):
        notes.append(_("columns were inserted, deleted or moved during the cycle"))
        tab = replace(tab, columns=columns)
        header, sku_column, stock_column = _read_columns(sheet, tab, columns)
        again = map_columns("inventory", tab.title, header[0] if header else [])
        if again != columns:
            raise SheetError(
                _(
                    "the Inventory columns kept moving while the bot synced; nothing was "
                    "written, the next cycle tries again"
                )
            )

    # The common case, kept short: this runs inside the staff-edit window (between the last
    # read and the commit). Comparing the lists as read takes milliseconds at 100,000 rows;
    # a formula cell (read as its formula here, as its result at the first read) or a row
    # blank at the first read differs there, and `_unchanged` compares row by row.
    if not notes and basis is not None and basis.same(sku_column, stock_column):
        return Reread(tab, list(rows), False, [])
    skus, stocks = _as_rows(sku_column), _as_rows(stock_column)
    if not notes and _unchanged(rows, skus, stocks, keep):
        return Reread(tab, list(rows), False, [])
    where: dict[str, list[int]] = {}
    for index in range(1, len(skus)):
        text = _grid_text(skus, index)
        if text:
            where.setdefault(text.casefold(), []).append(index)

    # First where every product is now, then what to keep: a row is found by its SKU.
    found: dict[int, int | None] = {}  # row.index (first read) -> its index now, None = lost
    for row in rows:
        places = where.get(row.sku.casefold(), []) if row.sku else []
        if row.sku and len(places) == 1:
            found[row.index] = places[0]
        elif row.sku and not row.duplicate and _grid_text(skus, row.index).startswith("="):
            # A SKU typed as a formula reads as its formula text here: it can be followed by
            # its position only (below, when nothing moved).
            found[row.index] = row.index
        elif not row.sku or row.duplicate:
            # No SKU, or one that two rows share: only the position identifies the row.
            here = _grid_text(skus, row.index)
            found[row.index] = row.index if here.casefold() == row.sku.casefold() else None
        else:
            found[row.index] = None
            notes.append(
                (
                    _("{sku} was deleted or renamed during the cycle").format(sku=row.sku)
                    if not places
                    else _("{sku} was copied during the cycle: it is now in rows {rows}").format(
                        sku=row.sku, rows=", ".join(str(p + 1) for p in places)
                    )
                )
                + left_out()
            )
    moved = any(now is not None and now != before for before, now in found.items())

    fresh: list[Row] = []
    changed = any(now is None for now in found.values())
    for row in rows:
        now = found[row.index]
        if now is None:
            continue
        index = now
        if moved and (not row.sku or row.duplicate or _grid_text(skus, index).startswith("=")):
            changed = True  # cannot be followed by position once rows moved: next cycle
            continue
        raw = stocks[index][0] if index < len(stocks) and stocks[index] else None
        if row.sku.casefold() in keep:
            raw = row.stock
        try:
            value: int | None = parse_stock(raw)
        except CellError as exc:
            value, problem = None, str(exc)
        else:
            problem = ""
        if value == row.stock and index == row.index:
            fresh.append(row)
            continue
        changed = True
        problems = row.problems
        if value != row.stock:
            problems = tuple(
                p for p in row.problems if not p.startswith(INVENTORY_HEADERS["stock"])
            )
            if value is None:
                problems += (problem or _("Stock is not a whole number: type the real stock"),)
        fresh.append(replace(row, index=index, stock=value, problems=problems))
    if moved:
        notes.append(_("rows were inserted, deleted, moved or sorted during the cycle"))
    return Reread(tab, fresh, changed or bool(notes), notes)


def _unchanged(
    rows: Sequence[Row],
    skus: Sequence[Sequence[Any]],
    stocks: Sequence[Sequence[Any]],
    keep: Collection[str],
) -> bool:
    """Whether every row still holds its SKU and Stock exactly as first read.

    This check runs inside the staff-edit window (between the last read and the commit), so it
    compares the raw cells first and leaves parsing to the rare case where something changed.
    """
    height = len(skus)
    for row in rows:
        i = row.index
        sku = skus[i][0] if i < height and skus[i] else ""
        if sku != row.sku and cell_text(sku) != row.sku:
            return False
        if row.sku.casefold() in keep:
            continue
        stock = stocks[i][0] if i < len(stocks) and stocks[i] else None
        if type(stock) is int and stock == row.stock:
            continue
        try:
            if parse_stock(stock) != row.stock:
                return False
        except CellError:
            if row.stock is not None:
                return False
    # A row added in a gap that was empty at the first read moves nothing and is not ours.
    return True


def read_positions(sheet: SheetClient, tab: Tab) -> tuple[Tab, list[Any], list[list[Any]]]:
    """The Inventory columns, header row and SKU column as they are now (one read, or two)."""
    letter = column_letters(tab.columns["sku"])
    header, skus = sheet.read([f"{tab.a1}!1:1", f"{tab.a1}!{letter}:{letter}"])
    first = header[0] if header else []
    columns = map_columns("inventory", tab.title, first)
    if columns == dict(tab.columns):
        return tab, first, skus
    letter = column_letters(columns["sku"])
    (skus,) = sheet.read([f"{tab.a1}!{letter}:{letter}"])
    return replace(tab, columns=columns), first, skus


def misplaced_in(sheet: SheetClient, tab: Tab, writes: Writes) -> Misplaced:
    """Compare what a read shows now with what the writes meant (when no answer could)."""
    letter = column_letters(tab.columns["sku"])
    header, skus = sheet.read([f"{tab.a1}!1:1", f"{tab.a1}!{letter}:{letter}"])
    found_header = header[0] if header else []
    columns = {}
    for key in ("sku", *WRITTEN):
        names = {header_key(n) for n in INVENTORY_HEADERS[key]}
        at = tab.columns[key]
        text = cell_text(found_header[at]) if at < len(found_header) else ""
        if header_key(text) not in names:
            columns[key] = text
    rows = {
        index: _grid_text(skus, index)
        for index, sku in writes.skus.items()
        if _grid_text(skus, index).casefold() != sku.casefold()
    }
    return Misplaced(rows, columns)


def _read_columns(
    sheet: SheetClient, tab: Tab, columns: Mapping[str, int]
) -> tuple[list[list[Any]], list[Any], list[Any]]:
    """The header row (as a one-row grid), and the SKU and Stock columns as flat lists.

    Read column-major (majorDimension COLUMNS): each column answers as one list, `""` for an
    empty cell, rather than a list per row; at 100,000 rows that halves the time to decode the
    answer inside the staff-edit window, and the lists compare with `Columns` as they come.
    """
    sku, stock = column_letters(columns["sku"]), column_letters(columns["stock"])
    header, skus, stocks = sheet.read(
        [f"{tab.a1}!1:1", f"{tab.a1}!{sku}:{sku}", f"{tab.a1}!{stock}:{stock}"],
        formulas=True,
        by_columns=True,
    )
    return (
        [[cell[0] if cell else "" for cell in header]],
        skus[0] if skus else [],
        stocks[0] if stocks else [],
    )


def _as_rows(column: list[Any]) -> list[list[Any]]:
    """A column-major column as a row-major read answers it (`[]` for an empty cell)."""
    return [[value] if value != "" else [] for value in column]


@dataclass(frozen=True)
class Misplaced:
    """Written cells that did not land where they were meant to."""

    rows: dict[int, str]  # row index -> the SKU found there instead of the one meant
    columns: dict[str, str]  # column key -> the header found at its index instead

    def __bool__(self) -> bool:
        return bool(self.rows or self.columns)


def misplaced(answer: Mapping[str, Any], tab: Tab, writes: Writes) -> Misplaced | None:
    """Compare the commit's answer (the sheet right after it) with what the writes meant.

    None when the answer carries no snapshot (the landing was learned from the marker).
    """
    snapshot = answer.get("updatedSpreadsheet")
    if not isinstance(snapshot, Mapping):
        return None
    sheet = next(
        (
            s
            for s in snapshot.get("sheets", [])
            if s.get("properties", {}).get("sheetId") == tab.sheet_id
        ),
        None,
    )
    found: dict[tuple[int, int], str] = {}
    for data in (sheet or {}).get("data", []):
        r0, c0 = int(data.get("startRow", 0)), int(data.get("startColumn", 0))
        for r, line in enumerate(data.get("rowData", [])):
            for c, cell in enumerate(line.get("values", [])):
                found[r0 + r, c0 + c] = _snapshot_text(cell)
    columns = {}
    header = {c: text for (r, c), text in found.items() if r == 0}
    for key in ("sku", *WRITTEN):
        names = {header_key(n) for n in INVENTORY_HEADERS[key]}
        text = header.get(tab.columns[key], "")
        if header_key(text) not in names:
            columns[key] = text
    sku_col = tab.columns["sku"]
    rows = {
        index: found.get((index, sku_col), "")
        for index, sku in writes.skus.items()
        if found.get((index, sku_col), "").casefold() != sku.casefold()
    }
    return Misplaced(rows, columns)


def _snapshot_text(cell: Mapping[str, Any]) -> str:
    """A CellData's value as the cycle's first read shows it (a formula by its result).

    Only `effectiveValue` is asked for (`SNAPSHOT_FIELDS`): Sheets gives it for every cell that
    holds something, and one value object per cell instead of two halves the memory a first
    cycle's answer of 100,000 SKU cells takes (issue 8).
    """
    value = cell.get("effectiveValue") or {}
    for kind in ("stringValue", "numberValue", "boolValue"):
        if kind in value:
            return cell_text(value[kind])
    return ""


def repair_cells(
    writes: Writes,
    old_tab: Tab,
    now_tab: Tab,
    now_header: Sequence[Any],
    now_skus: Sequence[Sequence[Any]],
    grid: Sequence[Sequence[Any]],
    first_index: Mapping[str, int],
    truth: Mapping[str, Mapping[str, object]],
    *,
    columns_moved: bool = False,
) -> tuple[Writes, dict[int, dict[int, object]], list[str]]:
    """The writes that undo a misplaced commit and make the intended ones where rows are now.

    `writes` were sent by the positions of `old_tab`; `now_tab`, `now_header` and `now_skus`
    are the columns, header row and SKU column as read after the commit; `grid` is the cycle's
    first read (its row 0 the headers then, `first_index` the row of each case-folded SKU);
    `truth` is, per case-folded SKU, what its bot columns hold: the values the commit meant to
    write, else the Stock read right before the commit. Returns the intended writes by current
    rows, the cells to put back {row: {column index: value}}, and notes for the Log.

    With `columns_moved`, a column was inserted or deleted: rows stayed where they were, so
    each written row still belongs to the product it was meant for, even where the write
    landed on its SKU cell (which then no longer names it).
    """
    notes: list[str] = []
    header_at = {index: key for key, index in now_tab.columns.items()}
    first_header = [header_key(h) for h in (grid[0] if grid else [])]
    undo: dict[int, dict[int, object]] = {}
    for key, values in writes.cells.items():
        column = old_tab.columns[key]
        now_key = header_at.get(column)
        text = header_key(now_header[column]) if column < len(now_header) else ""
        # The column the write landed on, as it was at the first read (None: added since).
        then = first_header.index(text) if text and text in first_header else None
        for index in values:
            meant = writes.skus[index]
            now_sku = meant if columns_moved else _grid_text(now_skus, index)
            if now_key == key and now_sku.casefold() == meant.casefold():
                continue  # landed right
            sku = now_sku.casefold()
            value: object
            if not now_sku or then is None:
                value = None  # a row or a column added meanwhile was blank
            elif now_key is not None and now_key in truth.get(sku, {}):
                value = truth[sku][now_key]
            elif sku in first_index:
                line = grid[first_index[sku]]
                value = line[then] if then < len(line) else None
            else:
                notes.append(
                    _(
                        "row {row} ({sku}) was added during the cycle and a cell of its "
                        "'{column}' column may have been overwritten: check it"
                    ).format(
                        row=index + 1,
                        sku=now_sku,
                        column=now_header[column] if column < len(now_header) else "",
                    )
                )
                continue
            undo.setdefault(index, {})[column] = None if value == "" else value
    where = {
        _grid_text(now_skus, i).casefold(): i
        for i in range(1, len(now_skus))
        if _grid_text(now_skus, i)
    }
    redo = Writes()
    for index, sku in writes.skus.items():
        place = index if columns_moved else where.get(sku.casefold())
        if place is None:
            notes.append(f"{sku} is no longer in the sheet; its cells were not written")
            continue
        for key, values in writes.cells.items():
            if index in values:
                redo.put(key, place, sku, values[index])
    return redo, undo, notes
