"""Where each product's row and each bot column are, checked at the last moment and after.

Staff may insert, delete, move and sort rows and columns at any time, also while a cycle runs
(SPEC.md section 4, rows and columns may move). The Sheets API writes cells by position and has
no conditional write, so the cycle addresses by identity in three steps:

1. **Re-read right before the commit** (`reread`). Usually a *narrow* read (`narrow_ranges`):
   the header row, and the SKU and Stock cells of only the rows the commit writes (plus the
   component rows of a set it writes, and the bottom of the table). When those answer as the
   first read did, the commit follows at once. When the commit writes more rows than a narrow
   read pays for (`NARROW_MAX_ROWS`) and no Stock (a first cycle writes Shown and Status to
   every row), the narrow read takes the header row and the bottom of the table, and step 2
   alone checks the rows (`Writes.checked_first`). Otherwise, or when anything changed, the
   *full* read: the header row, the whole SKU column and the whole
   Stock column. Columns are found again by their headers (a second read follows only when
   they moved); rows are matched by SKU, so a sorted or shifted sheet is re-planned onto the
   rows where each product is now. A product that vanished or became ambiguous is left out of
   this cycle's writes.
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

Why the narrow read is enough (SPEC.md section 4, no lost staff edits; rows and columns may
move). The commit writes the Stock, Shown and Status cells of some rows, and nothing else of
the Inventory tab. Each of those rows is checked at the last moment twice over: its SKU cell
still names the product the writes are meant for (so nothing lands in another product's row),
and its Stock cell still holds what the plan started from (so no staff edit is overwritten; a
changed one sends the cycle down the full read and re-plan, which logs it `manual`). A row
the commit does not write keeps whatever staff typed: its edit is compared next cycle with
the baseline the state file still holds for it, logged `manual` and pushed then, never lost.
What the full read saw and the narrow one does not, case by case:

- Columns inserted, deleted or moved: the header row is in the narrow read; any change of
  where a column is takes the full read.
- Rows inserted, deleted, moved or sorted: a written row that now holds another product, or
  the same product with another Stock, takes the full read. So does anything found below the
  table's last SKU or Stock cell of the first read, or a change of that last cell: rows added
  at the bottom or inserted anywhere above it shift it. Rows that moved without touching any
  of these cells moved among rows the commit does not write.
- A set product: its Stock is computed from its components' Stock, so the component rows of
  every set the commit writes are checked too; an edited component takes the full read.
- A row copied so that a SKU the commit writes is now also in a row it does not read (pasted
  into a blank row inside the table): the row checked still holds that product and its Stock,
  so the write lands where it belongs. The full read did the same (every row of the first
  read unchanged: a row filled in a gap is not ours); the next cycle sees the copies and holds
  the product's orders until staff keep one row (`bot.apply`), as for any copy.
- A Stock edited in a row the commit does not write: caught up next cycle, as above; if that
  product is pushed this cycle, it gets the quantity of the first read, and the next cycle
  pushes the edited one (what a full read allowed for an edit landing after it anyway).
- A commit landing on rows moved inside its own round trip (step 2) is put right from what
  the re-read saw: for a product whose row it did not read, the Stock of the first read, so a
  Stock staff edited during the cycle in such a row, overwritten by that misplaced write, is
  put back to the older value; the repair's Log row names the row and asks staff to check it
  (`repair_cells`, stale). This needs a move inside the commit's round trip, the same instant
  as the staff-edit window; the full read narrowed it to edits made inside that window too.
- A commit writing Shown and Status, and no Stock, to thousands of rows (a first cycle, a
  Display changed for the whole sheet) checks only the header row and the bottom first. Rows
  that moved unseen since the first read (a sort that kept the bottom row) show in the
  commit's answer (step 2) and are put right at once; the cells put back are Shown and Status,
  never Stock, and the Log says rows were moved while the bot synced. A Stock typed meanwhile
  is never overwritten (the commit writes no Stock) and is caught up next cycle, as for a row
  the commit does not write. A large commit that writes Stock too takes the full read.
- The lease and the commit marker are developer metadata, read with the spreadsheet's tabs and
  in the commit's own answer, never through this read; the Log rows are appended after the
  Log tab's last row by the commit itself (`appendCells`), and a full Log tab is renamed in
  the same commit (`bot.rollover`): none of them depend on the Inventory cells re-read here.

The narrow read is one `spreadsheets.values.batchGetByDataFilter` request (Sheets API v4
reference, that method and DataFilter): a POST with one `a1Range` filter per run of
consecutive rows (from SKU to Stock, or one per column when they are far apart), since a
`values:batchGet` URL with hundreds of scattered ranges would grow too long
(`SheetClient.read_cells`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bot.errors import SheetError, SheetStructureError
from bot.i18n import _
from bot.inventory import Row
from bot.rules import CellError, cell_text, parse_stock
from bot.sheet.client import SheetClient
from bot.sheet.layout import INVENTORY_HEADERS, Tab, column_letters, header_key, map_columns
from bot.sheet.writes import column_runs

__all__ = [
    "NARROW_MAX_ROWS",
    "SKU_HEADERS",
    "STOCK_HEADERS",
    "Columns",
    "Misplaced",
    "Reread",
    "Writes",
    "left_out",
    "misplaced",
    "misplaced_in",
    "moved_columns",
    "narrow_ranges",
    "read_positions",
    "repair_cells",
    "reread",
    "row_runs",
]

SKU_HEADERS = frozenset(header_key(n) for n in INVENTORY_HEADERS["sku"])
STOCK_HEADERS = frozenset(header_key(n) for n in INVENTORY_HEADERS["stock"])

WRITTEN = ("stock", "shown", "status")  # the columns a commit writes, in this order

# Beyond this many rows to check, the re-read reads the whole SKU and Stock columns instead of
# their cells in the written rows. A narrow read costs the server a range (parse, look-up,
# the filter echoed in the answer) per run of rows, where a column read costs a cell per row;
# a commit writing thousands of rows (a first cycle writes Shown and Status of every row) is
# most of a large sheet, scattered into as many runs, so its narrow read would cost as much
# as the full one and could not skip the fallback's second read when anything moved. A
# cycle's orders touch a few hundred rows, far below this.
NARROW_MAX_ROWS = 2_000
# SKU and Stock columns this close are read as one range per run of rows, the cells between
# them coming along: a range costs the server more than a few cells (with SKU in A and Stock
# in C, this halves the ranges of a narrow read, and the time the stand-in takes to serve it).
SPAN = 8


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

    def checked_first(self) -> Collection[int]:
        """The rows the re-read right before the commit checks; the commit's answer checks all.

        Every written row while they are few enough for a narrow read (`NARROW_MAX_ROWS`).
        Past that, none when the commit writes no Stock at all (a first cycle writes only Shown
        and Status, to every row): those cells are bot-owned, so a row that moved meanwhile is
        found in the commit's own answer (`misplaced`) and put right at once (`repair_cells`
        puts back only the cells the commit wrote, never a Stock). Checking them first made
        staff wait for a read of the whole SKU and Stock columns: 0.6 s at 100,000 rows against
        the stand-in, the longest staff-edit window of all (issue 8). A large commit that also
        writes Stock still checks every row first (the full read): a Stock write landing on a
        row moved in the commit's instant is put back from what the re-read saw there, and a
        Stock staff typed during the cycle in a row it did not see would be lost.
        """
        if len(self.skus) <= NARROW_MAX_ROWS or self.cells.get("stock"):
            return self.skus
        return ()

    def response_ranges(self, tab: Tab) -> list[str]:
        """The header row and the SKU cells of every written row: what to check afterwards."""
        letter = column_letters(tab.columns["sku"])
        runs = row_runs(self.skus)
        return [f"{tab.a1}!1:1"] + [f"{tab.a1}!{letter}{a + 1}:{letter}{b + 1}" for a, b in runs]


def row_runs(indexes: Iterable[int]) -> list[tuple[int, int]]:
    """Row indexes as runs of consecutive rows, (first, last) inclusive, in ascending order."""
    runs: list[tuple[int, int]] = []
    for index in sorted(set(indexes)):
        if runs and runs[-1][1] == index - 1:
            runs[-1] = (runs[-1][0], index)
        else:
            runs.append((index, index))
    return runs


def _blocks(tab: Tab) -> list[tuple[int, int]]:
    """The column spans (first, last) a narrow read takes of each run of rows."""
    sku, stock = tab.columns["sku"], tab.columns["stock"]
    low, high = min(sku, stock), max(sku, stock)
    return [(low, high)] if high - low < SPAN else [(sku, sku), (stock, stock)]


def narrow_ranges(tab: Tab, runs: Sequence[tuple[int, int]], tail: int) -> list[str]:
    """The narrow re-read's ranges: the header row; per run of rows, its SKU and Stock cells
    (one range, or one per column when they are far apart: `SPAN`); then the same columns
    from row index `tail` down to the end of the tab."""
    ranges = [f"{tab.a1}!1:1"]
    for first, last in [*runs, (tail, None)]:
        end = "" if last is None else str(last + 1)
        for left, right in _blocks(tab):
            ranges.append(
                f"{tab.a1}!{column_letters(left)}{first + 1}:{column_letters(right)}{end}"
            )
    return ranges


def _column_of(grids: Sequence[Sequence[Any]], blocks: Sequence[tuple[int, int]], at: int) -> Any:
    """Column `at` from the column-major answers to one run's `_blocks` (`[]` if empty)."""
    for grid, (left, right) in zip(grids, blocks, strict=True):
        if left <= at <= right:
            return grid[at - left] if at - left < len(grid) else []
    raise AssertionError(f"column {at} was not read")  # pragma: no cover


@dataclass
class Reread:
    """What the read right before the commit found."""

    tab: Tab  # the Inventory tab with its columns as they are now
    rows: list[Row]  # the rows that can be written, at their current index, Stock as now
    changed: bool  # a Stock edit or a move: the plan must be made again
    notes: list[str]  # what moved, for the process log and the Log tab
    # The case-folded SKUs whose Stock this read saw (the narrow read); None: every row's.
    seen: frozenset[str] | None = None


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

    def height(self) -> int:
        """Rows down to the last SKU or Stock cell that is not empty (header row included)."""
        return max(len(self.skus), len(self.stocks))

    def cells(self, index: int) -> tuple[Any, Any]:
        """The SKU and Stock cells of one row as read (`""` when empty)."""
        return (
            self.skus[index] if index < len(self.skus) else "",
            self.stocks[index] if index < len(self.stocks) else "",
        )

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
    written: Collection[int] | None = None,
) -> Reread:
    """Header row, SKU and Stock right before the commit; rows matched again by SKU.

    `keep` names (case-folded) SKUs whose Stock the cycle writes back from the state file:
    their cells are known to be wrong, so what they hold is no staff edit. `basis` is the SKU
    and Stock columns of the read `rows` come from: when the re-read answers them unchanged,
    cell for cell, nothing moved and no Stock was edited, and the commit can follow at once.
    `written` are the indexes (as in `rows`) of the rows the commit writes: with `basis`, the
    narrow read checks those rows first, and the full read follows only if it finds a change.
    """
    if basis is not None and written is not None:
        check = _checked_rows(rows, written)
        if check is not None and _narrow_unchanged(sheet, tab, check, keep, basis):
            seen = frozenset(row.sku.casefold() for row in check)
            return Reread(tab, list(rows), False, [], seen)
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


def _checked_rows(rows: Sequence[Row], written: Collection[int]) -> list[Row] | None:
    """The rows a narrow re-read checks: the written ones and the components of written sets.

    None when the narrow read does not pay (more than `NARROW_MAX_ROWS`) or a written index is
    no row of the first read (then only the full read can tell).
    """
    if len(written) > NARROW_MAX_ROWS:
        return None
    wanted = set(written)
    # Only the written rows, and every row by SKU only when a written row is a set: a large
    # sheet has 100,000 rows, a cycle writes a few hundred (issue 8).
    by_index = {row.index: row for row in rows if row.index in wanted}
    if len(by_index) < len(wanted):
        return None
    check = {index: by_index[index] for index in written}
    if any(by_index[index].components for index in written):
        by_sku: dict[str, list[Row]] = {}
        for row in rows:
            if row.sku:
                by_sku.setdefault(row.sku.casefold(), []).append(row)
        for index in written:
            for component in by_index[index].components or ():
                for row in by_sku.get(component.sku.casefold(), []):
                    check[row.index] = row
    return list(check.values()) if len(check) <= NARROW_MAX_ROWS else None


def _narrow_unchanged(
    sheet: SheetClient, tab: Tab, check: Sequence[Row], keep: Collection[str], basis: Columns
) -> bool:
    """Whether the header row, the checked rows and the bottom of the table are as first read.

    One request (`narrow_ranges`), read as `_read_columns` reads (formulas as their text,
    column-major). The bottom is the last row holding a SKU or a Stock at the first read and
    everything below it: rows added at the end, or inserted or deleted anywhere above that row
    (which shifts it), show there.
    """
    runs = row_runs(row.index for row in check)
    tail = max(basis.height() - 1, 1)
    header, *cells = sheet.read_cells(
        narrow_ranges(tab, runs, tail), formulas=True, by_columns=True
    )
    try:
        columns = map_columns("inventory", tab.title, [c[0] if c else "" for c in header])
    except SheetStructureError:
        return False  # the full read finds the same and says so
    if columns != dict(tab.columns):
        return False
    blocks = _blocks(tab)
    size = len(blocks)
    groups = [cells[i : i + size] for i in range(0, len(cells), size)]
    sku_at, stock_at = tab.columns["sku"], tab.columns["stock"]
    found: dict[int, tuple[Any, Any]] = {}
    for (first, last), grids in zip(runs, groups, strict=False):
        skus, stocks = _column_of(grids, blocks, sku_at), _column_of(grids, blocks, stock_at)
        for k in range(last - first + 1):
            found[first + k] = (
                skus[k] if k < len(skus) else "",
                stocks[k] if k < len(stocks) else "",
            )
    for row in check:
        sku, stock = found[row.index]
        if not _same_cells(row, sku, None if stock == "" else stock, keep):
            return False
    for at, was in zip((sku_at, stock_at), basis.cells(tail), strict=True):
        column = _column_of(groups[-1], blocks, at)
        now = column[0] if column else ""
        # Compared as read, type and all (`Columns.same`): TRUE is no 1 here.
        if type(now) is not type(was) or now != was or len(column) > 1:
            return False
    return True


def _same_cells(row: Row, sku: Any, stock: Any, keep: Collection[str]) -> bool:
    """Whether a row's SKU and Stock cells (as a FORMULA read answers them) are as first read.

    Raw cells are compared first, and parsed only when they differ (a number typed as text).
    """
    if sku != row.sku and cell_text(sku) != row.sku:
        return False
    if row.sku.casefold() in keep or (type(stock) is int and stock == row.stock):
        return True
    try:
        return parse_stock(stock) == row.stock
    except CellError:
        return row.stock is None


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
        stock = stocks[i][0] if i < len(stocks) and stocks[i] else None
        if not _same_cells(row, sku, stock, keep):
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


def moved_columns(
    header: Sequence[Any], columns: Mapping[str, int], keys: Iterable[str]
) -> dict[str, str]:
    """The columns among `keys` whose index in `columns` no longer holds their header: key ->
    the header text found there instead."""
    out = {}
    for key in keys:
        names = {header_key(n) for n in INVENTORY_HEADERS[key]}
        at = columns[key]
        text = cell_text(header[at]) if at < len(header) else ""
        if header_key(text) not in names:
            out[key] = text
    return out


def misplaced_in(sheet: SheetClient, tab: Tab, writes: Writes) -> Misplaced:
    """Compare what a read shows now with what the writes meant (when no answer could)."""
    letter = column_letters(tab.columns["sku"])
    header, skus = sheet.read([f"{tab.a1}!1:1", f"{tab.a1}!{letter}:{letter}"])
    columns = moved_columns(header[0] if header else [], tab.columns, ("sku", *WRITTEN))
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
    sku_col = tab.columns["sku"]
    # Only the header row and the SKU column are compared: a first cycle's answer holds
    # 100,000 SKU cells, so no other cell is kept (issue 8).
    header: dict[int, str] = {}  # column index -> text
    found: dict[int, str] = {}  # row index -> the SKU cell's text
    for data in (sheet or {}).get("data", []):
        r0, c0 = int(data.get("startRow", 0)), int(data.get("startColumn", 0))
        for r, line in enumerate(data.get("rowData", []), start=r0):
            values = line.get("values", [])
            if r == 0:
                for c, cell in enumerate(values, start=c0):
                    header[c] = _snapshot_text(cell)
            if 0 <= sku_col - c0 < len(values):
                found[r] = _snapshot_text(values[sku_col - c0])
    width = max(header, default=-1) + 1
    found_header = [header.get(c, "") for c in range(width)]
    columns = moved_columns(found_header, tab.columns, ("sku", *WRITTEN))
    rows = {
        index: found.get(index, "")
        for index, sku in writes.skus.items()
        if found.get(index, "").casefold() != sku.casefold()
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


# A repair naming more Stock cells put back than this names their rows in runs, in one note: a
# column moved in the instant of a first cycle's commit puts back every row's Stock.
PUT_BACK_NAMED = 5
PUT_BACK_RUNS = 100  # runs of rows listed in that note, then how many more


def _put_back_notes(put_back: Sequence[tuple[int, str, object]]) -> list[str]:
    """The Log notes asking staff to check Stock cells put back to the first read's values."""
    if len(put_back) <= PUT_BACK_NAMED:
        return [
            _(
                "row {row} ({sku}): its Stock was put back to {value}, as read at the start of "
                "the cycle; if staff changed it during the cycle, type it again"
            ).format(row=index + 1, sku=sku, value=value)
            for index, sku, value in put_back
        ]
    runs = row_runs(index + 1 for index, _sku, _value in put_back)
    named = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs[:PUT_BACK_RUNS])
    if len(runs) > PUT_BACK_RUNS:
        named += " " + _("and {count} more runs of rows").format(count=len(runs) - PUT_BACK_RUNS)
    return [
        _(
            "the Stock of {count} rows ({rows}) was put back to what the cycle read at its "
            "start; if staff changed any of them during the cycle, type it again"
        ).format(count=len(put_back), rows=named)
    ]


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
    stale: Collection[str] = (),
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

    `stale` names (case-folded) products whose Stock in `truth` is the first read's, because
    the narrow re-read did not look at their rows: a Stock cell of theirs put back gets that
    value, and a note asks staff to check it (an edit made during the cycle is not known).
    """
    notes: list[str] = []
    put_back: list[tuple[int, str, object]] = []  # stale Stock cells put back: row, SKU, value
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
                if now_key == "stock" and sku in stale:
                    put_back.append((index, now_sku, value))
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
    notes += _put_back_notes(put_back)
    where = {
        _grid_text(now_skus, i).casefold(): i
        for i in range(1, len(now_skus))
        if _grid_text(now_skus, i)
    }
    redo = Writes()
    for index, sku in writes.skus.items():
        place = index if columns_moved else where.get(sku.casefold())
        if place is None:
            notes.append(
                _("{sku} is no longer in the sheet; its cells were not written").format(sku=sku)
            )
            continue
        for key, values in writes.cells.items():
            if index in values:
                redo.put(key, place, sku, values[index])
    return redo, undo, notes
