"""One cycle: read the sheet, fetch orders, apply them, commit, push, report.

`Cycle._run` reads as the cycle's steps; each step's rules live in its own module:

- `bot.handover`: the state file belongs to this sheet; a commit left pending is settled; every
  sheet write is prepared, sent once and completed (exactly once across crashes);
- `bot.lease`: one bot writes to a sheet at a time, also when a cycle outlasts its lease;
- `bot.apply`: orders and staff edits become Stock changes and Log events (pure);
- `bot.positions`: the rows and columns are found again right before the commit, and the
  commit's own answer shows whether anything moved inside the last round trip (then repaired);
- `bot.pushing`: which quantities each marketplace gets, and recording what it answered;
- `bot.report`: Log rows, Status texts and the Channels tab.

Sheets requests per cycle, whatever the number of SKUs and orders: 2 reads (tabs and developer
metadata; the three tabs' values), 1 read just before the commit (header row, and SKU and Stock
of the rows written, or of every row when the commit writes thousands: `bot.positions`),
1 atomic write (the commit, whose answer carries the check of positions) and 1 write (push
results). More only when there is more to do: 1 read (SKU column) when the pushes change a
row's Status, to find the rows again before writing it; 1 lease write when this bot does not
already hold the sheet (its own answer shows the lease and the commit marker, `bot.lease`);
1 more read, the whole SKU and Stock columns, when the narrow read sees a change (rows moved, a
Stock edited in a row the commit writes), and one more again when columns moved; a read and a
repair write when a commit landed on moved rows; 1 write at the start of the cycle after such
a repair failed, putting back the cells it still owed (`bot.owed`, found in the first read).

The gap between fetching a marketplace's orders and pushing to it: all marketplaces are
fetched at the same time, then the sheet commit is made, then all are pushed at the same
time. A sale made on a marketplace inside that gap can be overwritten by the push for that
long; it is fetched in the next cycle and applied then, and the item is pushed again because
an order event on a marketplace makes its quantity there unknown (`bot.pushing`).
Shopify's compare-and-set closes even that gap.
"""

from __future__ import annotations

import gc
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot import repeats, warnings
from bot.apply import Event, Plan, plan
from bot.channels.base import Channel, FetchResult, PushResult
from bot.config import CHANNEL_NAMES
from bot.errors import SheetError, SheetStructureError, StockbotError, plain
from bot.handover import COMMIT_TRIES, Handover, Marker, Prepared
from bot.i18n import _, log_time, set_language
from bot.inventory import NOT_SOLD, Row, item_key, parse_inventory
from bot.lease import Lease, metadata_values
from bot.ledger import Changes, Ledger, disk_failure
from bot.owed import Owed, locate, lost_text, owed_cells
from bot.positions import (
    NARROW_MAX_ROWS,
    SKU_HEADERS,
    STOCK_HEADERS,
    WRITTEN,
    Columns,
    Misplaced,
    Writes,
    left_out,
    misplaced,
    misplaced_in,
    moved_columns,
    read_positions,
    repair_cells,
    reread,
)
from bot.pushing import PushPlan, guarded, own_events, plan_pushes, push_all
from bot.report import OK, channel_requests, log_row, push_events, status_text
from bot.rollover import (
    GOOGLE_CELL_LIMIT,
    WARN_TOTAL_CELLS,
    Rollover,
    cells_warning,
    plan_rollover,
    total_cells,
)
from bot.rules import cell_text, shown_quantity
from bot.sets import ComponentKind, component_problems, waits
from bot.sheet.client import SheetClient
from bot.sheet.layout import (
    INVENTORY_HEADERS,
    Layout,
    Tab,
    a1_title,
    column_letters,
    find_layout,
    find_tabs,
    header_key,
    sheet_language,
)
from bot.sheet.writes import COMMIT_KEY, append_rows, column_runs
from bot.unchecked import (
    carries,
    moved_back,
    own_shown,
    rows_taking,
    sku_cells_taken,
    staff_cells_taken,
    staff_cells_written,
    stock_suspects,
    unread_cells_taken,
)

__all__ = ["Cycle", "CycleReport", "PushPlan"]

log = logging.getLogger("stockbot")

REPAIR_TRIES = 3
CELLS_NAMED = 20  # owed cells put back that the Log row names one by one (`_cell_names`)
# Closed orders are forgotten this long after they were placed: longer than any marketplace
# still changes an order (Rakuten closes shipped orders after 30 days; Shopify refunds and
# Yahoo returns come within weeks), so the state file stays bounded for years of orders. Age
# is measured from each channel's horizon (`Ledger.horizon`): the latest order time its
# marketplace stamped, no later than the VM's clock. So a VM clock running ahead forgets
# nothing early, and a channel's old orders go once newer ones have come.
RETAIN_ORDERS = timedelta(days=180)
# The ids of forgotten orders are kept this long before the same horizon, then dropped too.
# Longer than Rakuten searches back (729 days); Shopify and Amazon list orders by update time
# and show an order of any age again when it changes (archived, refunded, tagged), so an order
# placed this long before the horizon that the state file does not hold is taken as counted
# (`_not_forgotten`).
RETAIN_IDS = timedelta(days=800)
PRUNE_EVERY = timedelta(days=1)


@dataclass
class CycleReport:
    """What a cycle did, for the CLI and the tests."""

    events: list[Event] = field(default_factory=list)
    pushes: list[PushPlan] = field(default_factory=list)
    failed_channels: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    sheet_reads: int = 0
    sheet_writes: int = 0
    rows: list[Row] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # what a move inside a commit undid
    oversold: dict[str, int] = field(default_factory=dict)  # SKU -> Stock below 0 after it
    # SKUs whose Stock this cycle cannot judge (a copied row, an unreadable cell, a broken
    # set): left out of `oversold`, and their open oversold alerts are left as they are.
    unjudged: list[str] = field(default_factory=list)
    final: dict[str, int] = field(default_factory=dict)  # sku -> Stock after the cycle (sets too)
    log_rolled_over: str = ""  # the new title of a full Log tab this cycle renamed
    paused: list[str] = field(default_factory=list)  # Enabled FALSE in the Channels tab
    refused: dict[str, int] = field(default_factory=dict)  # channel -> items it refused

    @property
    def ok(self) -> bool:
        """Whether every enabled channel synced."""
        return not self.failed_channels


@dataclass
class _Sheet:
    """The sheet as this cycle read it: where things are, and the first read's values."""

    layout: Layout
    grid: list[list[Any]]  # the Inventory tab's values as first read
    first: Tab  # the Inventory tab's columns at the first read
    index: dict[str, int]  # SKU (case-folded) -> its row in `grid`
    channels: list[list[Any]]
    log_header: list[Any] = field(default_factory=list)  # the Log tab's row 1
    rollover: Rollover | None = None  # the Log tab is full: the cycle's commit rolls it over


class Cycle:
    """Runs sync cycles for one sheet, one ledger and a set of channels."""

    def __init__(
        self,
        sheet: SheetClient,
        ledger: Ledger,
        channels: Mapping[str, Channel],
        *,
        timezone: str = "Asia/Tokyo",
        interval_seconds: int = 300,
        now: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        notices: Mapping[str, str] | None = None,
        language: str = "auto",
    ) -> None:
        self.sheet = sheet
        self.language = language  # `auto`, `en` or `ja`: see `sheet_language`
        # What this bot writes in until it has read the headers: its last cycle's language.
        self._written_in = "en" if language == "auto" else language
        # channel -> a warning shown while it has no error (bot.expiry.Notices: rendered late)
        self.notices: Mapping[str, str] = dict(notices or {})
        self.ledger = ledger
        self.channels = dict(channels)
        self.tz = ZoneInfo(timezone)
        self.interval = timedelta(seconds=interval_seconds)
        self.now = now or (lambda: datetime.now(self.tz))
        self.sleep = sleep
        # This bot's name in the sheet's lease: kept in the state file by the first cycle that
        # takes the lease (`_keep_instance`), not here, so that `check` writes nothing.
        instance = ledger.get_meta("instance")
        self._instance_kept = instance is not None
        self.instance = instance or uuid.uuid4().hex[:12]
        self.handover = Handover(sheet, ledger, now=self.now, sleep=sleep)
        self.lease = Lease(
            sheet, self.instance, str(ledger.path.resolve()), self.interval, self.now
        )
        self._status_written: dict[str, str] = {}  # sku -> Status text this cycle's commit set
        # Suspect SKUs whose Stock this cycle writes back, each with what its cell held.
        self._restored: dict[str, int | None] = {}
        self._baseline: dict[str, int] | None = None  # the ledger's, read once until the commit
        self._forget: list[str] = []  # SKUs whose Stock baseline this cycle's commit drops
        self._notes: dict[str, str] = {}  # sku -> Status note: a set, a Stock jump, a cap
        self._warnings: list[Event] = []  # once-a-day notes this cycle's commit logs
        self._column_notes: list[Event] = []  # staff cells a stopped commit's writes took
        self._owed_notes: list[Event] = []  # likewise, of orders a reset carried over
        self._owed_told: dict[str, dict[str, str]] | None = None  # stored after the commit
        self._owed: dict[str, set[str]] = {}  # `Ledger.owed`, read once a cycle
        self._jumps: dict[str, warnings.Jump] = {}  # Stock jumps whose Status asks for a check
        self._owns_collector = False  # this cycle turned Python's cycle collector off

    # -- the cycle -----------------------------------------------------------------------
    def run(self, *, dry_run: bool = False, release: bool = False) -> CycleReport:
        """One cycle; `dry_run` computes everything and writes nothing."""
        reads, writes = self.sheet.reads, self.sheet.writes
        report = CycleReport()
        set_language(self._written_in)
        try:
            with _collector_paused() as paused:
                self._owns_collector = paused
                self._run(report, dry_run=dry_run, release=release)
        except (sqlite3.Error, OSError) as exc:
            # The disk under the state file refused a write: say so plainly (a kill at the
            # same point is what the commit protocol is built for, so nothing doubles).
            failure = disk_failure(self.ledger.path, exc)
            if failure is None:
                raise
            raise failure from exc
        finally:
            report.sheet_reads = self.sheet.reads - reads
            report.sheet_writes = self.sheet.writes - writes
        return report

    def release(self) -> None:
        """Give the sheet up at once (when `run` stops), so another bot need not wait."""
        self.lease.release()

    def _keep_instance(self) -> None:
        """Keep this bot's lease name in the state file before its first lease is taken."""
        if not self._instance_kept:
            self.ledger.set_meta("instance", self.instance)
            self._instance_kept = True

    def _run(self, report: CycleReport, *, dry_run: bool, release: bool) -> None:
        self._restored = {}
        self._held = _Held()
        self._column_notes = []
        self._baseline = None
        metadata = self.sheet.metadata()
        marker = Marker.parse(metadata_values(metadata).get(COMMIT_KEY))
        self.lease.check_start(metadata)  # another bot at work: refuse before anything else
        self.handover.check_identity(marker, dry_run=dry_run)
        if not dry_run:
            self.handover.recover(marker)
        sheet = self._read(metadata)
        enabled, channel_rows = self._enabled(sheet.channels, sheet.layout)
        if not dry_run:
            self._keep_instance()
            self.lease.take()
            self._columns_after_stop(sheet)
        held = self._put_back_owed(sheet, dry_run=dry_run)
        rows = parse_inventory(sheet.grid, sheet.first.columns)
        if held:
            self._held = _held_back(rows, held, sheet.first.columns)
        if not dry_run:
            rows = self._restore_suspects(sheet, rows)
        report.rows = rows
        report.paused = [name for name in self.channels if name not in enabled]

        fetched_at = self.now()
        if not dry_run:
            self._prune(fetched_at, rows)
        self._owed = self.ledger.owed()
        fetched = self._fetch(enabled, report, fetched_at)
        starts = {ch: self._start(ch, fetch.start or fetched_at) for ch, fetch in fetched.items()}
        the_plan = self._plan(rows, fetched, starts)
        if dry_run:
            # As the commit would: Stock read again with formulas shown, rows found by SKU.
            again = reread(self.sheet, sheet.layout.inventory, rows)
            if again.changed:
                rows, the_plan = again.rows, self._plan(again.rows, fetched, starts)
                report.rows = rows
            report.events = the_plan.events
            report.final = the_plan.final
            report.pushes = plan_pushes(
                rows, the_plan.final, self.channels, list(fetched), self.ledger, self.now()
            )
            return

        self.lease.keep()
        self._forget = self._absent_twice(sheet)
        day = self.now().astimezone(self.tz).date()
        sheet.rollover = plan_rollover(metadata, sheet.layout.log, sheet.log_header, day)
        self._warnings = self._cells_warning(metadata, day, sheet.layout.log.title)
        self._owed_told = None
        self._owed_notes = self._owed_unread(fetched, day)
        rows, the_plan, tab = self._commit_cycle(sheet, rows, fetched, starts, the_plan, report)
        self._baseline = None  # the commit moved it on
        report.rows = rows
        for event in the_plan.events:
            log.info(
                "%s %s %s %s %s",
                event.event,
                event.channel,
                event.sku,
                event.change or "",
                event.detail,
            )
        report.events = list(the_plan.events)
        # One pass over the rows for both: a large sheet has 100,000 (issue 8).
        final = the_plan.final
        for row in rows:
            stock = final.get(row.sku, row.stock)
            if not row.duplicate and stock is not None and stock < 0:
                report.oversold[row.sku] = stock
            if row.sku and (row.duplicate or row.sku_unread or stock is None):
                report.unjudged.append(row.sku)

        plans = plan_pushes(
            rows, the_plan.final, self.channels, list(fetched), self.ledger, self.now()
        )
        report.pushes = plans
        items = sum(len(p.updates) for p in plans)
        calls = sum(self.channels[p.channel].push_calls(len(p.updates)) for p in plans)
        large = items >= PUSH_COLLECTOR_FROM or calls >= PUSH_COLLECTOR_FROM_CALLS
        with _collector_during_pushes(self._owns_collector and large):
            results = push_all(plans, self.channels, self.ledger, self.now())
        for p in plans:
            result = results[p.channel]
            if isinstance(result, StockbotError):
                report.failed_channels[p.channel] = plain(result)
            else:
                report.refused[p.channel] = len(result.failed)
        self._report(sheet, tab, rows, plans, results, enabled, channel_rows, report, release)

    def _put_back_owed(self, sheet: _Sheet, *, dry_run: bool) -> dict[int, dict[int, object]]:
        """Put back the cells a failed repair still owed (`bot.owed`), where they are now.

        They are found in the cycle's first read, so a cycle that owes nothing sends no
        request more. The put-back is a commit whose completion records what is still owed:
        a bot stopped after it landed finishes it from the marker (`Handover.recover`), and a
        cell that no longer holds the bot's value is left alone whatever happened. The first
        read is then made to show the cells as put back, for the rest of the cycle.

        Returns the cells that still hold the bot's values (row index -> {column: the value
        they should hold}): a put-back that failed, or a dry run, which writes nothing. Their
        rows are held back this cycle (`_held_back`).
        """
        kept = self.ledger.owed_cells()
        if not kept:
            return {}
        owed = [Owed.from_json(entry) for entry in kept]
        tab = sheet.first
        put, still, lost = locate(owed, sheet.grid, tab.columns["sku"])
        wrong = {index: dict(cells) for index, cells in put.items()}
        if dry_run:
            return wrong
        left = [cell.to_json() for cell in still]
        if not put and not lost:
            self.ledger.set_owed_cells(left)
            return {}
        requests: list[dict[str, Any]] = []
        for index, cells in sorted(put.items()):
            for column, value in sorted(cells.items()):
                requests += column_runs(tab.sheet_id, column, {index: value})
        details = [lost_text(cell) for cell in lost]
        if put:
            detail = _(
                "rows or columns were moved in the very instant the bot wrote to the sheet and "
                "its repair could not be sent then; the cells it wrote in the wrong place were "
                "put back now ({cells})"
            ).format(cells=_cell_names(put))
            details.insert(0, detail)
        stamp = self._stamp()
        log_rows = [log_row(sheet.layout, stamp, Event("error", detail=d)) for d in details]
        requests += append_rows(sheet.layout.log.sheet_id, log_rows)
        try:
            self.handover.commit("owed", requests, Changes(owed_cells=left))
        except SheetError as exc:
            # Still owed (a commit that never landed changes nothing): the next cycle tries
            # again. This cycle goes on without the rows concerned (review attacks 37: an id
            # cell holding the bot's Shown was pushed to as the product's listing).
            log.warning("cells owed by an earlier repair were not put back yet: %s", exc)
            return wrong
        for detail in details:
            log.info("%s", detail)
        for index, cells in put.items():
            line = sheet.grid[index]
            for column, value in cells.items():
                line.extend([""] * (column + 1 - len(line)))
                line[column] = "" if value is None else value
        return {}

    def _columns_after_stop(self, sheet: _Sheet) -> None:
        """A commit whose landing was never checked, written to columns that are not there now.

        The bot stopped between its commit and `_check_landing`. The state file kept where that
        commit wrote (`Changes.written_at`); when the header at one of those indexes is now
        another column's, the columns moved and the writes landed elsewhere. As
        `_check_landing` does from the commit's answer, but from that record and this first
        read (no request more): rows stay in place when columns move, so a product whose Stock
        write missed its Stock column is suspect with the Stock its own cell kept, and one whose
        Stock cell took another column's write is suspect with that value (`_restore_suspects`
        sets both right, and keeps a number staff typed over them since). A write that landed in
        another column, still holding the bot's value, is owed (`bot.owed`; `_put_back_owed`
        puts it back in this same cycle): blank in a column added meanwhile, in a staff column
        what the commit's first read held there (`Changes.written_lines`).

        A commit of more than `NARROW_MAX_ROWS` rows keeps neither its lines nor its Shown and
        Status cells (issue 8), only its column indexes and Stock writes: its Stock writes are
        set right as above, and those left in staff cells are named cell by cell in the Log
        (nothing to put back); its Shown and Status writes are neither put back nor named cell
        by cell: the staff columns now at the indexes they were written to are named whole in
        one Log row, and a Shown or Status left in a Stock cell is read as a staff edit. Moved
        back before the next cycle, such a commit is not seen to have moved at all.
        Each written row is looked for by its SKU, where it is now (rows may have been sorted
        since). A write that landed on a SKU cell renamed its row: that cell is owed back by
        position, with a check (`sku_cells_taken`).

        Columns moved back before this cycle show the same headers: then the commit's own Shown
        and Status cells tell (`moved_back`, `staff_cells_taken`). With the columns where it
        wrote, a row moved in its instant that took its writes, of a product whose Stock could
        not be read, owes its Stock and Shown back as staff left them (`unread_cells_taken`):
        set back from the state file instead, the cell staff are to fix would be lost and the
        state file's older Stock pushed.
        """
        record = self.ledger.unchecked_columns()
        if record is None:
            return
        at, cells, lines = record
        unchecked = self.ledger.unchecked()
        writes = Writes()
        for index, sku, wrote, _held in unchecked:
            writes.put("stock", index, sku, wrote)
        for key, entries in cells.items():
            for entry in entries:
                writes.put(key, int(entry[0]), str(entry[1]), entry[2])
        held = {index: before for index, _sku, _value, before in unchecked}
        header = sheet.grid[0] if sheet.grid else []
        now = sheet.first.columns
        if not moved_columns(header, at, at):
            taken = unread_cells_taken(sheet.grid, now, writes, lines)
            if taken:
                log.warning(
                    "a commit the bot stopped after wrote to rows moved in its instant; %d cells "
                    "of products whose Stock cannot be read are owed back as staff left them",
                    len(taken),
                )
                self.ledger.owe([c.to_json() for c in taken])
            back = moved_back(sheet.grid, now, writes, held, self._stock_baseline())
            if back is not None:
                owed = staff_cells_taken(sheet.grid, now, at, writes, lines)
                log.warning(
                    "the Shown and Status cells a commit wrote before the bot stopped do not hold "
                    "what it wrote (columns moved in its instant and back since); Stock written "
                    "back from the state file for %s; %d staff cells owed",
                    ", ".join(sorted(back)) or "no product",
                    len(owed),
                )
                self.ledger.add_suspects(back, owe=[c.to_json() for c in owed])
            # Columns in place: its Shown and Status cells still tell which row took a Stock
            # write after rows were sorted since (`_restore_suspects`, `took_after_sort`).
            self.ledger.columns_checked(keep_cells=back is None)
            return
        found = stock_suspects(writes, at, now, held)
        sku_at = now["sku"]
        ours = {now[key] for key in WRITTEN}
        renamed = sku_cells_taken(sheet.grid, now, at, writes, held, self._stock_baseline())
        undo, named = staff_cells_written(sheet.grid, now, at, writes, lines, renamed)
        skus = [[line[sku_at]] if sku_at < len(line) else [] for line in sheet.grid]
        owed = renamed.owed + owed_cells(
            writes,
            replace(sheet.first, columns={**now, **at}),
            sheet.first,
            header,
            skus,
            undo,
            columns_moved=True,
        )
        log.warning(
            "columns moved in the instant of a commit the bot stopped after (%s); its Stock "
            "written back from the state file for %s",
            ", ".join(
                f"column {k} found under '{h}'" for k, h in moved_columns(header, at, at).items()
            ),
            ", ".join(sorted(found)) or "no product",
        )
        self.ledger.add_suspects(found, owe=[c.to_json() for c in owed])
        if named:
            self._column_notes = [
                Event(
                    "error",
                    detail=_(
                        "columns were moved in the very instant the bot wrote to the sheet and "
                        "the bot stopped before it could put them back: these cells may hold "
                        "values it meant for its own columns ({cells}); check them and type "
                        "what belongs there"
                    ).format(cells=_cell_names(named)),
                )
            ]
        # A commit of too many rows to keep its Shown and Status cells (`NARROW_MAX_ROWS`):
        # which rows took them is not known, so the staff columns now at the indexes they were
        # written to are named whole, in one Log row (no per-row data kept, issue 8).
        unkept = sorted(
            {
                at[key]
                for key in ("shown", "status")
                if key in at and key not in cells and at[key] not in {*ours, sku_at}
                if at[key] < len(header) and cell_text(header[at[key]])
            }
        )
        if unkept:
            self._column_notes.append(
                Event(
                    "error",
                    detail=_(
                        "columns were moved in the very instant the bot wrote to the sheet and "
                        "the bot stopped before it could put them back; it wrote to too many rows "
                        "to keep which cells: these whole columns may hold Shown or Status values "
                        "in the rows it wrote ({columns}); check them and type what belongs there"
                    ).format(
                        columns=", ".join(
                            f"{column_letters(c)} ({cell_text(header[c])})" for c in unkept
                        )
                    ),
                )
            )
        self.ledger.columns_checked()

    def _restore_suspects(self, sheet: _Sheet, rows: list[Row]) -> list[Row]:
        """Products whose Stock cell may hold another product's value get their own back.

        A commit that landed on rows moved in its own round trip is repaired at once; if that
        repair did not finish (or the bot stopped before checking), the state file names the
        products concerned, and their Stock is written back from the state file's baseline
        here, instead of the difference being taken for a staff edit.
        """
        unchecked = self.ledger.unchecked()
        suspects = self.ledger.suspects()
        if not unchecked and not suspects:
            return rows
        # Read once per cycle (`_stock_baseline`), folded once for both steps below.
        baseline = {sku.casefold(): value for sku, value in self._stock_baseline().items()}
        if unchecked:
            # The last commit's landing was never checked (the bot stopped first). A write
            # whose row no longer holds its product may have landed elsewhere: the product is
            # suspect with the Stock its own cell held before, which it still holds unless
            # staff typed over it (a write that landed right, rows sorted since: its cell holds
            # the value written, so it is left alone). A row that now holds another product is
            # suspect only when its Stock is the very value that commit wrote there: rows
            # sorted since carry their own values, staff edits too.
            # A cell seen holding another product's write is that value whatever its own
            # write left (two written rows swapped: each holds the other's), so it wins.
            # Rows sorted since leave another product at the index written to: the row that
            # took the write is then looked for by the cells written with it (`took_after_sort`).
            # A row there that lacks the Shown or Status written with the Stock did not take
            # it, whatever its Stock (`carries`: a staff edit on a row sorted into that place).
            cols = sheet.first.columns
            cells = self.ledger.unchecked_cells()
            # A row there whose own Stock and Display show the Shown written is not told by it
            # (`own_shown`): the write is looked for elsewhere first, and taken for that row's
            # only when no other row took it (review attacks 40: a row sorted there and
            # recounted since kept the recount, and the row that took the write was found).
            own: dict[str, int | None] = {}
            took: dict[str, int] = {}
            missed: dict[int, tuple[str, int]] = {}
            untold: dict[int, str] = {}
            at_index = {row.index: row for row in rows}
            for index, meant, value, held in unchecked:
                line = sheet.grid[index] if index < len(sheet.grid) else []
                now = cell_text(line[cols["sku"]]) if cols["sku"] < len(line) else ""
                cell = line[cols["stock"]] if cols["stock"] < len(line) else None
                if now.casefold() == meant.casefold():
                    if cell == value or carries(line, cols, index, cells):
                        continue
                    # Its product is back at that index without the value and the cells
                    # written: rows moved and back since, and the write went to another row
                    # (review attacks 40: P-5 kept P-1's 8 as a staff edit).
                    if held is not None:
                        own[meant] = held
                    missed[index] = (meant, value)
                    continue
                landed = (
                    cell == value
                    and baseline.get(now.casefold()) != value
                    and carries(line, cols, index, cells)
                )
                if landed or held is not None:  # None: a commit of an earlier version
                    own[meant] = held
                shows = own_shown(at_index.get(index), baseline)
                if landed and carries(line, cols, index, cells, shows=shows):
                    took[now] = value
                else:
                    missed[index] = (meant, value)
                    if landed:
                        untold[index] = now
            if missed and cells:
                taking = rows_taking(rows, missed, cells, baseline)
                took |= {sku: missed[index][1] for index, sku in taking.items()}
                took |= {now: missed[i][1] for i, now in untold.items() if i not in taking}
            found: dict[str, int | str | None] = {**own, **took}
            if found:
                self.ledger.add_suspects(found)
                suspects = self.ledger.suspects()
            self.ledger.set_meta("unchecked", "")
        if not suspects:
            return rows
        restored: list[Row] = []
        for row in rows:
            key = row.sku.casefold()
            if key in suspects and key in baseline and not row.duplicate:
                wrong = suspects[key]
                # A text the bot put there (a Status) reads as no Stock: a number is typed.
                typed = row.stock is not None if isinstance(wrong, str) else row.stock != wrong
                if wrong is not None and typed:
                    # The cell no longer holds the misplaced value: staff typed over it. That
                    # is a staff edit like any other (logged as `manual` against the baseline).
                    self.ledger.drop_suspects([key])
                    restored.append(row)
                    continue
                if row.stock != baseline[key]:
                    log.warning(
                        "Stock of %s set back to %s (it held %s after a write landed on moved "
                        "rows)",
                        row.sku,
                        baseline[key],
                        row.stock,
                    )
                    self._restored[key] = row.stock
                row = replace(
                    row,
                    stock=baseline[key],
                    problems=tuple(
                        p for p in row.problems if not p.startswith(INVENTORY_HEADERS["stock"])
                    ),
                )
            restored.append(row)
        return restored

    # -- reading ---------------------------------------------------------------------------
    def _read(self, metadata: Mapping[str, Any]) -> _Sheet:
        tabs = find_tabs(metadata, self.sheet.read)
        quoted = {k: a1_title(p["title"]) for k, p in tabs.items()}
        inventory, channels, log_head = self.sheet.read(
            [quoted["inventory"], quoted["channels"], quoted["log"] + "!1:1"]
        )
        headers = {
            "inventory": inventory[0] if inventory else [],
            "channels": channels[0] if channels else [],
            "log": log_head[0] if log_head else [],
        }
        self._written_in = sheet_language(
            self.language, headers["inventory"], tabs["inventory"]["title"]
        )
        set_language(self._written_in)
        layout = find_layout(metadata, headers)
        sku_col = layout.inventory.columns["sku"]
        index: dict[str, int] = {}
        for i in range(1, len(inventory)):
            line = inventory[i]
            text = cell_text(line[sku_col]) if sku_col < len(line) else ""
            if text:
                index.setdefault(text.casefold(), i)
        return _Sheet(layout, inventory, layout.inventory, index, channels, headers["log"])

    def _enabled(
        self, grid: Sequence[Sequence[Any]], layout: Layout
    ) -> tuple[list[str], dict[str, int]]:
        """Channels to sync, and the row index of each channel present in the tab."""
        cols = layout.channels.columns
        rows: dict[str, int] = {}
        paused: set[str] = set()
        for index in range(1, len(grid)):
            line = grid[index]
            name = header_key(line[cols["channel"]] if cols["channel"] < len(line) else "")
            if not name:
                continue
            rows[name] = index
            flag = line[cols["enabled"]] if cols["enabled"] < len(line) else ""
            if flag is False or header_key(flag) in ("false", "no", "0", "off", "いいえ"):
                paused.add(name)
        return [ch for ch in self.channels if ch not in paused], rows

    # -- fetching and planning -----------------------------------------------------------
    def _fetch(
        self, enabled: Sequence[str], report: CycleReport, now: datetime
    ) -> dict[str, FetchResult]:
        """Every enabled channel's orders at once; one channel's failure stops only it."""

        # The ledger is read here, not in the threads: one SQLite connection serves them all.
        state = {
            name: (
                _with_start(cursor) if (cursor := self.ledger.cursor(name)) else None,
                # Orders a reset carried over (`bot.unread`) are read again like open ones.
                [*self.ledger.open_orders(name), *sorted(self._owed.get(name, ()))],
                self.ledger.all_orders(name),
            )
            for name in enabled
        }

        def one(name: str) -> tuple[str, FetchResult | StockbotError]:
            cursor, open_orders, known = state[name]
            return name, guarded(
                name,
                _("reading orders"),
                lambda: self.channels[name].fetch_orders(cursor, open_orders, now, known),
            )

        fetched: dict[str, FetchResult] = {}
        with ThreadPoolExecutor(max_workers=max(1, len(enabled))) as pool:
            for name, result in pool.map(one, enabled):
                if isinstance(result, StockbotError):
                    report.failed_channels[name] = plain(result)
                    log.error("%s: orders could not be read: %s", name, plain(result))
                else:
                    fetched[name] = result
                    if result.skipped:
                        report.skipped[name] = result.skipped
        return fetched

    def _start(self, channel: str, fetched_at: datetime) -> datetime:
        """When the channel's first cycle fetched: orders placed before it are in Stock."""
        stored = self.ledger.cursor(channel)
        if stored:
            return datetime.fromisoformat(stored[1])
        # The adapter's first cursor is this same instant. Marketplaces give order times in
        # whole seconds: an order in the start's own second counts as new rather than missed.
        return fetched_at.replace(microsecond=0)

    def _prune(self, now: datetime, rows: Sequence[Row]) -> None:
        """Once a day, forget orders long closed and the push state of items no row lists.

        The state file stays bounded however many orders and products come and go.
        """
        last = self.ledger.get_meta("pruned_at")
        # A last prune in the future was on a VM clock running ahead: prune now rather than
        # wait for the clock to catch up with it (pruning no longer trusts that clock).
        if last and timedelta(0) <= now - datetime.fromisoformat(last) < PRUNE_EVERY:
            return
        forgotten = self.ledger.prune(now, keep=RETAIN_ORDERS, keep_ids=RETAIN_IDS)
        # A first cycle has no push state to prune: listing 100,000 rows' items is skipped.
        if self.ledger.holds_pushes():
            listed: dict[str, set[str]] = {name: set() for name in self.channels}
            for row in rows:
                for channel, item in row.items.items():
                    if item is not None and channel in listed:
                        listed[channel].add(item)
            dropped = self.ledger.prune_pushes(listed)
            if dropped:
                log.info("forgot the push state of %d items no row lists any more", dropped)
        self.ledger.set_meta("pruned_at", now.isoformat())
        if forgotten:
            log.info(
                "forgot %d closed orders placed over %d days before their channel's latest",
                forgotten,
                RETAIN_ORDERS.days,
            )

    def _plan(
        self,
        rows: Sequence[Row],
        fetched: Mapping[str, FetchResult],
        starts: Mapping[str, datetime],
    ) -> Plan:
        now = self.now()
        fetched = {
            ch: self._not_forgotten(ch, fetch, self.ledger.horizon(ch, now))
            for ch, fetch in fetched.items()
        }
        return warnings.flag_jumps(
            plan(
                rows,
                self._stock_baseline(),
                fetched,
                starts,
                self.ledger.lines,
                self.ledger.unmatched_lines(),
                owed=self._owed,
                held=self._held.items,
            )
        )

    def _not_forgotten(
        self, channel: str, fetch: FetchResult, horizon: datetime | None
    ) -> FetchResult:
        """The fetched orders less those counted long ago and forgotten since (see `_prune`).

        A forgotten order (closed and pruned) shown again is already counted; so is one placed
        over `RETAIN_IDS` before the channel's `horizon` (`Ledger.horizon`) that the state file
        does not hold: its id went at a prune. Without that, a years-old Shopify order archived
        or refunded today would be a new sale. A prune lets an id go only when it is placed
        that long before the horizon it measured by, and the mark under the horizon is stored
        in the same transaction and only moves forward, so the id stays that old at every later
        cycle unless the VM's clock then reads earlier than both its reading at that prune and
        the mark (a VM clock behind the marketplace's).
        The price: an order the bot never saw, placed over `RETAIN_IDS` before an order a prune
        had already seen on the same channel, is skipped too (a VM clock running ahead moves
        nothing: the mark is made of order times, and test_review_attacks_3 rejected a horizon
        that the VM's clock could move).
        """
        gone = self.ledger.forgotten(channel)
        if horizon is not None:
            old = horizon - RETAIN_IDS
            if any(o.placed_at < old for o in fetch.orders):
                held = self.ledger.all_orders(channel)
                gone |= {o.order_id for o in fetch.orders if o.placed_at < old} - held
        if not gone:
            return fetch
        return replace(fetch, orders=[o for o in fetch.orders if o.order_id not in gone])

    # -- the commit ------------------------------------------------------------------------
    def _commit_cycle(
        self,
        sheet: _Sheet,
        rows: list[Row],
        fetched: Mapping[str, FetchResult],
        starts: Mapping[str, datetime],
        the_plan: Plan,
        report: CycleReport,
    ) -> tuple[list[Row], Plan, Tab]:
        """Commit Stock, Shown, Status and the Log rows at the rows where products are now.

        Everything is computed, saved and encoded before the last read of the header row, SKU
        and Stock, so that only one request round trip separates that read from the commit (the
        staff-edit window): when the re-read answers SKU and Stock as the first read did, the
        bot compares two lists and sends the body already made. A Stock edited or a row moved
        meanwhile is re-planned inside the window. A retry after a refused commit goes through
        the re-read again.
        """
        outbox = self.ledger.outbox()
        first_rows, first_plan = rows, the_plan
        basis = Columns.of(sheet.grid, sheet.first.columns)
        tab = sheet.layout.inventory
        notes: list[str] = []
        answer: dict[str, Any] | None = None
        seen: frozenset[str] | None = None
        for attempt in range(1, COMMIT_TRIES + 1):
            writes, prepared = self._prepare_cycle(
                sheet, tab, rows, the_plan, fetched, starts, outbox, notes
            )
            # The narrow re-read checks the cells of the rows written, as the first read placed
            # them: once the plan was made again on moved rows, only the full read compares.
            written = writes.checked_first() if rows is first_rows else None
            try:
                again = reread(
                    self.sheet,
                    tab,
                    first_rows,
                    keep={*self._restored, *self._held.stock},
                    basis=basis,
                    written=written,
                )
            except StockbotError:
                self.handover.discard(prepared)
                raise
            seen = again.seen
            if again.changed or again.tab != tab:
                self.handover.discard(prepared)
                tab, rows = again.tab, again.rows
                the_plan = self._plan(rows, fetched, starts) if again.changed else first_plan
                notes = again.notes
                for note in notes:
                    log.info("%s; re-planned on the rows as they are now", note)
                writes, prepared = self._prepare_cycle(
                    sheet, tab, rows, the_plan, fetched, starts, outbox, notes
                )
            answer = self.handover.send_once(prepared, last=attempt == COMMIT_TRIES)
            if answer is not None:
                break
        assert answer is not None
        if sheet.rollover is not None:
            # Later writes of this cycle (repairs, the report) append to the new Log tab.
            log.info(
                "the Log tab was full: renamed to '%s', a new one started", sheet.rollover.old_title
            )
            report.log_rolled_over = sheet.rollover.old_title
            new_log = replace(sheet.layout.log, sheet_id=sheet.rollover.sheet_id, rows=2)
            sheet.layout = replace(sheet.layout, log=new_log)
            sheet.rollover = None
        if self._warnings:
            self.ledger.set_meta("cells_warned", self.now().astimezone(self.tz).date().isoformat())
        if self._owed_told is not None:
            self.ledger.set_meta("owed_told", json.dumps(self._owed_told, sort_keys=True))
        self.ledger.set_meta("jumps", warnings.dump_jumps(self._jumps))
        tab = self._check_landing(answer, sheet, tab, writes, rows, report, seen)
        return rows, the_plan, tab

    def _prepare_cycle(
        self,
        sheet: _Sheet,
        tab: Tab,
        rows: Sequence[Row],
        the_plan: Plan,
        fetched: Mapping[str, FetchResult],
        starts: Mapping[str, datetime],
        outbox: Sequence[tuple[int, list[Any]]],
        notes: Sequence[str],
    ) -> tuple[Writes, Prepared]:
        """The cycle's writes and ledger changes, saved as the pending commit."""
        changes = replace(
            the_plan.changes,
            cursors={
                **the_plan.changes.cursors,
                **{ch: (fetch.cursor, starts[ch].isoformat()) for ch, fetch in fetched.items()},
            },
            outbox_done=[seq for seq, _ in outbox],
            # A SKU gone from the sheet (renamed, deleted) loses its Stock baseline: if it comes
            # back, or a new row takes its name, its Stock is not an edit of the old value.
            forget_stock=self._forget,
            adjust=[
                *the_plan.changes.adjust,
                *own_events(rows, the_plan.changes.lines, self.ledger.lines),
            ],
        )
        stamp = self._stamp()
        events = list(the_plan.events)
        events += [
            Event(
                "error",
                sku=row.sku,
                detail=_(
                    "Stock was set back to the value the bot holds for this product: a write "
                    "of the bot's landed on moved rows and could not be put right at once"
                ),
            )
            for row in (rows if self._restored else ())
            if row.sku.casefold() in self._restored
        ]
        for ch, fetch in fetched.items():
            events += [Event("error", ch, detail=p) for p in fetch.problems]
            events += [Event("error", ch, order=o, detail=p) for o, p in fetch.order_problems]
        events += self._warnings + self._owed_notes + self._column_notes
        events += [
            Event(
                "error",
                detail=_("{note}: that row is left as it is until the next cycle").format(
                    note=note
                ),
            )
            for note in notes
            if note.endswith(left_out())
        ]
        log_rows = [r for _, r in outbox] + [log_row(sheet.layout, stamp, e) for e in events]
        writes = self._cycle_writes(rows, the_plan)
        stock_cells = writes.cells.get("stock", {})
        # With the Stock each row held before (None: not known), so that a bot stopped before
        # checking the landing can tell its own write in a cell from a staff edit made since.
        before = (
            {row.index: row.stock for row in rows if row.index in stock_cells}
            if stock_cells
            else {}
        )
        changes.written = [
            [
                i,
                writes.skus[i],
                v,
                self._restored.get(writes.skus[i].casefold(), before.get(i)),
            ]
            for i, v in stock_cells.items()
        ]
        if writes.skus:
            # And where the columns were, so that a bot stopped before checking can tell that
            # they moved in the commit's instant (`_columns_after_stop`).
            changes.written_at = {
                key: tab.columns[key]
                for key in ("sku", *WRITTEN)
                if key == "sku" or key in writes.cells
            }
            # The cells and lines only while few: a first cycle's commit writes Shown and Status
            # to every row, and keeping 100,000 rows of them cost 0.3 s and over 5 MB of the
            # state file for a stop in that instant (issue 8). A larger commit stopped after
            # columns moved in its instant is set right for its Stock writes only; the staff
            # columns its Shown and Status landed in are named whole (`_columns_after_stop`).
            if len(writes.skus) <= NARROW_MAX_ROWS:
                changes.written_cells = {
                    key: [[i, writes.skus[i], v] for i, v in values.items()]
                    for key, values in writes.cells.items()
                    if key != "stock"
                }
                changes.written_lines = {
                    "header": sheet.grid[0] if sheet.grid else [],
                    "rows": [
                        [i, sheet.grid[sheet.index[sku.casefold()]]]
                        for i, sku in writes.skus.items()
                        if sku.casefold() in sheet.index
                    ],
                }
                # And the Stock and Shown cells of the products whose Stock cannot be read, as
                # staff left them (while as few): the state file's Stock for them is older, so
                # a write landing there is put back to these (`unread_cells_taken`).
                unread = _unread_cells(sheet, rows)
                if unread and len(unread) <= NARROW_MAX_ROWS:
                    changes.written_lines["unread"] = unread
        # A full Log tab is renamed and a new one started in this same atomic write, so no
        # Log row can be lost or doubled across the rollover (bot.rollover).
        roll = sheet.rollover
        log_id = sheet.layout.log.sheet_id if roll is None else roll.sheet_id
        requests = [*(roll.requests if roll else []), *writes.requests(tab)]
        requests += append_rows(log_id, log_rows)
        requests.append(self.lease.request(release=False))
        return writes, self.handover.prepare(
            "cycle", requests, changes, response_ranges=writes.response_ranges(tab)
        )

    def _cells_warning(self, metadata: Mapping[str, Any], day: date, log_title: str) -> list[Event]:
        """Once a day, near Google's cell limit: ask staff to move old Log tabs out."""
        cells = total_cells(metadata)
        if cells < WARN_TOTAL_CELLS or self.ledger.get_meta("cells_warned") == day.isoformat():
            return []
        detail = cells_warning(cells, log_title)  # the old tabs are named after it
        log.warning("the spreadsheet holds %d cells of Google's %d", cells, GOOGLE_CELL_LIMIT)
        return [Event("error", detail=detail)]

    def _owed_unread(self, fetched: Mapping[str, FetchResult], day: date) -> list[Event]:
        """Once a day, each order a reset carried over (`bot.unread`) that its channel did not
        return: staff know it is still owed, and a later reset finds it on its Log row.

        Not at a channel's clean start (it reads no order yet), and never again for an order
        the fetch itself named (`FetchResult.order_problems`): that adapter goes on telling
        staff of it. Which orders were told, and when, is kept in `meta` (`owed_told`) and
        stored after the commit (`_commit_cycle`).
        """
        stored: dict[str, dict[str, str]] = json.loads(self.ledger.get_meta("owed_told") or "{}")
        told = dict(stored)
        today = day.isoformat()
        notes: list[Event] = []
        for channel, fetch in fetched.items():
            owed = self._owed.get(channel, set())
            if not owed or fetch.start is not None:
                continue
            said = {o for o, _text in fetch.order_problems}
            read = {o.order_id for o in fetch.orders}
            before = told.get(channel, {})
            now_told = {o: when for o, when in before.items() if o in owed}
            for order_id in sorted(owed):
                if order_id in said:
                    now_told[order_id] = "marketplace"
                elif order_id not in read and before.get(order_id) not in ("marketplace", today):
                    now_told[order_id] = today
                    notes.append(
                        Event(
                            "error",
                            channel,
                            order=order_id,
                            detail=_(
                                "{label} order {order_id} was seen before the state file was "
                                "reset and is not applied yet; the bot asks for it every cycle "
                                "and applies it once it can be read"
                            ).format(label=channel.capitalize(), order_id=order_id),
                        )
                    )
            told[channel] = now_told
        told = {ch: t for ch, t in told.items() if t}
        if told != stored:
            self._owed_told = told
        return notes

    def _stock_baseline(self) -> dict[str, int]:
        """The ledger's Stock baseline, read once per cycle until its commit (100,000 rows)."""
        if self._baseline is None:
            self._baseline = self.ledger.stock_baseline()
        return self._baseline

    def _absent_twice(self, sheet: _Sheet) -> list[str]:
        """SKUs with a Stock baseline that were missing from the sheet this cycle and the last.

        Their baseline is forgotten: if the SKU comes back, or a new row takes its name, its
        Stock is not an edit of the old value. One cycle's absence is not enough: a row deleted
        by mistake and put back (undo) keeps its baseline, so its next edit is still logged.
        """
        absent = {sku for sku in self._stock_baseline() if sku.casefold() not in sheet.index}
        before = set(json.loads(self.ledger.get_meta("absent") or "[]"))
        self.ledger.set_meta("absent", json.dumps(sorted(absent), ensure_ascii=False))
        return sorted(absent & before)

    def _cycle_writes(self, rows: Sequence[Row], the_plan: Plan) -> Writes:
        """Stock, Shown and Status cells that differ from what the sheet holds."""
        writes = Writes()
        if the_plan.stock:
            by_index = {row.index: row for row in rows}
            for index, value in the_plan.stock.items():
                writes.put("stock", index, by_index[index].sku, value)
        for row in rows if self._restored else ():
            if row.sku.casefold() in self._restored and row.stock is not None:
                value = the_plan.final.get(row.sku, row.stock)
                writes.put("stock", row.index, row.sku, value)
        errors = self._push_errors()
        standing = warnings.load_jumps(self.ledger.get_meta("jumps"))
        self._jumps = warnings.standing_jumps(standing, the_plan.events, self.now())
        caps = {name: channel.max_quantity for name, channel in self.channels.items()}
        self._notes = {}
        self._status_written = {}  # texts other than OK only: most rows of a large sheet are OK
        final, plan_notes, jumps = the_plan.final, the_plan.notes, self._jumps
        lowest_cap = min(caps.values(), default=0)
        for row in rows:
            stock = final.get(row.sku, None if row.is_set else row.stock)
            pushable = stock is not None and row.pushable
            shown: int | None = None
            if pushable and row.display is not None:
                assert stock is not None
                shown = shown_quantity(stock, row.display)
                if row.shown_cell != shown:
                    writes.put("shown", row.index, row.sku, shown)
            notes = [plan_notes.get(row.sku)] if plan_notes else []
            if jumps and (jump := jumps.get(row.sku)):
                notes.append(jump.text)
            # `warnings.capped` finds nothing for a row with one setting whose quantity is at
            # most every cap: nearly every row, so most rows skip the call (issue 8).
            if pushable and (row.own_display or (shown is not None and shown > lowest_cap)):
                assert stock is not None
                notes += warnings.capped(row, stock, caps)
            note = "; ".join(n for n in notes if n) if any(notes) else None
            if note:
                self._notes[row.sku] = note
            # Most rows of a large sheet: no problem, note or push error, so OK without a call.
            if note or errors or row.problems or row.display_problems:
                text = status_text(row, errors, note)
            else:
                text = OK
            if text != OK:
                self._status_written[row.sku] = text
            if row.status_cell != text:
                writes.put("status", row.index, row.sku, text)
        return writes

    def _check_landing(
        self,
        answer: Mapping[str, Any],
        sheet: _Sheet,
        tab: Tab,
        writes: Writes,
        rows: Sequence[Row],
        report: CycleReport,
        seen: frozenset[str] | None = None,
    ) -> Tab:
        """Repair a commit that landed on rows or columns moved inside its last round trip.

        (Or on rows the re-read did not check, moved since the first read: a commit writing
        Shown and Status to thousands of rows checks them here only, `Writes.checked_first`.)

        The products whose Stock may now be wrong are recorded as *suspect* before anything
        else: if the repair fails or the bot stops, the next cycle writes their Stock back from
        the state file instead of taking the difference for a staff edit. The other cells the
        repair puts back are recorded with them before it is sent (`bot.owed`): if it fails,
        the next cycle puts them back (`_put_back_owed`); once it lands, they are forgotten.
        `seen`: the products whose Stock the re-read before the commit saw (None: all); the
        others' Stock is known as of the first read only (`repair_cells`, stale).
        """
        before: dict[str, int | None] = {}  # folded SKU -> Stock as read, when a repair needs it
        for attempt in range(REPAIR_TRIES):
            wrong = misplaced(answer, tab, writes)
            if wrong is None:  # the landing was learned from the marker: look now
                wrong = misplaced_in(self.sheet, tab, writes)
            if not wrong:
                self.ledger.set_meta("unchecked", "")
                # Every suspect found on one row this cycle now holds its own Stock (restored, or
                # never touched); ones gone from the sheet need nothing. A suspect on a copied
                # row stays suspect until one row is left.
                suspects = self.ledger.suspects()
                if suspects:
                    # Nor does one whose row is held back under a bot value in its SKU cell
                    # (`_held_back`): its Stock is set right once its SKU is put back.
                    kept = {r.sku.casefold() for r in rows if r.duplicate} | self._held.renamed
                    self.ledger.drop_suspects([s for s in suspects if s not in kept])
                return tab
            before = before or {
                row.sku.casefold(): row.stock for row in rows if row.stock is not None
            }
            log.warning(
                "rows or columns moved in the instant of the commit (%s); repairing",
                ", ".join(
                    [f"row {i + 1} held {s or 'nothing'}" for i, s in sorted(wrong.rows.items())]
                    + [f"column {k} found under '{h}'" for k, h in wrong.columns.items()]
                ),
            )
            # Each product meant, with the Stock its own cell still holds; each product whose
            # row took a misplaced Stock, with that value (a column move leaves rows in place).
            # A row that got only Shown and Status, moved with its columns in place, lost no
            # Stock: the cells written there are bot-owned, and staff may edit its Stock.
            stock_cells = writes.cells.get("stock", {})
            involved: dict[str, int | str | None] = {
                sku: before.get(sku.casefold())
                for index, sku in writes.skus.items()
                if wrong.columns or index in stock_cells
            }
            if not wrong.columns:
                for index, found_sku in wrong.rows.items():
                    value = stock_cells.get(index)
                    if found_sku and isinstance(value, int):
                        involved[found_sku] = value
            # A column move can put another column's write into a row's Stock cell (Shown's,
            # when columns were inserted left of Stock): that value is what the cell now holds
            # wrongly (a Status text too: the cell then reads as no Stock until staff type one).
            for key, found in wrong.columns.items():
                if header_key(found) in STOCK_HEADERS:
                    for index, value in writes.cells.get(key, {}).items():
                        landed = value if isinstance(value, int | str) else None
                        involved[writes.skus[index]] = landed
            self.ledger.add_suspects(involved)
            self.ledger.set_meta("unchecked", "")
            if any(header_key(found) in SKU_HEADERS for found in wrong.rows.values()):
                self._restore_header(sheet, tab, writes, wrong)
            now_tab, now_header, skus = read_positions(self.sheet, tab)
            truth: dict[str, dict[str, object]] = {
                sku: {"stock": value} for sku, value in before.items()
            }
            for key, values in writes.cells.items():
                for index, value in values.items():
                    truth.setdefault(writes.skus[index].casefold(), {})[key] = value
            redo, undo, notes = repair_cells(
                writes,
                tab,
                now_tab,
                now_header,
                skus,
                sheet.grid,
                sheet.index,
                truth,
                columns_moved=bool(wrong.columns),
                stale=() if seen is None else {sku for sku in before if sku not in seen},
            )
            if (
                attempt == 0
                and not wrong.columns
                and seen is not None
                and all(writes.skus[index].casefold() not in seen for index in wrong.rows)
            ):
                # Only rows the re-read did not check (`Writes.checked_first`): moved at any
                # time since the first read. A checked row moved in the commit's round trip.
                detail = _(
                    "rows were moved while the bot synced, so some of its Shown and Status cells "
                    "landed in the wrong rows; they were put back and each product's values "
                    "written where it is now"
                )
            else:
                detail = _(
                    "rows or columns were moved in the very instant the bot wrote to the sheet, "
                    "so some cells landed in the wrong place; they were put back and each "
                    "product's values written where it is now"
                )
            # Owed before the repair is sent (the suspects are recorded above): if it fails,
            # the next cycle puts them back; once it lands, what was owed before it is kept.
            earlier = self.ledger.owed_cells()
            owed = owed_cells(
                writes, tab, now_tab, now_header, skus, undo, columns_moved=bool(wrong.columns)
            )
            self.ledger.owe([cell.to_json() for cell in owed])
            detail += ("; " + "; ".join(notes)) if notes else ""
            report.repaired.append(detail)
            requests = redo.requests(now_tab)
            for index, cells in sorted(undo.items()):
                for column, value in cells.items():
                    requests += column_runs(now_tab.sheet_id, column, {index: value})
            stamp = self._stamp()
            log_rows = [log_row(sheet.layout, stamp, Event("error", detail=detail))]
            requests += append_rows(sheet.layout.log.sheet_id, log_rows)
            answer = self.handover.commit(
                "repair",
                requests,
                Changes(log_rows=log_rows, owed_cells=earlier),
                response_ranges=redo.response_ranges(now_tab),
            )
            tab, writes = now_tab, redo
            if not misplaced(answer, tab, writes):
                self.ledger.drop_suspects(involved)
                return tab
        raise SheetError(
            _(
                "rows or columns kept moving while the bot wrote to the sheet; the rows it "
                "names in the Log are set right by the next cycle"
            )
        )

    def _restore_header(self, sheet: _Sheet, tab: Tab, writes: Writes, wrong: Misplaced) -> None:
        """A row inserted above the headers took the writes meant for row 2: put them back."""
        first_header = sheet.grid[0] if sheet.grid else []
        for index, found in wrong.rows.items():
            if header_key(found) not in SKU_HEADERS:
                continue
            requests: list[dict[str, Any]] = []
            for key, values in writes.cells.items():
                column = tab.columns[key]
                if index in values and column < len(first_header):
                    requests += column_runs(tab.sheet_id, column, {index: first_header[column]})
            self.handover.commit("repair", requests, Changes())
        raise SheetStructureError(
            _(
                "a row was inserted above the Inventory header row in the instant the bot "
                "wrote to the sheet; the header cells it overwrote were put back. Delete the row "
                "above the headers so that they are in row 1 again; the next cycle sets every "
                "Stock right"
            )
        )

    # -- after pushing -------------------------------------------------------------------------
    def _stamp(self) -> str:
        return log_time(self.now(), self.tz)

    def _push_errors(self) -> dict[tuple[str, str], str]:
        """The push failures still standing, by (channel, item), from the ledger."""
        return {
            key: error
            for key, error in self.ledger.push_errors().items()
            if key[0] in self.channels
        }

    def _report(
        self,
        sheet: _Sheet,
        tab: Tab,
        rows: Sequence[Row],
        plans: Sequence[PushPlan],
        results: Mapping[str, PushResult | StockbotError],
        enabled: Sequence[str],
        channel_rows: Mapping[str, int],
        report: CycleReport,
        release: bool,
    ) -> None:
        """The second write: push rows, errors, Status of failed items, the Channels tab."""
        moment = self.now()
        stamp = log_time(moment, self.tz)
        # Keyed by stage too: a push failure after a fetch failure is news, whatever its text.
        failing = {
            f"channel:{n}:{'push' if isinstance(results.get(n), StockbotError) else 'fetch'}": t
            for n, t in report.failed_channels.items()
        }
        logged = repeats.load(self.ledger.get_meta("logged_errors"))
        written = repeats.due(failing, logged, moment)
        again = {
            key.split(":")[1]: log_time(r.since, self.tz) if r else None
            for key, r in written.items()
        }
        events = push_events(plans, results, report.failed_channels, again)
        report.events = [*report.events, *events]
        for event in events:
            if event.event == "error":
                log.warning("%s %s: %s", event.channel, event.sku, event.detail)

        errors = self._push_errors()
        # Only a push changes a push error, so only the rows of pushed items can need another
        # Status than the commit wrote (a first cycle pushes them all; most cycles a few).
        pushed: set[str] = set()
        for p in plans:
            # Most items are their row's SKU: the few typed in a marketplace column are mapped.
            items = {u.item for u in p.updates}
            pushed |= {p.sku(item) for item in items} if p.typed else items
        changed = {
            row.sku: text
            for row in rows
            if row.sku in pushed
            and (text := status_text(row, errors, self._notes.get(row.sku)))
            != self._status_written.get(row.sku, OK)
        }
        writes = Writes()
        if changed:
            # Pushing can take minutes: find each row again by its SKU before writing Status.
            tab, _, skus = read_positions(self.sheet, tab)
            where = {
                cell_text(skus[i][0]).casefold(): i
                for i in range(1, len(skus))
                if skus[i] and cell_text(skus[i][0])
            }
            for sku, text in changed.items():
                if sku.casefold() in where:
                    writes.put("status", where[sku.casefold()], sku, text)
        layout = sheet.layout
        requests = writes.requests(tab)
        requests += channel_requests(
            layout,
            list(self.channels),
            enabled,
            channel_rows,
            report.failed_channels,
            self.notices,
            stamp,
        )
        log_rows = [log_row(layout, stamp, e) for e in events]
        requests += append_rows(layout.log.sheet_id, log_rows)
        requests.append(self.lease.request(release=release))
        refusals = [
            [p.channel, item]
            for p in plans
            if isinstance(result := results[p.channel], PushResult)
            for item in result.failed
        ]
        answer = self.handover.commit(
            "report",
            requests,
            Changes(log_rows=log_rows, refusals_logged=refusals),
            response_ranges=writes.response_ranges(tab) if writes.skus else (),
            # The pushes are recorded already: no later cycle would write their rows.
            alone=append_rows(layout.log.sheet_id, log_rows) if log_rows else (),
        )
        self.ledger.set_meta(
            "logged_errors", repeats.dump(repeats.remember(failing, logged, written, moment))
        )
        if writes.skus:
            self._check_landing(answer, sheet, tab, writes, rows, report)


@dataclass
class _Held:
    """Rows held back this cycle (`_held_back`)."""

    renamed: set[str] = field(default_factory=set)  # folded SKUs of rows renamed by a bot value
    stock: set[str] = field(default_factory=set)  # and of rows whose Stock holds a bot value
    # channel -> item key -> (row number, SKU): what those rows list once put right
    items: dict[str, dict[str, tuple[int, str]]] = field(default_factory=dict)


def _held_back(
    rows: Sequence[Row], held: Mapping[int, Mapping[int, object]], columns: Mapping[str, int | None]
) -> _Held:
    """Rows with a cell still holding a value the bot wrote there by mistake (`bot.owed`, not
    put back yet; `held`: row -> {column: what it should hold}): nothing is pushed for them,
    and no order is matched through a marketplace column holding such a value, as for an
    unreadable item id (SPEC.md 4: not sure, push nothing). Orders matched by the SKU are
    still applied, unless the SKU cell itself holds such a value. Returns the SKUs (folded)
    of the rows so renamed, and the items those rows list once put right (their orders
    wait, and the Log says the row is held back: `plan`'s `held`)."""
    channel_at = {columns[ch]: ch for ch in CHANNEL_NAMES if columns.get(ch) is not None}
    sku_at, stock_at = columns.get("sku"), columns.get("stock")
    problem = _(
        "a cell of this row still holds a value the bot wrote there by mistake and could not "
        "put back yet; nothing is pushed for this row until it is"
    )
    out = _Held()
    for row in rows:
        cells = held.get(row.index)
        if not cells:
            continue
        row.problems = (*row.problems, problem)
        sku_held = sku_at is not None and sku_at in cells
        sku = cell_text(cells[sku_at]) if sku_at is not None and sku_held else row.sku
        for channel in CHANNEL_NAMES:
            at = columns.get(channel)
            if at is not None and at in cells:
                item: str | None = cell_text(cells[at]) or sku
            elif sku_held:
                item = row.item(channel) if channel in row.typed_items else sku
            else:
                continue  # its item there is as typed: matched as usual
            if item and item != NOT_SOLD:
                key = item_key(channel, item)
                out.items.setdefault(channel, {})[key] = (row.index + 1, sku)
        if sku_held:
            out.renamed.add(sku.casefold())
            # Its SKU cell holds the bot's value: the row is not the product it names, so no
            # order matches it and its Stock is not written (review attacks 39: it took another
            # listing's orders as product "8", and the Stock write then broke the put-back's
            # check, so the row stayed renamed for good).
            row.sku_unread = True
        if stock_at is not None and stock_at in cells:
            # Its Stock cell holds another product's write (`unread_cells_taken`): no Stock of
            # its own, so nothing is applied to it, taken for an edit or set back from the state.
            row.stock = None
            out.stock.add(row.sku.casefold())
        wrong = [channel_at[c] for c in sorted(cells) if c in channel_at]
        if wrong:
            row.typed_items = {**row.typed_items, **dict.fromkeys(wrong)}
            if "rakuten" in wrong:
                row.rakuten_key = None
    # The sets using a component whose Stock was so taken away say why in their Status, as
    # `parse_inventory` has them say for a component whose Stock cannot be read (review
    # attacks 40: the set's order was held while its Status read OK).
    no_stock: dict[str, ComponentKind] = dict.fromkeys(out.stock, "no_stock")
    for row in rows if no_stock else ():
        parts = [c for c in row.components or () if c.sku.casefold() in no_stock]
        problems = component_problems(row.sku, parts, no_stock) if parts else []
        if problems:
            row.problems = (*row.problems, *problems, *(() if row.set_broken else (waits(),)))
            row.set_broken = True
    return out


def _unread_cells(sheet: _Sheet, rows: Sequence[Row]) -> list[list[Any]]:
    """[SKU, Stock, Shown] as first read, of the product rows whose Stock cannot be read."""
    stock_at, shown_at = sheet.first.columns["stock"], sheet.first.columns["shown"]
    out: list[list[Any]] = []
    for row in rows:
        if row.stock is not None or row.is_set or not row.matchable:
            continue
        line = sheet.grid[row.index] if row.index < len(sheet.grid) else []
        if line:
            cells = [line[c] if c < len(line) else "" for c in (stock_at, shown_at)]
            out.append([row.sku, *cells])
    return out


def _cell_names(cells: Mapping[int, Mapping[int, object]]) -> str:
    """Cells as A1 names, in order, the first few only (a column moved on thousands of rows)."""
    names = [
        f"{column_letters(column)}{index + 1}"
        for index, columns in sorted(cells.items())
        for column in sorted(columns)
    ]
    shown = ", ".join(names[:CELLS_NAMED])
    if len(names) > CELLS_NAMED:
        shown += " " + _("and {count} more").format(count=len(names) - CELLS_NAMED)
    return shown


def _with_start(stored: tuple[str, str]) -> str:
    """A stored cursor, with the clean start added to a time-only cursor of earlier versions.

    Those cursors held only `until`; adapters that now also keep the clean start in the cursor
    would otherwise take it as `until` less the old overlap, and never search back before it.
    """
    cursor, started = stored
    try:
        data = json.loads(cursor)
    except ValueError:
        return cursor
    if isinstance(data, dict) and "until" in data and "start" not in data:
        data["start"] = started
        return json.dumps(data, sort_keys=True)
    return cursor


# Python's collector thresholds while the pushes run (`_collector_during_pushes`): a young
# collection every 10,000 new objects, not 700, the older generations after every 10 of the
# younger, as Python's own.
PUSH_COLLECTOR_THRESHOLDS = (10_000, 10, 10)
# The collector comes on only for a push of at least this many items (a first push of a large
# sheet), or of at least this many calls (every httpx call leaves about 8 KB in reference
# cycles: 2,999 Amazon PATCHes held 23 MB to the push's end, review attacks 13). Turning it on
# costs a walk over every object the cycle made so far (0.16 s at 100,000 rows, a third of a
# quiet cycle at 10,000); a smaller push leaves a few MB, gone when the cycle ends and the
# collector is back on.
PUSH_COLLECTOR_FROM = 20_000
PUSH_COLLECTOR_FROM_CALLS = 1_000
# Held by the cycle that paused the collector, so that two cycles never save and restore its
# settings over each other (`_collector_paused`).
_COLLECTOR_OWNER = threading.Lock()


@contextmanager
def _collector_paused() -> Iterator[bool]:
    """Python's cycle collector off during one cycle, and as it was again after it (issue 8).

    A cycle at 100,000 SKUs makes millions of objects that live until it ends: the sheet's
    cells, the rows, the plans. The collector starts after every 700 new objects and walked
    all of them again and again: 15 full walks, 6.4 s of a first cycle's 26 s of CPU and 0.9 s
    of a cycle with 500 order lines (bench_scale). Reference counting still frees what a cycle
    drops as it goes; only garbage held in reference cycles waits for the collector. The
    pushes make most of that (every httpx request and its answer form one), so the collector
    runs during them (`_collector_during_pushes`), and after the cycle as usual.

    One cycle at a time owns the collector (`_COLLECTOR_OWNER`): a second Cycle running in
    another thread of the process meanwhile leaves it alone, as the first cycle sets it.
    """
    if not gc.isenabled():  # turned off by whoever runs the bot: theirs to turn on
        yield False
        return
    if not _COLLECTOR_OWNER.acquire(blocking=False):  # another cycle of this process has it
        yield False
        return
    try:
        gc.disable()
        try:
            yield True
        finally:
            gc.enable()
    finally:
        _COLLECTOR_OWNER.release()


@contextmanager
def _collector_during_pushes(paused: bool) -> Iterator[None]:
    """The collector on during the pushes, if `_collector_paused` turned it off.

    A first cycle at 100,000 SKUs pushes 400,000 quantities in 750 calls and reads 1,000
    Shopify pages: with the collector off to the cycle's end, their answers peaked at 355 MB
    instead of 290 (bench_scale). It starts after every 10,000 new objects instead of 700
    (`PUSH_COLLECTOR_THRESHOLDS`): the pushes' garbage is young, and the rows and cells made
    before, still in the youngest generation, are walked a few times only as they move to the
    oldest (1.8 s of collecting in that first cycle instead of 6.4, peak 291-294 MB).
    `gc.freeze` would spare even those walks (1.0 s, 285 MB), but the objects it sets aside
    come back into the oldest generation uncounted, which the collector then seldom walks: a
    long `run` grew 150 KB a cycle.
    """
    if not paused:
        yield
        return
    before = gc.get_threshold()
    gc.set_threshold(*PUSH_COLLECTOR_THRESHOLDS)
    gc.enable()
    try:
        yield
    finally:
        gc.disable()
        gc.set_threshold(*before)
