"""The state path as the operator meets it: a path the bot cannot use, `check` that writes
nothing, and `reset-state` only for a state file `sync` refuses (tests/test_newuser_review.py
sections 1, 2, 3 and 6 hold the reviewer's cases; these close the ones they leave open)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.channels.yahoo_quota import DailyCalls
from bot.errors import ConfigError
from bot.ledger import Ledger
from tests.staff import backup
from tests.world import World, world

ROWS = [
    ["TEA-001", "Sencha", 30, "", "", "", "", "", "", ""],
    ["TEA-002", "Gyokuro", 5, "", "", "", "", "", "", ""],
]
NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(ROWS)
        for item in ("TEA-001", "TEA-002"):
            w.markets["rakuten"].add_item(item, 0)
        yield w


def _state(w: World) -> Path:
    return Path(w.env["STOCKBOT_STATE_PATH"])


def _stock(w: World, sku: str) -> int:
    return int(w.row(sku)["Stock"])


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its content: what a command wrote shows as a change."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _meta(state: Path, key: str) -> str | None:
    with sqlite3.connect(state) as db:
        row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _lines(state: Path) -> int:
    with sqlite3.connect(state) as db:
        return int(db.execute("SELECT count(*) FROM lines").fetchone()[0])


# -- a state path the bot cannot use -------------------------------------------------------


@pytest.mark.parametrize("command", ["sync", "check", "reset-state"])
def test_a_state_path_that_is_a_folder_is_a_configuration_error(w: World, command: str) -> None:
    folder = w.tmp / "state-folder"
    folder.mkdir()
    w.env["STOCKBOT_STATE_PATH"] = str(folder)
    done = w.run_cli(command, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, done.stderr
    assert "STOCKBOT_STATE_PATH" in done.stderr and "is a folder" in done.stderr
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("command", ["sync", "check"])
def test_a_state_path_deep_under_a_plain_file_names_that_file(w: World, command: str) -> None:
    blocker = w.tmp / "stockbot"
    blocker.write_text("not a folder\n")
    w.env["STOCKBOT_STATE_PATH"] = str(blocker / "var" / "lib" / "stockbot.sqlite3")
    done = w.run_cli(command, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"{blocker} is a file, not a folder" in done.stderr
    assert blocker.read_text() == "not a folder\n"


def test_a_file_that_is_not_a_state_file_is_left_as_it_was(w: World) -> None:
    wrong = w.tmp / "stockbot.env"
    wrong.write_text("STOCKBOT_CHANNELS=rakuten\n" * 200)
    w.env["STOCKBOT_STATE_PATH"] = str(wrong)
    for command in ("sync", "reset-state"):
        done = w.run_cli(command, timeout=60)
        assert done.returncode == 2, done.stderr
        assert "not a stockbot state file" in done.stderr
    assert wrong.read_text() == "STOCKBOT_CHANNELS=rakuten\n" * 200
    for suffix in ("-wal", "-shm", ".lock"):  # nothing of SQLite's or the lock's beside it
        assert not Path(f"{wrong}{suffix}").exists()


def test_the_unusable_state_path_message_is_in_japanese_when_asked(w: World) -> None:
    blocker = w.tmp / "stockbot"
    blocker.write_text("not a folder\n")
    w.env["STOCKBOT_STATE_PATH"] = str(blocker / "stockbot.sqlite3")
    w.env["STOCKBOT_LANGUAGE"] = "ja"
    done = w.run_cli("sync", timeout=60)
    assert done.returncode == 2
    assert "状態ファイルを置けません" in done.stderr, done.stderr
    assert "STOCKBOT_STATE_PATH" in done.stderr


def test_a_busy_state_file_is_not_taken_for_a_configuration_error(tmp_path: Path) -> None:
    """Only a path that cannot hold a state file is the operator's to fix: a healthy file
    another process holds (here, before it is a WAL file) is SQLite's error, raised as it is."""
    state = tmp_path / "stockbot.sqlite3"
    holder = sqlite3.connect(state, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked") as caught:
            Ledger(state)
        assert not isinstance(caught.value, ConfigError)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# -- `check` writes nothing -------------------------------------------------------------


def test_check_on_a_moved_bot_creates_neither_the_folder_nor_the_state_file(w: World) -> None:
    assert w.run_cli("sync").returncode == 0
    moved = w.tmp / "new-vm" / "stockbot.sqlite3"
    w.env["STOCKBOT_STATE_PATH"] = str(moved)
    done = w.run_cli("check")
    assert done.returncode == 2
    assert f"the state file {moved} is new" in done.stderr, done.stderr
    assert not moved.parent.exists()


def test_check_leaves_yahoo_call_count_and_state_file_as_they_were(tmp_path: Path) -> None:
    with world(tmp_path, ("yahoo",)) as w:
        w.create_sheet(ROWS)
        for item in ("TEA-001", "TEA-002"):
            w.markets["yahoo"].add_item(item, 0)
        assert w.run_cli("sync").returncode == 0
        state = _state(w)
        calls = state.with_name(state.name + "-yahoo-calls")
        assert calls.exists()  # sync counts its calls in the file
        before = _files(state.parent)
        done = w.run_cli("check")
        assert done.returncode == 0, done.stdout + done.stderr
        assert _files(state.parent) == before


def test_a_read_only_call_count_adds_its_calls_to_the_files_and_never_writes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stockbot.sqlite3-yahoo-calls"
    path.write_text('{"day": "2026-11-30", "calls": 100}')
    calls = DailyCalls(path)
    calls.read_only = True
    calls.add(3)
    calls.save(NOW)
    calls.add(2)
    calls.save(NOW)
    assert calls.used(NOW) == 105
    assert path.read_text() == '{"day": "2026-11-30", "calls": 100}'
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


# -- `reset-state` only for a state file sync refuses -------------------------------------


def _lost(w: World) -> None:
    for path in _state(w).parent.glob(_state(w).name + "*"):
        path.unlink()


def _restored(w: World) -> None:
    saved = w.tmp / "saved.sqlite3"
    backup(_state(w), saved)
    w.markets["rakuten"].place_order([("TEA-002", 1)])
    assert w.run_cli("sync").returncode == 0
    for suffix in ("", "-wal", "-shm"):
        Path(f"{_state(w)}{suffix}").unlink(missing_ok=True)
    backup(saved, _state(w))


def _of_another_sheet(w: World) -> None:
    w.create_sheet(ROWS)  # STOCKBOT_SHEET_ID now names a second spreadsheet


def _not_holding_together(w: World) -> None:
    with sqlite3.connect(_state(w)) as db:
        db.execute("UPDATE meta SET value='0:0:0:0:0:0:0' WHERE key='tally'")


REFUSED: dict[str, tuple[Callable[[World], None], str]] = {
    "lost": (_lost, "is new"),
    "restored": (_restored, "older than the sheet"),
    "another sheet": (_of_another_sheet, "belongs to spreadsheet"),
    "does not hold together": (_not_holding_together, "does not hold together"),
}


@pytest.mark.parametrize("kind", list(REFUSED))
def test_reset_state_resets_every_kind_of_state_file_sync_refuses(w: World, kind: str) -> None:
    assert w.run_cli("sync").returncode == 0
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    assert w.run_cli("sync").returncode == 0
    spoil, refusal = REFUSED[kind]
    spoil(w)
    refused = w.run_cli("sync")
    assert refused.returncode == 2 and refusal in refused.stderr, refused.stderr
    before = _stock(w, "TEA-001")
    done = w.run_cli("reset-state")
    assert done.returncode == 0, done.stderr
    assert "starting afresh" in done.stdout
    first = w.run_cli("sync")  # starts clean: the state file is taken
    assert first.returncode == 0, first.stderr
    w.markets["rakuten"].place_order([("TEA-001", 1)])
    for _ in range(2):
        again = w.run_cli("sync")
        assert again.returncode == 0, again.stderr
    assert _stock(w, "TEA-001") == before - 1  # counted once, from the sheet as it was


def test_reset_state_refuses_a_healthy_state_file_and_changes_nothing(w: World) -> None:
    assert w.run_cli("sync").returncode == 0
    w.markets["rakuten"].place_order([("TEA-001", 2)])
    assert w.run_cli("sync").returncode == 0
    state = _state(w)
    last, lines = _meta(state, "last_commit"), _lines(state)
    done = w.run_cli("reset-state")
    assert done.returncode == 2
    assert "nothing needs resetting" in done.stderr and "--force" in done.stderr, done.stderr
    assert "starting afresh" not in done.stdout
    assert (_meta(state, "last_commit"), _lines(state)) == (last, lines) and lines == 1


def test_reset_state_refuses_when_neither_state_file_nor_sheet_was_used(w: World) -> None:
    done = w.run_cli("reset-state")
    assert done.returncode == 2
    assert "nothing needs resetting" in done.stderr, done.stderr
    assert not _state(w).exists()
    assert w.run_cli("sync").returncode == 0  # a first sync starts it as it always did


def test_reset_state_refusal_is_in_japanese_when_asked(w: World) -> None:
    assert w.run_cli("sync").returncode == 0
    w.env["STOCKBOT_LANGUAGE"] = "ja"
    done = w.run_cli("reset-state")
    assert done.returncode == 2
    assert "リセットの必要はなく" in done.stderr, done.stderr


def test_reset_state_force_resets_a_healthy_state_file_as_asked(w: World) -> None:
    assert w.run_cli("sync").returncode == 0
    order = w.markets["rakuten"].place_order([("TEA-001", 2)])
    assert w.run_cli("sync").returncode == 0
    done = w.run_cli("reset-state", "--force")
    assert done.returncode == 0, done.stderr
    assert "starting afresh" in done.stdout
    assert _lines(_state(w)) == 0
    w.markets["rakuten"].cancel_order(order)
    assert w.run_cli("sync").returncode == 0
    assert _stock(w, "TEA-001") == 28  # the cancellation is given up, as --force says


def test_reset_state_help_names_the_force_flag() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "reset-state", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--force" in done.stdout and "never put back" in done.stdout
