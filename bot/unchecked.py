"""A commit the bot stopped before checking its landing: where its writes went.

The cycle's commit writes Stock, Shown and Status cells by position; staff may move columns in
its very instant. `Cycle._check_landing` sees that in the commit's own answer, but a bot
stopped (kill -9, power loss) between the commit and that check has only what the commit kept
in the state file (`Changes.written_at`, `written_cells`, `written_lines`, with `written`):
the next cycle's `Cycle._columns_after_stop` compares it with its first read, using the pure
functions here, and sets things right through the suspects (`Cycle._restore_suspects`) and
the owed cells (`bot.owed`, put back by `Cycle._put_back_owed`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.inventory import Row
from bot.owed import Owed, rows_by_sku, text_at
from bot.positions import WRITTEN, Writes
from bot.rules import cell_text, shown_quantity
from bot.sheet.layout import header_key

__all__ = [
    "Renamed",
    "carries",
    "held_before",
    "moved_back",
    "own_shown",
    "rows_taking",
    "sku_cells_taken",
    "staff_cells_taken",
    "staff_cells_written",
    "stock_suspects",
    "took_after_sort",
    "unread_cells_taken",
]


def held_before(lines: Mapping[str, Any], index: int, header: str) -> tuple[Any] | None:
    """What the column headed `header` held in written row `index` at the first read of the
    commit that wrote it (`Changes.written_lines`), in a 1-tuple; None when not kept."""
    names = [header_key(h) for h in lines.get("header", [])]
    if names.count(header_key(header)) != 1:
        return None
    at = names.index(header_key(header))
    for row, line in lines.get("rows", []):
        if row == index:
            return (line[at] if at < len(line) else "",)
    return None


def moved_back(
    grid: Sequence[Sequence[Any]],
    columns: Mapping[str, int],
    writes: Writes,
    held: Mapping[int, int | None],
    baseline: Mapping[str, int],
) -> dict[str, int | str | None] | None:
    """Products whose Stock a commit's writes missed, when its columns are where it wrote.

    Staff may move columns in a commit's instant and back before the next cycle: the headers
    are where the commit wrote, but its writes landed elsewhere. Shown and Status are the bot's
    own columns, written by nobody else: a row still holding its product whose written Shown or
    Status cell does not hold the value written shows it. Then, for every row the commit wrote
    (columns move for all rows at once): a Stock cell still holding the Stock it held before
    (not the value written) missed its write, and one holding the Shown or Status written to
    its row, where the state file holds another Stock, took that write (as `_restore_suspects`
    judges a row that took another product's write). Each is suspect with the value its cell
    holds. None when nothing shows such a move. A row missing its write while another
    product's row holds all of it (Stock, Shown, Status) shows rows moved and back, not
    columns: `_restore_suspects` looks for that row by the cells kept.
    """

    def text(index: int, column: int) -> str:
        line = grid[index] if index < len(grid) else []
        return cell_text(line[column]) if column < len(line) else ""

    def ours(index: int) -> bool:
        return text(index, columns["sku"]).casefold() == writes.skus[index].casefold()

    folded = {sku.casefold(): value for sku, value in baseline.items()}
    taken: dict[tuple[str, str], list[int]] | None = None

    def elsewhere(index: int) -> bool:
        """Another product's row holds the Stock, Shown and Status written at `index`, a Stock
        the state file does not hold for it: rows moved and back, not columns (review
        attacks 40: `_restore_suspects` looks for that row)."""
        nonlocal taken
        wrote = {k: v[index] for k, v in writes.cells.items() if index in v}
        if "stock" not in wrote or "shown" not in wrote:
            return False
        if taken is None:
            taken = {}
            for i in range(1, len(grid)):
                key = (text(i, columns["stock"]), text(i, columns["shown"]))
                taken.setdefault(key, []).append(i)
        stock = cell_text(wrote["stock"])
        for i in taken.get((stock, cell_text(wrote["shown"])), []):
            sku = text(i, columns["sku"]).casefold()
            if (
                sku != writes.skus[index].casefold()
                and cell_text(folded.get(sku)) != stock
                and (
                    "status" not in wrote
                    or text(i, columns["status"]) == cell_text(wrote["status"])
                )
            ):
                return True
        return False

    missed = any(
        ours(index) and text(index, columns[key]) != cell_text(value) and not elsewhere(index)
        for key in ("shown", "status")
        for index, value in writes.cells.get(key, {}).items()
    )
    if not missed:
        return None
    found: dict[str, int | str | None] = {}
    for index, sku in writes.skus.items():
        if not ours(index):
            continue  # rows moved since: `_restore_suspects` looks at those
        stock = text(index, columns["stock"])
        wrote = writes.cells.get("stock", {})
        before = held.get(index)
        if (
            index in wrote
            and before is not None
            and stock == cell_text(before) != cell_text(wrote[index])
        ):
            found[sku] = before
        for key in ("shown", "status"):
            value = writes.cells.get(key, {}).get(index)
            if (
                isinstance(value, int | str)
                and stock
                and stock == cell_text(value)
                and cell_text(folded.get(sku.casefold())) != stock
            ):
                found[sku] = value
    return found


def staff_cells_taken(
    grid: Sequence[Sequence[Any]],
    columns: Mapping[str, int],
    at: Mapping[str, int],
    writes: Writes,
    lines: Mapping[str, Any],
) -> list[Owed]:
    """After `moved_back`: the staff cells of the rows written that a write could have reached
    and that now hold its value, having held something else at the commit's first read
    (`written_lines`), owed back to that. None kept: nothing is known.

    Where the columns were in the commit's instant is not known, and staff may have typed any
    value since, so a staff cell is owed only where a write could have landed in it: columns
    move as a whole, so a staff column holding every Shown (or every Status) the commit wrote,
    in each row it wrote one to (at least one of them new there), shows by how many columns the
    writes were shifted; a cell
    is owed only at a written index less such a shift (review attacks 38: a Display typed
    since, equal to a value written to the row's Stock, is staff's). No Shown or Status write
    found in a staff column (they landed in columns deleted since): nothing is owed.
    """
    header = grid[0] if grid else []
    ours = {columns[key] for key in ("sku", *WRITTEN)}

    def line_of(index: int) -> Sequence[Any] | None:
        line = grid[index] if index < len(grid) else []
        found = cell_text(line[columns["sku"]]) if columns["sku"] < len(line) else ""
        return line if found.casefold() == writes.skus[index].casefold() else None

    def was(index: int, column: int, value: object) -> tuple[Any] | None:
        """What a staff cell now holding `value` held before, when it held something else."""
        line = line_of(index)
        text = cell_text(header[column]) if 0 <= column < len(header) else ""
        if line is None or column in ours or not text or column >= len(line):
            return None
        now = cell_text(line[column])
        before = held_before(lines, index, text)
        if not now or now != cell_text(value) or before is None or cell_text(before[0]) == now:
            return None
        return before

    def witness(key: str, column: int) -> bool:
        """Every row written `key` (still its product's) holds its write in `column`, and at
        least one held something else there: the whole column took those writes."""
        values = writes.cells.get(key, {})
        rows = [(i, v, line) for i, v in values.items() if (line := line_of(i)) is not None]
        return any(was(i, column, v) is not None for i, v, _line in rows) and all(
            column < len(line) and cell_text(line[column]) == cell_text(v) for _i, v, line in rows
        )

    shifts = {
        at[key] - column
        for key in ("shown", "status")
        if key in at
        for column in range(len(header))
        if column != at[key] and witness(key, column)
    }
    owed: list[Owed] = []
    seen: set[tuple[int, int]] = set()
    for key, values in writes.cells.items():
        for shift in sorted(shifts) if key in at else ():
            column = at[key] - shift
            for index, value in values.items():
                before = was(index, column, value)
                if before is None or (index, column) in seen:
                    continue
                seen.add((index, column))
                line = grid[index]
                text = cell_text(header[column])
                back = None if before[0] == "" else before[0]
                owed.append(Owed(writes.skus[index], 0, text, 0, back, line[column]))
    return owed


@dataclass
class Renamed:
    """Writes of an unchecked commit that landed on SKU cells (`sku_cells_taken`)."""

    owed: list[Owed] = field(default_factory=list)  # put back by position, checked
    rows: set[int] = field(default_factory=set)  # their row indexes (rows not moved since)
    named: list[int] = field(default_factory=list)  # rows left to staff, named in the Log


def sku_cells_taken(
    grid: Sequence[Sequence[Any]],
    now: Mapping[str, int],
    at: Mapping[str, int],
    writes: Writes,
    held: Mapping[int, int | None],
    baseline: Mapping[str, int],
) -> Renamed:
    """The SKU cells an unchecked commit's writes landed on (the SKU column moved onto one of
    the indexes it wrote to), owed back to the row's SKU.

    Nothing else rewrites a SKU cell, and the row can no longer be named by its SKU: it is
    named by its index (rows stay in place when only columns move) with a check (`Owed.check`),
    the Stock its row's Stock cell must hold: the write that landed there, else the Stock it
    held before the commit (its own write missed it), else the state file's. The cell is put
    back only while it holds exactly the bot's value and that check holds. A SKU cell holding
    the bot's value where the check cannot be made or fails (rows sorted since, the Stock
    edited) is left to staff and named in the Log; so is one that rows moved elsewhere.
    """
    out = Renamed()
    sku_at, stock_at = now["sku"], now["stock"]
    header = grid[0] if grid else []
    stock_header = cell_text(header[stock_at]) if stock_at < len(header) else ""
    folded = {sku.casefold(): value for sku, value in baseline.items()}
    present = rows_by_sku(grid, sku_at)
    for key, values in writes.cells.items():
        if at[key] != sku_at:
            continue
        for index, value in values.items():
            sku, wrong = writes.skus[index], cell_text(value)
            if text_at(grid, index, sku_at) != wrong or not wrong:
                if wrong and wrong.casefold() in present and sku.casefold() not in present:
                    out.named.extend(present[wrong.casefold()])
                continue  # staff put it right, or rows moved since
            landed = [v[index] for k, v in writes.cells.items() if at[k] == stock_at and index in v]
            if landed:
                expect: object = landed[0]
            elif index in writes.cells.get("stock", {}) and held.get(index) is not None:
                expect = held[index]
            else:
                expect = folded.get(sku.casefold())
            if expect is None or not stock_header:
                out.named.append(index)
                continue
            check = (stock_header, cell_text(expect))
            out.owed.append(Owed("", index, cell_text(header[sku_at]), 0, sku, value, check))
            out.rows.add(index)
    return out


def stock_suspects(
    writes: Writes,
    at: Mapping[str, int],
    now: Mapping[str, int],
    held: Mapping[int, int | None],
) -> dict[str, int | str | None]:
    """Columns moved since the commit wrote at the indexes `at`: the products whose Stock write
    missed their Stock column (suspect with the Stock their cell held before, `held`), and
    those whose Stock cell took another column's write (suspect with that value)."""
    found: dict[str, int | str | None] = {}
    for key, values in writes.cells.items():
        for index, value in values.items():
            sku = writes.skus[index]
            if key == "stock" and at[key] != now["stock"]:
                found.setdefault(sku, held.get(index))
            elif key != "stock" and at[key] == now["stock"]:
                # Another column's write wins, as in `_check_landing` ("stock" comes first).
                found[sku] = value if isinstance(value, int | str) else None
    return found


def unread_cells_taken(
    grid: Sequence[Sequence[Any]],
    now: Mapping[str, int],
    writes: Writes,
    lines: Mapping[str, Any],
) -> list[Owed]:
    """Rows moved in an unchecked commit's instant (its columns where it wrote) whose product's
    Stock its first read could not read: their Stock and Shown cells that hold another
    product's write, owed back as staff left them (`written_lines["unread"]`: [SKU, Stock,
    Shown]).

    The state file's Stock for such a product is from before the unreadable value was typed:
    set back to it (a suspect), the cell staff left would be lost and that Stock pushed
    (review attacks 20). Put back, the row stays reported and nothing is pushed for it. Its
    Shown too: no cycle writes Shown for a row that cannot be pushed. Not kept: nothing owed.

    Each such row is looked for by its SKU: rows sorted (or one inserted) since the commit
    move it off the index written to (review attacks 40). Away from that index, a row took a
    write only where it holds both the Stock and the Shown written at one index, a Shown it did
    not hold before: nothing else changes that cell, so a Stock typed since is not taken for it.
    """
    left = {str(entry[0]).casefold(): entry[1:] for entry in lines.get("unread", [])}
    found = rows_by_sku(grid, now["sku"]) if left else {}
    stock_at, shown_at = writes.cells.get("stock", {}), writes.cells.get("shown", {})
    # The indexes written by their Stock and Shown: a moved row is matched by what it holds
    # (up to `NARROW_MAX_ROWS` rows of each, not every pair of them).
    by_cells: dict[tuple[str, str], list[int]] = {}
    for i, value in stock_at.items() if left else ():
        if i in shown_at:
            by_cells.setdefault((cell_text(value), cell_text(shown_at[i])), []).append(i)
    owed: list[Owed] = []
    for key, was in left.items():
        if len(found.get(key, [])) != 1:
            continue  # not in the sheet, or in several rows: nothing tells which took it
        index = found[key][0]
        meant = writes.skus.get(index)
        if meant is not None and meant.casefold() == key:
            continue  # the writes' own row
        sources = [index] if meant is not None else []
        holds = (text_at(grid, index, now["stock"]), text_at(grid, index, now["shown"]))
        sources += [
            i
            for i in by_cells.get(holds, [])
            if i != index and _took_whole(grid, now, writes, index, i, was)
        ]
        for source in sources:
            cells = _cells_taken(grid, now, writes, index, source, was)
            if cells:
                owed += cells
                break
    return owed


def _took_whole(
    grid: Sequence[Sequence[Any]],
    now: Mapping[str, int],
    writes: Writes,
    index: int,
    source: int,
    was: Sequence[Any],
) -> bool:
    """Whether row `index` holds the Stock and the Shown written at row `source`, a Shown other
    than the one it held (`was`: its Stock and Shown as first read)."""
    if writes.skus[source].casefold() == text_at(grid, index, now["sku"]).casefold():
        return False
    for key in ("stock", "shown"):
        value = writes.cells.get(key, {}).get(source)
        if value is None or text_at(grid, index, now[key]) != cell_text(value):
            return False
    return len(was) > 1 and text_at(grid, index, now["shown"]) != cell_text(was[1])


def _cells_taken(
    grid: Sequence[Sequence[Any]],
    now: Mapping[str, int],
    writes: Writes,
    index: int,
    source: int,
    was: Sequence[Any],
) -> list[Owed]:
    """The Stock and Shown cells of row `index` that hold what was written at row `source`,
    other than what they held (`was`), owed back to that."""
    owed: list[Owed] = []
    sku = text_at(grid, index, now["sku"])
    for key, before in zip(("stock", "shown"), was, strict=False):
        values = writes.cells.get(key, {})
        column = now[key]
        text = text_at(grid, index, column)
        if source not in values or not text or text != cell_text(values[source]):
            continue  # no write of that column here, or staff typed over it since
        if text != cell_text(before):
            back = None if before == "" else before
            header = text_at(grid, 0, column)
            owed.append(Owed(sku, 0, header, 0, back, grid[index][column]))
    return owed


def staff_cells_written(
    grid: Sequence[Sequence[Any]],
    now: Mapping[str, int],
    at: Mapping[str, int],
    writes: Writes,
    lines: Mapping[str, Any],
    renamed: Renamed,
) -> tuple[dict[int, dict[int, object]], dict[int, dict[int, object]]]:
    """Columns moved since the commit wrote at the indexes `at`: the cells of other columns its
    writes landed in and that still hold them, as (undo, named). `undo` (by the commit's row
    index): what to put back, blank in a column added since, else what the commit's first read
    held there (`lines`); `named` (by the row now): cells whose earlier value is not known,
    for staff to check. Each written row is found by its SKU (rows may have been sorted since),
    or where it was while its SKU cell holds a write (`renamed`, put back first)."""
    header = grid[0] if grid else []
    sku_at = now["sku"]
    ours = {now[key] for key in WRITTEN}
    by_sku = rows_by_sku(grid, sku_at)
    undo: dict[int, dict[int, object]] = {}
    named: dict[int, dict[int, object]] = {}
    for key, values in writes.cells.items():
        column = at[key]
        if column in ours or column == sku_at:
            continue  # the bot's own columns: Stock by the suspects, the others rewritten
        text = cell_text(header[column]) if column < len(header) else ""
        for index, value in values.items():
            found_at = (
                [index] if index in renamed.rows else by_sku.get(writes.skus[index].casefold(), [])
            )
            if len(found_at) != 1:
                continue  # deleted, or in several rows: nothing to check it against
            row = found_at[0]
            if text_at(grid, row, column) != cell_text(value):
                continue  # staff typed over it since
            if not text:  # a column added meanwhile: it was blank
                undo.setdefault(index, {})[column] = None
            elif (was := held_before(lines, index, text)) is not None:
                undo.setdefault(index, {})[column] = None if was[0] == "" else was[0]
            else:
                named.setdefault(row, {})[column] = None
    for row in renamed.named:
        named.setdefault(row, {})[sku_at] = None
    return undo, named


def own_shown(row: Row | None, baseline: Mapping[str, int]) -> str | None:
    """The Shown a row's own Stock (its `baseline`, case-folded) and Display show, as text;
    None when either cannot be read. A write of that Shown does not tell the row took it."""
    was = baseline.get(row.sku.casefold()) if row is not None else None
    if row is None or was is None or row.display is None:
        return None
    return cell_text(shown_quantity(was, row.display))


def carries(
    line: Sequence[Any],
    columns: Mapping[str, int],
    index: int,
    cells: Mapping[str, Mapping[int, object]],
    *,
    shows: str | None = None,
) -> bool:
    """Whether a row's `line` holds the Shown and Status cells an unchecked commit wrote at row
    `index` (`cells`, kept with its columns found in place; True for those not kept). Nobody
    else writes them, so a row without them did not take that commit's writes at `index`.
    With `shows` (`own_shown`), a Shown written equal to the one the row's own Stock and
    Display show is not held as proof (review attacks 40: a row sorted there since)."""
    for key in ("shown", "status"):
        value = cells.get(key, {}).get(index)
        if value is None or key not in columns:
            continue
        at = columns[key]
        if cell_text(line[at] if at < len(line) else "") != cell_text(value):
            return False
        if key == "shown" and shows is not None and shows == cell_text(value):
            return False
    return True


def took_after_sort(
    rows: Sequence[Row],
    missed: Mapping[int, tuple[str, int]],
    cells: Mapping[str, Mapping[int, object]],
    baseline: Mapping[str, int],
) -> dict[str, int]:
    """The products whose rows took an unchecked commit's Stock writes, found by SKU after
    rows were sorted since: {SKU: the value written} (`rows_taking`, by product)."""
    return {
        sku: missed[index][1] for index, sku in rows_taking(rows, missed, cells, baseline).items()
    }


def rows_taking(
    rows: Sequence[Row],
    missed: Mapping[int, tuple[str, int]],
    cells: Mapping[str, Mapping[int, object]],
    baseline: Mapping[str, int],
) -> dict[int, str]:
    """Which product's row took each of an unchecked commit's Stock writes, found by SKU after
    rows were sorted since: {the row index written to: the SKU of the row that took it}.

    `missed`: row index -> (the product meant, the Stock written) for the writes whose row
    holds another product now that did not take them (rows sorted since the commit's
    instant). A row carries the cells written to it wherever it moves: the one that took the
    write at `index` holds that Stock, which its own baseline (`baseline`, case-folded) is not,
    and the Shown (and Status, if one was written) the commit wrote at `index` (`cells`, its
    columns found in place), a Shown its own Stock and Display would not show. A staff edit
    leaves the Shown the bot wrote for the row, so a Stock typed since is not taken for the
    write. Found only when exactly one row fits (as many rows as writes alike); a write with no
    Shown written beside it (the row's Shown did not change) cannot be told from a staff edit,
    and is left as one.
    """
    shown_at, status_at = cells.get("shown", {}), cells.get("status", {})
    wanted = {
        (value, cell_text(shown_at[index]))
        for index, (_meant, value) in missed.items()
        if isinstance(shown_at.get(index), int)
    }
    if not wanted:
        return {}
    fits: dict[tuple[int, str], list[Row]] = {}
    for row in rows:
        if row.stock is None or not row.matchable or row.is_set:
            continue
        key = (row.stock, cell_text(row.shown_cell))
        was = baseline.get(row.sku.casefold())
        if key not in wanted or was is None or was == row.stock:
            continue
        if own_shown(row, baseline) == key[1]:
            continue  # the Shown its own Stock shows: nothing tells the write from an edit
        fits.setdefault(key, []).append(row)
    # Writes alike (the same Stock, Shown and Status) are looked for together: as many rows
    # fitting as writes means each took one (review attacks 40: two sold rows' 8 and 8).
    alike: dict[tuple[int, str, str | None], dict[int, str]] = {}
    for index, (meant, value) in missed.items():
        shown = shown_at.get(index)
        if isinstance(shown, int):
            status = status_at.get(index)
            alike_key = (value, cell_text(shown), None if status is None else cell_text(status))
            alike.setdefault(alike_key, {})[index] = meant.casefold()
    found: dict[int, str] = {}
    for (value, shown_text, status_text), group in alike.items():
        rows_found = [
            row
            for row in fits.get((value, shown_text), [])
            if row.sku.casefold() not in group.values()
            and (status_text is None or cell_text(row.status_cell) == status_text)
        ]
        if len(rows_found) == len(group):  # alike writes: which row took which does not matter
            found |= {index: row.sku for index, row in zip(sorted(group), rows_found, strict=True)}
    return found
