"""One cycle: read the sheet, fetch orders, apply them, commit, push, report.

Sheets requests per cycle, whatever the number of SKUs and orders: 2 reads (tabs and developer
metadata; the three tabs' values), 1 read just before the commit (the SKU and Stock columns,
so a staff edit made meanwhile is kept), 1 atomic write (the commit), 1 write (push results);
plus, when this bot does not already hold the sheet, 1 lease write and 1 read to confirm it.

The gap between fetching a marketplace's orders and pushing to it: all marketplaces are
fetched at the same time, then the sheet commit is made, then all are pushed at the same
time. A sale made on a marketplace inside that gap (one fetch, one commit) can be overwritten
by the push for that long; it is fetched in the next cycle and applied then, so Stock stays
right and the marketplace is corrected on the following push. Shopify's compare-and-set
closes even that gap.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.apply import Event, Plan, plan
from bot.channels.base import Channel, FetchResult, PushResult, StockUpdate
from bot.errors import LockedError, SheetError, StockbotError
from bot.inventory import Row, parse_inventory
from bot.ledger import Changes, Ledger
from bot.rules import CellError, cell_text, parse_stock, shown_quantity
from bot.sheet.client import SheetClient
from bot.sheet.layout import Layout, column_letters, find_layout, find_tabs, header_key
from bot.sheet.writes import COMMIT_KEY, LEASE_KEY, append_rows, column_runs, set_metadata

__all__ = ["Cycle", "CycleReport", "PushPlan"]

log = logging.getLogger("stockbot")

LEASE = timedelta(minutes=15)  # how long a quiet bot keeps the sheet to itself
COMMIT_TRIES = 3
PUSH_DETAIL_ITEMS = 200
MOVED = (
    "rows were moved or sorted while the bot synced; that cycle wrote nothing and the next "
    "one applied its orders"
)  # a push row lists this many items, then counts the rest


@dataclass
class PushPlan:
    """What a cycle pushes (or would push) to one channel."""

    channel: str
    updates: list[StockUpdate]
    skus: dict[str, str]  # item -> sku
    resync: set[str] = field(default_factory=set)  # pushed after re-reading the marketplace


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

    @property
    def ok(self) -> bool:
        """Whether every enabled channel synced."""
        return not self.failed_channels


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
    ) -> None:
        self.sheet = sheet
        self.notices = dict(notices or {})  # channel -> a warning shown while it has no error
        self.ledger = ledger
        self.channels = dict(channels)
        self.tz = ZoneInfo(timezone)
        self.interval = timedelta(seconds=interval_seconds)
        self.now = now or (lambda: datetime.now(self.tz))
        self.sleep = sleep
        instance = ledger.get_meta("instance")
        if instance is None:
            instance = uuid.uuid4().hex[:12]
            ledger.set_meta("instance", instance)
        self.instance = instance
        self._metadata_keys: set[str] = set()
        self._status_written: dict[int, str] = {}

    # -- the cycle -----------------------------------------------------------------------
    def run(self, *, dry_run: bool = False, release: bool = False) -> CycleReport:
        """One cycle; `dry_run` computes everything and writes nothing."""
        reads, writes = self.sheet.reads, self.sheet.writes
        report = CycleReport()
        try:
            self._run(report, dry_run=dry_run, release=release)
        finally:
            report.sheet_reads = self.sheet.reads - reads
            report.sheet_writes = self.sheet.writes - writes
        return report

    def _run(self, report: CycleReport, *, dry_run: bool, release: bool) -> None:
        metadata = self.sheet.metadata()
        marks = _developer_metadata(metadata)
        self._metadata_keys = set(marks)
        if not dry_run:
            self._recover(marks.get(COMMIT_KEY))
        self._check_lease(marks.get(LEASE_KEY))
        layout, grids = self._read(metadata)
        rows = parse_inventory(grids["inventory"], layout.inventory.columns)
        report.rows = rows
        enabled, channel_rows = self._enabled(grids["channels"], layout)
        if not dry_run and not self._holds_lease(marks.get(LEASE_KEY)):
            self._write_lease(release=False)
            # Two bots may have read "free" at the same moment and both written: read back,
            # and give way unless every lease entry is this bot's.
            for lease in _entries(self.sheet.metadata(), LEASE_KEY):
                self._check_lease(lease)

        fetched_at = self.now()
        fetched = self._fetch(enabled, report, fetched_at)
        starts = {ch: self._start(ch, fetched_at) for ch in fetched}
        the_plan = self._plan(rows, fetched, starts)
        if dry_run:
            report.events = the_plan.events
            report.pushes = self._push_plans(rows, the_plan, fetched)
            return

        outbox = self.ledger.outbox()

        def prepare(rows: Sequence[Row], the_plan: Plan) -> tuple[str, list[dict[str, Any]]]:
            for ch, fetch in fetched.items():
                the_plan.changes.cursors[ch] = (fetch.cursor, starts[ch].isoformat())
            the_plan.changes.outbox_done = [seq for seq, _ in outbox]
            stamp = self._stamp()
            log_rows = [r for _, r in outbox] + [
                _log_row(layout, stamp, e) for e in the_plan.events
            ]
            requests = self._commit_requests(layout, rows, the_plan, log_rows)
            return self._prepare("cycle", requests, the_plan.changes)

        # Everything is computed and saved before the last read of Stock, so that only one
        # request round trip separates that read from the commit (the staff-edit window).
        # A retry after a refused commit goes through the re-read again for the same reason.
        first_rows, first_plan = rows, the_plan
        for attempt in range(1, COMMIT_TRIES + 1):
            prepared = prepare(rows, the_plan)
            try:
                fresh_rows, fresh_plan = self._reread(
                    layout, first_rows, fetched, starts, first_plan
                )
            except StockbotError:
                self.ledger.discard(prepared[0])
                raise
            if fresh_plan is not the_plan:
                rows, the_plan = fresh_rows, fresh_plan
                prepared = prepare(rows, the_plan)
            if self._send_once(*prepared, last=attempt == COMMIT_TRIES):
                break
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
        report.events = the_plan.events

        plans = self._push_plans(rows, the_plan, fetched)
        report.pushes = plans
        results = self._push(plans, report)
        self._report(layout, rows, plans, results, enabled, channel_rows, report, release)

    # -- steps ---------------------------------------------------------------------------
    def _recover(self, marker: str | None) -> None:
        pending = self.ledger.pending()
        if pending is None:
            return
        if marker == pending.id:
            log.info(
                "finishing commit %s, which reached the sheet before the bot stopped", pending.id
            )
            self.ledger.complete(pending.id)
        else:
            log.info(
                "dropping commit %s, which never reached the sheet; its orders are fetched again",
                pending.id,
            )
            self.ledger.discard(pending.id)

    def _check_lease(self, lease: str | None) -> None:
        holder, until = _parse_lease(lease)
        if holder and holder != self.instance and until > self.now():
            raise LockedError(
                f"another stockbot ({holder}) is writing to this sheet until "
                f"{until.isoformat(timespec='seconds')}; stop it first (only one bot may "
                "write to a sheet)"
            )

    def _holds_lease(self, lease: str | None) -> bool:
        holder, until = _parse_lease(lease)
        return holder == self.instance and until - self.now() > self.interval

    def release(self) -> None:
        """Give the sheet up at once (when `run` stops), so another bot need not wait."""
        self._write_lease(release=True)

    def _write_lease(self, *, release: bool) -> None:
        until = self.now() + (timedelta(0) if release else self.interval + LEASE)
        value = json.dumps({"holder": self.instance, "until": until.isoformat()})
        self.sheet.batch_update([set_metadata(LEASE_KEY, value, LEASE_KEY in self._metadata_keys)])
        self._metadata_keys.add(LEASE_KEY)

    def _read(self, metadata: Mapping[str, Any]) -> tuple[Layout, dict[str, list[list[Any]]]]:
        tabs = find_tabs(metadata)
        quoted = {k: "'" + p["title"].replace("'", "''") + "'" for k, p in tabs.items()}
        inventory, channels, log_head = self.sheet.read(
            [quoted["inventory"], quoted["channels"], quoted["log"] + "!1:1"]
        )
        headers = {
            "inventory": inventory[0] if inventory else [],
            "channels": channels[0] if channels else [],
            "log": log_head[0] if log_head else [],
        }
        layout = find_layout(metadata, headers)
        return layout, {"inventory": inventory, "channels": channels}

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

    def _fetch(
        self, enabled: Sequence[str], report: CycleReport, now: datetime
    ) -> dict[str, FetchResult]:

        def one(name: str) -> tuple[str, FetchResult | StockbotError]:
            cursor = self.ledger.cursor(name)
            try:
                return name, self.channels[name].fetch_orders(
                    cursor[0] if cursor else None, self.ledger.open_orders(name), now
                )
            except StockbotError as exc:
                return name, exc

        fetched: dict[str, FetchResult] = {}
        with ThreadPoolExecutor(max_workers=max(1, len(enabled))) as pool:
            for name, result in pool.map(one, enabled):
                if isinstance(result, StockbotError):
                    report.failed_channels[name] = str(result)
                    log.error("%s: orders could not be read: %s", name, result)
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

    def _plan(
        self,
        rows: Sequence[Row],
        fetched: Mapping[str, FetchResult],
        starts: Mapping[str, datetime],
    ) -> Plan:
        return plan(
            rows,
            self.ledger.stock_baseline(),
            fetched,
            starts,
            self.ledger.lines,
            self.ledger.unmatched_lines(),
        )

    def _reread(
        self,
        layout: Layout,
        rows: list[Row],
        fetched: Mapping[str, FetchResult],
        starts: Mapping[str, datetime],
        the_plan: Plan,
    ) -> tuple[list[Row], Plan]:
        """Re-read SKU and Stock right before the commit; re-plan on a staff edit."""
        cols = layout.inventory.columns
        tab = layout.inventory.a1
        sku_grid, stock_grid = self.sheet.read(
            [
                f"{tab}!{column_letters(cols['sku'])}:{column_letters(cols['sku'])}",
                f"{tab}!{column_letters(cols['stock'])}:{column_letters(cols['stock'])}",
            ]
        )
        changed = False
        fresh: list[Row] = []
        for row in rows:
            now_sku = (
                cell_text(sku_grid[row.index][0])
                if row.index < len(sku_grid) and sku_grid[row.index]
                else ""
            )
            if now_sku != row.sku:
                self.ledger.queue_log_rows(
                    [
                        _log_row(
                            layout,
                            self._stamp(),
                            Event(
                                "error",
                                sku=row.sku,
                                detail=MOVED,
                            ),
                        )
                    ]
                )
                raise SheetError(
                    f"row {row.index + 1} now holds SKU '{now_sku}' instead of '{row.sku}': "
                    "rows were moved or sorted during the cycle; nothing was written, the next "
                    "cycle tries again"
                )
            raw = (
                stock_grid[row.index][0]
                if row.index < len(stock_grid) and stock_grid[row.index]
                else None
            )
            try:
                value: int | None = parse_stock(raw)
            except CellError:
                value = None
            if value == row.stock:
                fresh.append(row)
                continue
            changed = True
            problems = [p for p in row.problems if not p.startswith("Stock")]
            if value is None:
                problems.append(
                    "Stock was changed to something that is not a whole number "
                    "during the sync: type the real stock"
                )
            fresh.append(replace(row, stock=value, problems=problems))
        if not changed:
            return rows, the_plan
        log.info("a staff edit to Stock landed during the cycle; re-applying on top of it")
        return fresh, self._plan(fresh, fetched, starts)

    def _stamp(self) -> str:
        return self.now().astimezone(self.tz).isoformat(timespec="seconds")

    def _commit_requests(
        self, layout: Layout, rows: Sequence[Row], the_plan: Plan, log_rows: list[list[Any]]
    ) -> list[dict[str, Any]]:
        inv = layout.inventory
        shown: dict[int, object] = {}
        status: dict[int, object] = {}
        errors = self._push_errors()
        for row in rows:
            stock = the_plan.final.get(row.sku, row.stock)
            if row.pushable and stock is not None and row.display is not None:
                value = shown_quantity(stock, row.display)
                if row.shown_cell != value:
                    shown[row.index] = value
            text = _status(row, errors)
            self._status_written[row.index] = text
            if row.status_cell != text:
                status[row.index] = text
        requests = column_runs(inv.sheet_id, inv.columns["stock"], the_plan.stock)
        requests += column_runs(inv.sheet_id, inv.columns["shown"], shown)
        requests += column_runs(inv.sheet_id, inv.columns["status"], status)
        requests += append_rows(layout.log.sheet_id, log_rows)
        return requests

    def _commit(self, kind: str, requests: list[dict[str, Any]], changes: Changes) -> None:
        """Write `requests` and the commit marker atomically; keep the ledger in step."""
        prepared = self._prepare(kind, requests, changes)
        for attempt in range(1, COMMIT_TRIES + 1):
            if self._send_once(*prepared, last=attempt == COMMIT_TRIES):
                return
            prepared = self._prepare(kind, requests, changes)

    def _prepare(
        self, kind: str, requests: list[dict[str, Any]], changes: Changes
    ) -> tuple[str, list[dict[str, Any]]]:
        """Save the commit as pending; return its id and the batchUpdate body with the marker."""
        commit_id = uuid.uuid4().hex
        self.ledger.prepare(commit_id, kind, changes)
        body = [*requests, set_metadata(COMMIT_KEY, commit_id, COMMIT_KEY in self._metadata_keys)]
        return commit_id, body

    def _send_once(self, commit_id: str, body: list[dict[str, Any]], *, last: bool) -> bool:
        """Send a prepared commit once; True when it landed (and the ledger completed it).

        False means it certainly did not land and may be prepared and sent again after a
        pause. When nobody can tell whether it landed, it raises and leaves the commit
        pending: the next cycle reads the marker and settles it, never sending it twice.
        """
        try:
            self.sheet.batch_update(body, retry=False)
        except SheetError as exc:
            # The request may have landed although no answer came back: only the marker can
            # say, and without it sending again could append the Log rows twice.
            try:
                landed = _developer_metadata(self.sheet.metadata()).get(COMMIT_KEY)
            except SheetError:
                raise exc from None
            if landed != commit_id:
                self.ledger.discard(commit_id)
                if last or not exc.retriable:
                    raise
                self.sleep(self.sheet.policy.delay(1))
                return False
        self._metadata_keys.add(COMMIT_KEY)
        self.ledger.complete(commit_id)
        return True

    def _push_errors(self) -> dict[tuple[str, str], str]:
        """The push failures still standing, by (channel, item), from the ledger."""
        return {
            (name, item): state.error
            for name in self.channels
            for item, state in self.ledger.pushes(name).items()
            if state.error
        }

    def _push_plans(
        self, rows: Sequence[Row], the_plan: Plan, fetched: Mapping[str, FetchResult]
    ) -> list[PushPlan]:
        plans: list[PushPlan] = []
        for name in fetched:
            channel = self.channels[name]
            known = self.ledger.pushes(name)
            updates: list[StockUpdate] = []
            skus: dict[str, str] = {}
            resync: set[str] = set()
            for row in rows:
                item = row.items.get(name)
                stock = the_plan.final.get(row.sku, row.stock)
                if item is None or not row.pushable or stock is None or row.display is None:
                    continue
                quantity = shown_quantity(stock, row.display, channel.max_quantity)
                state = known.get(item)
                expected = None
                if state is not None and state.quantity is not None:
                    expected = state.quantity + state.adjust
                    # Skip only when nothing sold here since the last push: a sale fetched
                    # now may have been made before that push and overwritten by it, so an
                    # item with own sales is pushed again (harmless if the store is right).
                    settled = state.adjust == 0 and not state.error and not state.stale
                    if expected == quantity and settled:
                        continue
                if state is not None and state.stale:
                    # The marketplace held another quantity than expected last time: a sale
                    # the bot had not fetched yet, or an edit made on the marketplace. Let
                    # the adapter compare with what it reads now instead of waiting forever.
                    expected = None
                    resync.add(item)
                updates.append(StockUpdate(item, quantity, expected))
                skus[item] = row.sku
            if updates:
                plans.append(PushPlan(name, updates, skus, resync))
        return plans

    def _push(
        self, plans: Sequence[PushPlan], report: CycleReport
    ) -> dict[str, PushResult | StockbotError]:
        def one(p: PushPlan) -> tuple[str, PushResult | StockbotError]:
            try:
                return p.channel, self.channels[p.channel].push(p.updates)
            except StockbotError as exc:
                return p.channel, exc

        results: dict[str, PushResult | StockbotError] = {}
        with ThreadPoolExecutor(max_workers=max(1, len(plans))) as pool:
            for name, result in pool.map(one, plans):
                results[name] = result
        for p in plans:
            result = results[p.channel]
            if isinstance(result, StockbotError):
                report.failed_channels[p.channel] = str(result)
                log.error("%s: push failed: %s", p.channel, result)
                continue
            pushed = {
                u.item: u.quantity
                for u in p.updates
                if u.item not in result.failed and u.item not in result.stale
            }
            self.ledger.record_pushes(p.channel, pushed, result.failed, result.stale)
            log.info("%s: pushed %d items in %d calls", p.channel, len(pushed), result.calls)
        return results

    def _report(
        self,
        layout: Layout,
        rows: Sequence[Row],
        plans: Sequence[PushPlan],
        results: Mapping[str, PushResult | StockbotError],
        enabled: Sequence[str],
        channel_rows: Mapping[str, int],
        report: CycleReport,
        release: bool,
    ) -> None:
        """The second write: push rows, errors, Status of failed items, the Channels tab."""
        stamp = self._stamp()
        events: list[Event] = []
        for p in plans:
            result = results[p.channel]
            if isinstance(result, StockbotError):
                events.append(
                    Event(
                        "error",
                        p.channel,
                        detail=(
                            f"push to {p.channel} failed: {result}. Nothing was recorded as "
                            "pushed; the next cycle pushes these quantities again"
                        ),
                    )
                )
                continue
            done = [
                u for u in p.updates if u.item not in result.failed and u.item not in result.stale
            ]
            if done:
                listed = ", ".join(f"{u.item}={u.quantity}" for u in done[:PUSH_DETAIL_ITEMS])
                more = len(done) - PUSH_DETAIL_ITEMS
                resynced = ", ".join(u.item for u in done if u.item in p.resync)
                note = (
                    f" ({resynced}: the store held another quantity than expected, from an "
                    "edit made there or a sale fetched later; set after re-reading it)"
                    if resynced
                    else ""
                )
                events.append(
                    Event(
                        "push",
                        p.channel,
                        sku=p.skus[done[0].item] if len(done) == 1 else "",
                        detail=f"set {len(done)} item(s) in {result.calls} call(s): {listed}"
                        + (f" … and {more} more" if more > 0 else "")
                        + note,
                    )
                )
            for item, message in result.failed.items():
                events.append(
                    Event(
                        "error",
                        p.channel,
                        sku=p.skus.get(item, ""),
                        detail=(
                            f"{p.channel} refused the quantity for {item}: {message}. "
                            "The next cycle tries again"
                        ),
                    )
                )
            if result.stale:
                log.info(
                    "%s: %d items changed on the marketplace meanwhile; they are pushed "
                    "again after the next fetch",
                    p.channel,
                    len(result.stale),
                )
        for name, message in report.failed_channels.items():
            if name not in results:
                events.append(
                    Event(
                        "error",
                        name,
                        detail=(
                            f"{message}. Orders from {name} were not applied and nothing was "
                            f"pushed to {name}; the next cycle tries again"
                        ),
                    )
                )
        report.events = [*report.events, *events]
        for event in events:
            if event.event == "error":
                log.warning("%s %s: %s", event.channel, event.sku, event.detail)

        requests: list[dict[str, Any]] = []
        errors = self._push_errors()
        inv = layout.inventory
        status: dict[int, object] = {}
        for row in rows:
            text = _status(row, errors)
            if text != self._status_written.get(row.index):
                status[row.index] = text
        if status:
            # Pushing can take minutes: write a row's Status only if it still holds its SKU.
            # (Rows moved meanwhile get their Status from the next cycle's commit.)
            col = column_letters(inv.columns["sku"])
            (now,) = self.sheet.read([f"{inv.a1}!{col}:{col}"])
            by_index = {row.index: row.sku for row in rows}
            status = {
                i: text
                for i, text in status.items()
                if i < len(now) and now[i] and cell_text(now[i][0]) == by_index[i]
            }
        requests += column_runs(inv.sheet_id, inv.columns["status"], status)
        requests += self._channel_requests(layout, enabled, channel_rows, report, stamp)
        log_rows = [_log_row(layout, stamp, e) for e in events]
        requests += append_rows(layout.log.sheet_id, log_rows)
        if release:
            requests.append(
                set_metadata(
                    LEASE_KEY,
                    json.dumps({"holder": self.instance, "until": self.now().isoformat()}),
                    LEASE_KEY in self._metadata_keys,
                )
            )
        self._commit("report", requests, Changes(log_rows=log_rows))

    def _channel_requests(
        self,
        layout: Layout,
        enabled: Sequence[str],
        channel_rows: Mapping[str, int],
        report: CycleReport,
        stamp: str,
    ) -> list[dict[str, Any]]:
        tab = layout.channels
        cols = tab.columns
        requests: list[dict[str, Any]] = []
        new_rows: list[list[object]] = []
        width = max(cols.values()) + 1
        for name in self.channels:
            error = report.failed_channels.get(name, "") or self.notices.get(name, "")
            index = channel_rows.get(name)
            if index is None:
                line: list[object] = [None] * width
                line[cols["channel"]] = name
                line[cols["enabled"]] = True
                line[cols["last_sync"]] = "" if name in report.failed_channels else stamp
                line[cols["last_error"]] = error
                new_rows.append(line)
                continue
            if name not in enabled:
                continue
            if name not in report.failed_channels:
                requests += column_runs(tab.sheet_id, cols["last_sync"], {index: stamp})
            requests += column_runs(tab.sheet_id, cols["last_error"], {index: error})
        requests += append_rows(tab.sheet_id, new_rows)
        return requests


def _developer_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(m.get("metadataKey")): str(m.get("metadataValue", ""))
        for m in metadata.get("developerMetadata", [])
    }


def _entries(metadata: Mapping[str, Any], key: str) -> list[str]:
    """Every value stored under a developer-metadata key (a race can create two)."""
    return [
        str(m.get("metadataValue", ""))
        for m in metadata.get("developerMetadata", [])
        if m.get("metadataKey") == key
    ]


def _parse_lease(lease: str | None) -> tuple[str, datetime]:
    try:
        data = json.loads(lease or "")
        until = datetime.fromisoformat(data["until"])
        return str(data["holder"]), until if until.tzinfo else until.replace(tzinfo=UTC)
    except (ValueError, KeyError, TypeError):
        return "", datetime.min.replace(tzinfo=UTC)


def _status(row: Row, push_errors: Mapping[tuple[str, str], str]) -> str:
    """The Status text of a row: its problems and its standing push failures, or OK."""
    problems = list(row.problems)
    for channel, item in row.items.items():
        if item is not None and (channel, item) in push_errors:
            problems.append(f"{channel}: {push_errors[channel, item]}")
    return "; ".join(problems) if problems else "OK"


def _log_row(layout: Layout, stamp: str, event: Event) -> list[Any]:
    cols = layout.log.columns
    line: list[Any] = [None] * (max(cols.values()) + 1)
    values = {
        "time": stamp,
        "event": event.event,
        "channel": event.channel,
        "order": event.order,
        "sku": event.sku,
        "change": event.change,
        "before": event.before,
        "after": event.after,
        "detail": event.detail,
    }
    for key, value in values.items():
        line[cols[key]] = value
    return line
