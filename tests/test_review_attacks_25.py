"""Review attacks 25: `git diff bf75840..81f6bec -- bot/`.

1. Pruning measured from each channel's order mark (`Ledger.prune`, `horizon`, `_marks`;
   `Cycle._prune`, `_plan`, `_not_forgotten`), with an earlier version's `pruned_at` floor.
2. `reset-state` refusing a state file sync would accept (`handover.refuse_needless_reset`).
3. `check` writing no file (in-memory ledger, read-only Yahoo! count); an unusable
   STOCKBOT_STATE_PATH is a configuration error.
4. A full disk under the state file (`ledger.disk_failure`, `Cycle.run`, `cmd_run`,
   `Watch.failed`, `alerts.Incidents` kept in memory).
5. `check`'s alert setup, `unknown_variables`.

Held:
- `reset-state` beside a bot that holds the state file's lock (with or without `--force`):
  exit 3, the state file byte for byte as it was, no file made beside it.
- `disk_failure` takes neither a dropped connection (requests' ConnectionError, an OSError)
  nor a refused one for a full disk; it names ENOSPC, EDQUOT and EIO and SQLite's full disk.
- An unseen order placed long before the mark is taken as counted, and one placed after the
  last prune (mark not yet moved) is applied: a Shopify order archived years on is no sale.

Broke, and fixed the same session (each test failed before its fix):
- `test_check_after_reset_state_writes_nothing_into_the_state_file` and
  `test_sync_on_a_full_disk_after_reset_state_says_so_and_alerts`: `Cycle.__init__` wrote
  `instance` into a state file that held none: `check` wrote, and on a full disk `sync` ended
  in a traceback outside the disk-failure handling. Now the first cycle that takes the lease
  keeps it (`Cycle._keep_instance`), inside `Cycle.run`.
- `test_a_disk_out_of_inodes_is_a_full_disk_not_a_wrong_state_path`: a disk with no inodes
  left (SQLITE_CANTOPEN) was called a wrong STOCKBOT_STATE_PATH (exit 2, a stop). Now opening
  looks at the file system's free space and inodes first (`ledger._open_failure`).
- `test_a_disk_that_fills_after_another_failure_is_still_alerted_and_shown`: the `cycle`
  incident a Sheets outage had opened swallowed the full disk. Now it is an incident of its
  own kind, `disk`, ended by the first cycle that syncs.
- `test_an_earlier_versions_prune_time_in_the_future_does_not_void_the_vm_clock_guard`: an
  earlier version's `pruned_at` was a floor under the orders' horizon too. Now it is a floor
  for the ids only, which is what it is for.
- `test_check_fails_on_a_webhook_url_without_its_scheme`: now `alert_setup` checks it as it
  checks the health-check URL.

Broke, fixed on 2026-12-01 (a plain test now):
- `test_sync_from_cron_on_a_full_disk_alerts_once`: each `sync` is a new process and the
  incidents that cannot be saved lived only in its memory: one alert per sync. The incidents
  file is now made at the first observation and kept 4 KB long, and on a full disk written
  over in place (`alerts.Incidents.save`), which takes no new space.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from bot.app import App
from bot.cli import _watched
from bot.expiry import Credentials
from bot.health import Watch
from bot.ledger import disk_failure
from bot.scheduler import Loop
from tests.staff import VMClock, next_cycle, stock, wait_for
from tests.test_alerts import Receiver
from tests.test_review_attacks_24 import fill, small_disk
from tests.world import World, world

DAY = timedelta(days=1)
TWO = [
    ["TEA-001", "Sencha", 10, "", "", "", "", "", "", ""],
    ["CUP-001", "Cup", 7, "", "", "", "", "", "", ""],
]


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def _shop(w: World, channel: str = "rakuten") -> None:
    w.create_sheet(TWO)
    for sku in ("TEA-001", "CUP-001"):
        w.markets[channel].add_item(sku, 0)


def _state(w: World) -> Path:
    return Path(w.env["STOCKBOT_STATE_PATH"])


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _meta(state: Path) -> dict[str, str]:
    db = sqlite3.connect(state)
    try:
        return {str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta")}
    finally:
        db.close()


def _set_meta(state: Path, **values: str | None) -> None:
    db = sqlite3.connect(state, isolation_level=None)
    try:
        for key, value in values.items():
            db.execute("DELETE FROM meta WHERE key=?", (key,))
            if value is not None:
                db.execute("INSERT INTO meta VALUES (?, ?)", (key, value))
    finally:
        db.close()


# -- 2. reset-state beside a running bot --------------------------------------------------


def test_reset_state_beside_a_running_bot_changes_nothing(tmp_path: Path) -> None:
    """Refused (exit 3) before anything is judged or written, with `--force` too."""
    with world(tmp_path, ("rakuten",)) as w:
        _shop(w)
        assert w.run_cli("sync").returncode == 0
        w.markets["rakuten"].place_order([("TEA-001", 2)])
        assert w.run_cli("sync").returncode == 0
        w.markets["rakuten"].place_order([("TEA-001", 2)])  # the run takes it
        w.env["STOCKBOT_INTERVAL_SECONDS"] = "3600"
        state = _state(w)
        err = tmp_path / "run.err"
        with open(err, "w") as out:
            bot = w.spawn("run", stderr=out)
        try:
            wait_for(lambda: "cycle done" in err.read_text() or bot.poll() is not None)
            assert bot.poll() is None, err.read_text()
            for flags in ([], ["--force"]):
                before = _meta(state), state.read_bytes()
                done = w.run_cli("reset-state", *flags, timeout=60)
                assert (_meta(state), state.read_bytes()) == before
                assert done.returncode == 3, done.stderr
                assert "Traceback" not in done.stderr
        finally:
            bot.send_signal(signal.SIGTERM)
            assert bot.wait(timeout=60) == 0, err.read_text()
        assert w.run_cli("sync").returncode == 0
        assert stock(w)["TEA-001"] == 6


# -- 3. check writes nothing ----------------------------------------------------------------


def test_check_after_reset_state_writes_nothing_into_the_state_file(tmp_path: Path) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        _shop(w)
        assert w.run_cli("sync").returncode == 0
        state = _state(w)
        for path in state.parent.glob(state.name + "*"):
            path.unlink()  # the state file is lost (a new VM): sync would refuse
        done = w.run_cli("reset-state")
        assert done.returncode == 0, done.stderr
        before = _files(state.parent)
        assert "instance" not in _meta(state)
        checked = w.run_cli("check")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "instance" not in _meta(state)
        assert _files(state.parent) == before


# -- 4. a full disk -------------------------------------------------------------------------


def test_a_dropped_connection_is_never_taken_for_a_full_disk(tmp_path: Path) -> None:
    path = tmp_path / "stockbot.sqlite3"
    for exc in (
        requests.ConnectionError("Connection aborted.", OSError(errno.ECONNRESET, "reset")),
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
        OSError(errno.ENOENT, "No such file"),
        sqlite3.OperationalError("database is locked"),
    ):
        assert disk_failure(path, exc) is None, exc
    for exc in (
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        sqlite3.OperationalError("database or disk is full"),
    ):
        failure = disk_failure(path, exc)
        assert failure is not None and str(path) in str(failure)


def test_a_disk_out_of_inodes_is_a_full_disk_not_a_wrong_state_path(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,nr_inodes=8", "tmpfs", str(disk)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a small tmpfs as the VM's disk needs root")
    try:
        with world(tmp_path, ("rakuten",)) as w:
            _shop(w)
            w.env["STOCKBOT_STATE_PATH"] = str(disk / "stockbot.sqlite3")
            assert w.run_cli("sync").returncode == 0
            n = 0
            while True:  # many small log files use the inodes up
                try:
                    (disk / f"app.log.{n}").write_text("x")
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
                n += 1
            done = w.run_cli("sync", timeout=60)
            assert done.returncode == 1, done.stderr
            assert "cannot hold the state file" not in done.stderr, done.stderr
            assert "disk" in done.stderr and "full" in done.stderr
            for path in disk.glob("app.log.*"):
                path.unlink()
            assert w.run_cli("sync").returncode == 0
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_disk_that_fills_after_another_failure_is_still_alerted_and_shown(
    tmp_path: Path, hook: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stockbot")
    with small_disk(tmp_path) as disk, world(tmp_path, ("rakuten",)) as w:
        _shop(w)
        w.env["STOCKBOT_STATE_PATH"] = str(disk / "stockbot.sqlite3")
        w.env["STOCKBOT_ALERT_WEBHOOK_URL"] = hook.url
        settings = w.settings()
        watch = Watch(settings)
        with w.bot() as cycle:
            credentials = Credentials(settings, cycle.channels, ledger=cycle.ledger)
            app = App(settings, cycle.sheet, cycle.ledger, cycle.channels, cycle, credentials)
            loop = Loop(lambda: _watched(watch, app.cycle.run, app).ok, settings.interval_seconds)
            loop._once()
            assert loop.failing == ""
            next_cycle(w)
            w.sheets.fail(503, times=100)  # Google Sheets down for one cycle
            loop._once()
            assert "Google Sheets" in loop.failing
            w.sheets.faults.clear()
            fill(disk)
            w.markets["rakuten"].place_order([("TEA-001", 2)])
            for _ in range(3):
                next_cycle(w)
                loop._once()
                assert "could not be written" in loop.failing
        alerts = hook.texts()
        assert any("disk" in a and "full" in a for a in alerts), alerts
        assert any("disk" in r["Detail"] for r in w.log("error")), w.log()


def test_sync_from_cron_on_a_full_disk_alerts_once(tmp_path: Path, hook: Receiver) -> None:
    with small_disk(tmp_path) as disk, world(tmp_path, ("rakuten",)) as w:
        _shop(w)
        w.env["STOCKBOT_STATE_PATH"] = str(disk / "stockbot.sqlite3")
        w.env["STOCKBOT_ALERT_WEBHOOK_URL"] = hook.url
        assert w.run_cli("sync").returncode == 0
        alerts = len(hook.texts())
        fill(disk)
        for _ in range(3):
            done = w.run_cli("sync", timeout=60)
            assert done.returncode == 1 and "disk" in done.stderr, done.stderr
        assert len(hook.texts()) == alerts + 1, hook.texts()


def test_sync_on_a_full_disk_after_reset_state_says_so_and_alerts(
    tmp_path: Path, hook: Receiver
) -> None:
    with small_disk(tmp_path) as disk, world(tmp_path, ("rakuten",)) as w:
        _shop(w)
        w.env["STOCKBOT_STATE_PATH"] = str(disk / "stockbot.sqlite3")
        w.env["STOCKBOT_ALERT_WEBHOOK_URL"] = hook.url
        assert w.run_cli("sync").returncode == 0
        for path in disk.glob("stockbot.sqlite3*"):
            path.unlink()  # lost
        assert w.run_cli("reset-state").returncode == 0
        alerts = len(hook.texts())
        junk = fill(disk)
        os.truncate(junk, junk.stat().st_size - 32 * 1024)  # room for the -shm alone
        done = w.run_cli("sync", timeout=60)
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode == 1 and "disk" in done.stderr and "full" in done.stderr
        assert len(hook.texts()) == alerts + 1


# -- 1. pruning by the marks ----------------------------------------------------------------


def test_an_old_order_shown_again_after_its_id_went_is_not_a_sale(tmp_path: Path) -> None:
    """Shopify: A shipped and archived; orders keep coming for 1,000 days (A forgotten, then
    its id dropped); A is touched again (archived once more): taken as counted, no sale."""
    with world(tmp_path, ("shopify",)) as w:
        _shop(w, "shopify")
        store = w.markets["shopify"]
        assert w.sync().ok
        a = store.place_order([("TEA-001", 2)])
        assert w.sync().ok
        store.ship(a)  # type: ignore[attr-defined]
        store.archive(a)  # type: ignore[attr-defined]
        assert w.sync().ok
        for _ in range(5):
            w.time.offset += timedelta(days=200)
            store.place_order([("CUP-001", 1)])
            assert w.sync().ok
            w.time.offset += DAY
            assert w.sync().ok
        with w.bot() as cycle:
            assert a not in cycle.ledger.all_orders("shopify")  # even its id is gone
        store.archive(a)  # type: ignore[attr-defined]
        for _ in range(2):
            assert w.sync().ok
        assert stock(w) == {"TEA-001": 8, "CUP-001": 2}
        assert store.quantity("TEA-001") == 8


@pytest.mark.parametrize("vm_ahead", [True, False], ids=["vm_clock_ahead", "vm_clock_right"])
def test_an_earlier_versions_prune_time_in_the_future_keeps_a_refunded_order(
    tmp_path: Path, vm_ahead: bool
) -> None:
    """The file as an earlier version left it (no marks, its last prune 400 days ahead): A is
    kept and its refund counted, with the VM's clock 181 days ahead for a cycle (the clock
    guard still holds) and with it right."""
    with world(tmp_path, ("shopify",)) as w:
        vm = VMClock(w)
        w.create_sheet([["TEA-001", "Sencha", 10, "", "", "", "", "", "", ""]])
        store = w.markets["shopify"]
        store.add_item("TEA-001", 0)
        assert w.sync().ok
        ahead = w.time.now() + timedelta(days=400)
        _set_meta(_state(w), order_marks=None, pruned_at=ahead.isoformat())
        a = store.place_order([("TEA-001", 2)])
        assert w.sync().ok
        store.ship(a)  # type: ignore[attr-defined]
        store.archive(a)  # type: ignore[attr-defined]
        assert w.sync().ok
        if vm_ahead:
            vm.move(timedelta(days=181))
            assert w.sync().ok
            vm.move(-vm.ahead)
        w.time.offset += 7 * DAY
        store.refund(a, "TEA-001", 2, restock="RETURN")  # type: ignore[attr-defined]
        for _ in range(2):
            assert w.sync().ok
        assert stock(w)["TEA-001"] == 10
        assert store.quantity("TEA-001") == 10


# -- 5. check's alert setup -----------------------------------------------------------------


def test_check_fails_on_a_webhook_url_without_its_scheme(tmp_path: Path) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        _shop(w)
        w.env["STOCKBOT_ALERT_WEBHOOK_URL"] = "hooks.slack.com/services/T0/B0/HOOKSECRET"
        done = w.run_cli("check")
        said = done.stdout + done.stderr
        assert "HOOKSECRET" not in said
        assert done.returncode == 1, said
        assert "FAILED alerts" in done.stdout and "STOCKBOT_ALERT_WEBHOOK_URL" in done.stdout
