"""Review attacks 24: the VM's disk fills up (logs grow) and the state file's writes fail.

The state file (`bot/ledger.py`, `bot/handover.py`) and the small files beside it
(`<state>.alerts.json` of `bot/health.py`, the Yahoo! call count of
`bot/channels/yahoo_quota.py`, the credential facts `bot/expiry.py` keeps in the state file)
fail to write at any point of a cycle, in a long `stockbot run` and in `stockbot sync`; then
space is freed and the bot goes on.

How the disk fills:
- `FullDisk` stands between the ledger and its SQLite connection and fails every write from
  the n-th on with "database or disk is full" (SQLITE_FULL), the way SQLite answers when the
  journal cannot grow: at the COMMIT of a transaction, at once for a write outside one. Every
  write point of a cycle is swept.
- `small_disk` mounts a 2 MB tmpfs for the state file's folder and fills it with a log file
  (real ENOSPC, real SQLite behaviour; skipped where mount is not allowed).

Held:
- The disk full from any write of a cycle on (prepare, complete, the pushes' bookkeeping,
  the report commit, the meta notes), in a `run` (the same Cycle goes on) and in `sync` (a
  fresh process each time): once space is freed, the order is applied once, the staff edit
  kept and logged once as `manual`, and the store ends on the sheet.
- A long `run` whose disk fills for three cycles: the loop goes on (each cycle fails and is
  retried at the next interval) and catches up once space is freed.
- `stockbot sync` on a full disk writes nothing to the sheet and pushes nothing; the next
  sync after space is freed catches up.
- The Yahoo! call count that cannot be saved is kept in memory and saved whole once it can.

Broke, and fixed the same session (each test failed before its fix):
- `test_a_full_disk_is_named_plainly_in_the_alert_and_the_process_log`: the alert said
  "stockbot could not finish a cycle: unexpected OperationalError" and the log "cycle failed:
  unexpected OperationalError" (SQLite's "database or disk is full" only in a traceback), and
  the sheet showed nothing. Now the cycle raises `StateFileError` (`bot.ledger.disk_failure`),
  which names the state file, the disk and what to do, in the log, the alert and once in the
  sheet (Channels `Last error` and a Log `error` row, as a stop).
- `test_a_full_disk_alerts_once_when_it_starts_and_once_when_space_is_freed`: one alert per
  cycle (the incidents file could not be saved, so every failure was "new") and none on
  recovery. Now incidents that cannot be saved are kept in memory (`alerts.Incidents`).
- `test_sync_started_on_a_full_disk_says_so_plainly_and_alerts` and
  `test_run_started_on_a_full_disk_waits_alerts_once_and_goes_on_once_space_is_freed`:
  `sync` / `run` started on a full disk ended in a traceback ("disk I/O error": SQLite cannot
  create the `-shm` file) with no alert. Now `sync` says so and exits 1, alerted; `run` says
  so, alerts once and opens the state file again every interval until it can.

Broke, fixed on 2026-12-01 (a plain test now; its expectation of the raw SQLite error
corrected to the `StateFileError` the cycle raises):
- `test_a_disk_that_fills_right_after_a_push_is_recorded_still_logs_the_push`: the push
  (TEA-001=8, CUP-001=9) is recorded in the state file, then the report commit cannot be
  prepared: its `push` Log row was lost for good. Now `Handover.commit` sends the report's Log
  rows on their own when the full disk refuses to save the commit as pending. A kill -9 at
  that instant still loses them (README Known limits).
"""

from __future__ import annotations

import logging
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.channels.yahoo_quota import DailyCalls
from bot.cli import _watched
from bot.errors import StateFileError
from bot.expiry import Credentials
from bot.health import Watch
from bot.scheduler import Loop
from bot.sync import Cycle
from tests.staff import next_cycle, stock, wait_for
from tests.test_alerts import Receiver
from tests.world import World, world

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "ALTER", "CREATE", "DROP", "COMMIT")
DISK_FULL = "database or disk is full"
TWO = [
    ["TEA-001", "Sencha", 10, "", "", "", "", "", "", ""],
    ["CUP-001", "Cup", 7, "", "", "", "", "", "", ""],
]


class FullDisk:
    """The ledger's SQLite connection on a disk that fills up at its `full_from`-th write.

    A write is a statement that changes the file outside a transaction, or the COMMIT of one:
    where SQLite reports SQLITE_FULL when its journal cannot grow.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.writes = 0
        self.full_from: int | None = None

    def _write(self, sql: str) -> None:
        head = sql.lstrip().split(None, 1)[0].upper()
        if head not in WRITES or (head != "COMMIT" and self._db.in_transaction):
            return
        self.writes += 1
        if self.full_from is not None and self.writes >= self.full_from:
            raise sqlite3.OperationalError(DISK_FULL)

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._write(sql)
        return self._db.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._write(sql)
        return self._db.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def fill_at_the_next_write(disk: FullDisk) -> None:
    disk.full_from = disk.writes + 1


@contextmanager
def after_the_push_is_recorded(
    cycle: Cycle, then: Callable[[FullDisk], None]
) -> Iterator[FullDisk]:
    """The cycle's ledger on a `FullDisk` (not full yet); `then` gets it right after the cycle
    records its push, before the report is committed (to fill it there, say)."""
    ledger = cycle.ledger
    disk = FullDisk(ledger._db)
    ledger._db = disk  # type: ignore[assignment]
    record = ledger.record_pushes

    def recorded(*args: Any, **kwargs: Any) -> None:
        record(*args, **kwargs)
        then(disk)

    ledger.record_pushes = recorded  # type: ignore[method-assign]
    try:
        yield disk
    finally:
        ledger.record_pushes = record  # type: ignore[method-assign]


@contextmanager
def small_disk(tmp: Path) -> Iterator[Path]:
    """A 2 MB disk (tmpfs) mounted in `tmp`, for the state file and the files beside it."""
    disk = tmp / "disk"
    disk.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("mounting a small tmpfs as the VM's disk needs root")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk: Path) -> Path:
    """The logs grow until the disk is full: the file that filled it."""
    junk = disk / "app.log"
    with open(junk, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError:
            pass
    return junk


def _shop(w: World) -> None:
    w.create_sheet(TWO)
    for sku in ("TEA-001", "CUP-001"):
        w.markets["rakuten"].add_item(sku, 0)


SAID = ("push", "error")  # rows that say what happened, not stock changes


def _caught_up(w: World) -> None:
    """The order of 2 TEA-001 counted once, the staff edit of CUP-001 to 9 kept, stores on it."""
    store = w.markets["rakuten"]
    assert stock(w) == {"TEA-001": 8, "CUP-001": 9}
    assert [store.quantity("TEA-001"), store.quantity("CUP-001")] == [8, 9]
    # (A full disk may have left one `error` row saying so: `test_a_full_disk_is_named...`.)
    events = [(r["Event"], r["SKU"], r["Change"]) for r in w.log() if r["Event"] not in SAID]
    assert sorted(events) == [("manual", "CUP-001", 2), ("order", "TEA-001", -2)]


# -- 1. the disk fills at every write point of a cycle ---------------------------------------


@pytest.mark.parametrize("full_from", range(1, 12))
@pytest.mark.parametrize("mode", ["run", "sync"])
def test_a_disk_full_from_any_write_of_a_cycle_loses_no_order_and_no_staff_edit(
    tmp_path: Path, mode: str, full_from: int
) -> None:
    """A sale of 2 TEA-001 on Rakuten and staff setting CUP-001 from 7 to 9; the cycle that
    should take both finds the disk full from its `full_from`-th write on (a cycle writes the
    state file ten times: notes, prepare, complete, forget, record, report...). Space is freed;
    the same `run` goes on, or `sync` is started again: everything is counted once."""
    with world(tmp_path, ("rakuten",)) as w:
        _shop(w)
        assert w.sync().ok
        next_cycle(w)
        w.markets["rakuten"].place_order([("TEA-001", 2)])
        w.set_stock("CUP-001", 9)
        with w.bot() as cycle:
            disk = FullDisk(cycle.ledger._db)
            cycle.ledger._db = disk  # type: ignore[assignment]
            disk.full_from = full_from
            try:
                cycle.run()
            except StateFileError as exc:  # SQLite's words, in a message saying what to do
                assert DISK_FULL in str(exc) and "Free space there" in str(exc)
                assert isinstance(exc.__cause__, sqlite3.OperationalError)
            disk.full_from = None  # space freed
            for _ in range(2 if mode == "run" else 0):
                next_cycle(w)
                assert cycle.run().ok
        for _ in range(2 if mode == "sync" else 1):
            assert w.sync().ok
        _caught_up(w)


def test_a_disk_that_fills_right_after_a_push_is_recorded_still_logs_the_push(
    tmp_path: Path,
) -> None:
    """The disk fills in the instant after the push to Rakuten was recorded, before the
    cycle's report (the Log's `push` row, the Channels tab) is committed. Space is freed and
    the `run` goes on: the Log should still say what the store was set to."""
    with world(tmp_path, ("rakuten",)) as w:
        _shop(w)
        assert w.sync().ok
        next_cycle(w)
        w.markets["rakuten"].place_order([("TEA-001", 2)])
        w.set_stock("CUP-001", 9)
        with w.bot() as cycle:
            with (
                after_the_push_is_recorded(cycle, fill_at_the_next_write) as disk,
                pytest.raises(StateFileError, match="disk"),
            ):
                cycle.run()
            disk.full_from = None
            for _ in range(2):
                next_cycle(w)
                assert cycle.run().ok
        _caught_up(w)
        pushes = [r["Detail"] for r in w.log("push")]
        assert any("TEA-001=8" in d for d in pushes), pushes


# -- 2. a long `run` whose disk fills for three cycles ---------------------------------------


@dataclass
class Story:
    """What a `run` loop went through: alerts, its log, what it said after each cycle."""

    alerts: list[str] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)


def _run_through_a_full_disk(
    w: World, disk: Path, hook: Receiver, caplog: pytest.LogCaptureFixture, calm: int = 4
) -> Story:
    """`stockbot run` as `cmd_run` makes it (the Watch, `_watched`, the Loop), on this world's
    fake time: one good cycle, then the disk fills, an order and a staff edit arrive, three
    cycles fail; the log file is deleted and `calm` cycles follow."""
    _shop(w)
    w.env["STOCKBOT_STATE_PATH"] = str(disk / "stockbot.sqlite3")
    w.env["STOCKBOT_ALERT_WEBHOOK_URL"] = hook.url
    settings = w.settings()
    story = Story()
    caplog.set_level(logging.INFO, logger="stockbot")
    watch = Watch(settings)
    with w.bot() as cycle:
        app = App(
            settings,
            cycle.sheet,
            cycle.ledger,
            cycle.channels,
            cycle,
            Credentials(settings, cycle.channels, ledger=cycle.ledger),
        )
        loop = Loop(lambda: _watched(watch, app.cycle.run, app).ok, settings.interval_seconds)
        loop._once()
        assert loop.failing == ""
        junk = fill(disk)
        w.markets["rakuten"].place_order([("TEA-001", 2)])
        w.set_stock("CUP-001", 9)
        for _ in range(3):
            next_cycle(w)
            loop._once()  # what the scheduler calls every interval: it must not raise
            story.failing.append(loop.failing)
        junk.unlink()
        for _ in range(calm):
            next_cycle(w)
            loop._once()
            story.failing.append(loop.failing)
    story.alerts = hook.texts()
    story.log = [r.getMessage() for r in caplog.records]
    return story


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def _channel_error(w: World, name: str) -> str:
    grid = w.sheets.get_values(w.sheet_id, "Channels")
    return next(str([*r, "", "", ""][3]) for r in grid[1:] if r and r[0] == name)


def test_a_run_loop_whose_disk_fills_goes_on_and_catches_up_once_space_is_freed(
    tmp_path: Path, hook: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Three cycles on a full disk fail and are retried each interval; the loop never ends;
    the first cycle after the log file is deleted applies the sale once and keeps the edit."""
    with small_disk(tmp_path) as disk, world(tmp_path, ("rakuten",)) as w:
        story = _run_through_a_full_disk(w, disk, hook, caplog)
        assert all(story.failing[:3]) and not any(story.failing[3:])
        assert stock(w) == {"TEA-001": 8, "CUP-001": 9}
        _caught_up(w)
        # Said once in the sheet while the disk was full, and cleared by the cycles after.
        assert len([r for r in w.log("error") if "disk" in r["Detail"]]) == 1, w.log("error")
        assert _channel_error(w, "rakuten") == ""


def test_a_full_disk_is_named_plainly_in_the_alert_and_the_process_log(
    tmp_path: Path, hook: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """The operator's phone gets an alert while the disk is full: it should say that the disk
    holding the state file is full and to free space there; so should the log's
    `cycle failed:` line, and the sheet (usable all along) should carry it in the Log."""
    with small_disk(tmp_path) as disk, world(tmp_path, ("rakuten",)) as w:
        story = _run_through_a_full_disk(w, disk, hook, caplog)
        first = story.alerts[0]
        assert "disk" in first and ("full" in first or "space" in first), first
        (failed,) = [m for m in story.log if m.startswith("cycle failed:")]
        assert "disk" in failed and str(disk) in failed, failed
        assert any("disk" in r["Detail"] for r in w.log("error")), w.log()


def test_a_full_disk_alerts_once_when_it_starts_and_once_when_space_is_freed(
    tmp_path: Path, hook: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """README: one alert when a problem starts and one when it ends, never one per cycle. A
    full disk for an afternoon is 50 cycles at the default interval."""
    with small_disk(tmp_path) as disk, world(tmp_path, ("rakuten",)) as w:
        story = _run_through_a_full_disk(w, disk, hook, caplog)
        assert len(story.alerts) == 2, story.alerts
        assert "stockbot finishes its cycles again" in story.alerts[1]


# -- 3. `stockbot sync` and `run` started on a full disk -------------------------------------


def test_sync_on_a_full_disk_writes_nothing_and_the_next_sync_after_freeing_catches_up(
    tmp_path: Path,
) -> None:
    """`stockbot sync` from cron on a full disk: it fails, the sheet and the store stay as
    they were; once the log file is deleted the next sync takes the sale and the edit."""
    with small_disk(tmp_path) as disk, world(tmp_path, ("rakuten",)) as w:
        _shop(w)
        w.env["STOCKBOT_STATE_PATH"] = str(disk / "stockbot.sqlite3")
        assert w.run_cli("sync").returncode == 0
        junk = fill(disk)
        w.markets["rakuten"].place_order([("TEA-001", 2)])
        w.set_stock("CUP-001", 9)
        assert w.run_cli("sync").returncode != 0
        assert stock(w) == {"TEA-001": 10, "CUP-001": 9}
        assert w.markets["rakuten"].quantity("CUP-001") == 7
        junk.unlink()
        done = w.run_cli("sync")
        assert done.returncode == 0, done.stderr
        _caught_up(w)


def test_sync_started_on_a_full_disk_says_so_plainly_and_alerts(
    tmp_path: Path, hook: Receiver
) -> None:
    """The disk filled while no bot ran (the cron's `sync`): the operator should read that the
    disk of the state file is full, not a traceback, and the configured alert should fire.
    (Was an expected failure: a traceback ending in 'disk I/O error', exit 1, no alert.)"""
    with small_disk(tmp_path) as disk, world(tmp_path, ("rakuten",)) as w:
        _shop(w)
        w.env["STOCKBOT_STATE_PATH"] = str(disk / "stockbot.sqlite3")
        w.env["STOCKBOT_ALERT_WEBHOOK_URL"] = hook.url
        assert w.run_cli("sync").returncode == 0
        alerts = len(hook.texts())
        fill(disk)
        done = w.run_cli("sync", timeout=60)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        assert "disk" in done.stderr and "full" in done.stderr, done.stderr
        assert len(hook.texts()) == alerts + 1


def test_run_started_on_a_full_disk_waits_alerts_once_and_goes_on_once_space_is_freed(
    tmp_path: Path, hook: Receiver
) -> None:
    """systemd starts `run` on a full disk: it says so plainly, alerts once, does not exit;
    the log file is deleted and the next interval's try opens the state file, takes the sale
    and the staff edit, and alerts that cycles finish again. SIGTERM then stops it (exit 0).
    (Was an expected failure: a traceback and exit 1, no alert.)"""
    with small_disk(tmp_path) as disk, world(tmp_path, ("rakuten",)) as w:
        _shop(w)
        w.env["STOCKBOT_STATE_PATH"] = str(disk / "stockbot.sqlite3")
        w.env["STOCKBOT_ALERT_WEBHOOK_URL"] = hook.url
        w.env["STOCKBOT_INTERVAL_SECONDS"] = "10"
        assert w.run_cli("sync").returncode == 0
        alerts = len(hook.texts())
        junk = fill(disk)
        w.markets["rakuten"].place_order([("TEA-001", 2)])
        w.set_stock("CUP-001", 9)
        err = tmp_path / "run.err"
        with open(err, "w") as out:
            bot = w.spawn("run", stderr=out)
        try:
            wait_for(lambda: "cycle failed: the state file" in err.read_text())
            wait_for(lambda: len(hook.texts()) == alerts + 1)
            assert bot.poll() is None, err.read_text()  # still there, trying again
            assert "Traceback" not in err.read_text()
            assert "disk" in hook.texts()[-1] and "full" in hook.texts()[-1]
            junk.unlink()
            wait_for(lambda: "cycles succeed again" in err.read_text(), seconds=40)
            wait_for(lambda: len(hook.texts()) == alerts + 2)
            assert "finishes its cycles again" in hook.texts()[-1]
        finally:
            bot.send_signal(signal.SIGTERM)
            assert bot.wait(timeout=60) == 0, err.read_text()
        assert stock(w) == {"TEA-001": 8, "CUP-001": 9}
        _caught_up(w)


# -- 4. the small files beside the state file ------------------------------------------------


def test_a_yahoo_call_count_that_cannot_be_saved_is_kept_and_saved_whole_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The call count's file cannot be replaced (its temporary file cannot be written): the
    calls are still counted in the process and the next save writes them all."""
    path = tmp_path / "state.sqlite3-yahoo-calls"
    now = datetime(2026, 12, 1, 3, tzinfo=UTC)
    calls = DailyCalls(path)
    calls.add(40)
    calls.save(now)
    blocked = path.with_name(path.name + ".tmp")
    blocked.mkdir()  # a write there fails, like a write on a full disk
    calls.add(7)
    calls.save(now)
    assert "could not save today's call count" in caplog.text
    assert calls.used(now) == 47
    blocked.rmdir()
    calls.add(1)
    calls.save(now)
    assert DailyCalls(path).used(now) == 48
