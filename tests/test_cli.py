"""The commands, run as a shop owner runs them: `python -m bot ...` in a subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.world import HEADER, LOG_HEADER, ROOT, World, world

ROWS = [
    ["TEA-001", "Sencha", 30, "+20", "", "", "", "", "", ""],
    ["TEA-002", "Gyokuro", 5, "", "", "", "", "", "", ""],
]


@pytest.fixture
def w(tmp_path: Path):
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(ROWS)
        for item in ("TEA-001", "TEA-002"):
            w.markets["rakuten"].add_item(item, 0)
        yield w


def _writes(w: World) -> int:
    return sum(
        1 for r in w.sheets.requests if r.method in ("POST", "PUT") and r.path.startswith("/v4/")
    )


def test_sync_exits_0_and_says_what_it_did(w: World) -> None:
    done = w.run_cli("sync")
    assert done.returncode == 0, done.stderr
    assert "pushed: rakuten 2" in done.stdout
    assert w.markets["rakuten"].quantity("TEA-001") == 50


@pytest.mark.parametrize(
    ("tabs", "named"),
    [
        ({"Inventory": [HEADER], "Log": [LOG_HEADER]}, "Channels"),
        (
            {
                "Inventory": [[h for h in HEADER if h != "Stock"]],
                "Log": [LOG_HEADER],
                "Channels": [["Channel", "Enabled", "Last sync", "Last error"]],
            },
            "'Stock'",
        ),
        (
            {
                "Inventory": [HEADER],
                "Log": [LOG_HEADER[:-1]],
                "Channels": [["Channel", "Enabled", "Last sync", "Last error"]],
            },
            "'Detail'",
        ),
    ],
    ids=["missing tab", "missing Stock header", "missing Log header"],
)
def test_broken_structure_exits_2_names_it_and_writes_only_the_stop(
    w: World, tabs: dict[str, list[list[object]]], named: str
) -> None:
    w.sheet_id = w.sheets.create_spreadsheet("broken", tabs)
    w.env["STOCKBOT_SHEET_ID"] = w.sheet_id
    before = _writes(w)
    inventory = w.sheets.get_values(w.sheet_id, "Inventory")
    pushes = len(w.markets["rakuten"].requests_to("bulk-upsert"))
    done = w.run_cli("sync")
    assert done.returncode == 2
    assert named in done.stderr
    # Only the stop itself (SPEC.md section 4): one Log error row where the Log is intact.
    assert _writes(w) - before <= 1
    assert w.sheets.get_values(w.sheet_id, "Inventory") == inventory
    log = w.sheets.get_values(w.sheet_id, "Log")
    if log[0] == LOG_HEADER:
        assert len(log) == 2 and log[1][1] == "error" and named in log[1][8]
    else:
        assert len(log) == 1
    assert len(w.markets["rakuten"].requests_to("bulk-upsert")) == pushes


def test_japanese_headers_and_reordered_columns_work(w: World) -> None:
    header = ["状態", "表示在庫", "在庫数", "メモ", "商品コード", "表示在庫設定"]
    w.sheet_id = w.sheets.create_spreadsheet(
        "ja",
        {
            "在庫": [header, ["", "", 7, "staff note", "TEA-002", "-2"]],
            "ログ": [
                ["Time", "Event", "Channel", "Order", "SKU", "Change", "Before", "After", "Detail"]
            ],
            "チャネル": [["Channel", "Enabled", "Last sync", "Last error"]],
        },
    )
    w.env["STOCKBOT_SHEET_ID"] = w.sheet_id
    done = w.run_cli("sync")
    assert done.returncode == 0, done.stderr
    row = w.sheets.get_values(w.sheet_id, "在庫")[1]
    assert row[0] == "OK" and row[1] == 5 and row[3] == "staff note"
    assert w.markets["rakuten"].quantity("TEA-002") == 5


def test_missing_configuration_exits_2_with_what_to_set(w: World) -> None:
    del w.env["STOCKBOT_SHEET_ID"]
    done = w.run_cli("sync")
    assert done.returncode == 2
    assert "STOCKBOT_SHEET_ID" in done.stderr


def test_a_failing_marketplace_exits_1_and_the_rest_is_still_done(w: World) -> None:
    assert w.run_cli("sync").returncode == 0
    w.set_stock("TEA-002", 9)
    w.markets["rakuten"].fail(503, times=100, match="searchOrder")
    done = w.run_cli("sync")
    assert done.returncode == 1
    assert "rakuten" in done.stdout + done.stderr
    assert [m["After"] for m in w.log("manual")] == [9]
    channels = w.sheets.get_values(w.sheet_id, "Channels")
    assert "503" in str(channels[1][3])


def test_secrets_never_reach_logs_errors_or_the_sheet(w: World) -> None:
    secret = w.env["STOCKBOT_RAKUTEN_LICENSE_KEY"]
    w.env["STOCKBOT_RAKUTEN_LICENSE_KEY"] = "SECRET-licence-0123456789"
    done = w.run_cli("-v", "sync")
    assert done.returncode == 1
    everything = (
        done.stdout
        + done.stderr
        + repr(w.sheets.get_values(w.sheet_id, "Log"))
        + repr(w.sheets.get_values(w.sheet_id, "Channels"))
    )
    assert "SECRET-licence-0123456789" not in everything
    assert "license" in everything.lower()
    key = w.key_path.read_text()
    assert "PRIVATE KEY" in key
    assert "PRIVATE KEY" not in everything
    w.env["STOCKBOT_RAKUTEN_LICENSE_KEY"] = secret


def test_check_shows_the_next_push_and_writes_nothing(w: World) -> None:
    before = _writes(w)
    done = w.run_cli("check")
    assert done.returncode == 0, done.stderr
    assert "would push to rakuten: 2 items (TEA-001=50, TEA-002=5)" in done.stdout
    assert _writes(w) == before
    assert w.markets["rakuten"].requests_to("bulk-upsert") == []


def test_init_sheet_builds_an_empty_spreadsheet_and_is_idempotent(w: World) -> None:
    w.sheet_id = w.sheets.create_spreadsheet("empty", {"Sheet1": []})
    w.env["STOCKBOT_SHEET_ID"] = w.sheet_id
    first = w.run_cli("init-sheet")
    assert first.returncode == 0, first.stderr
    assert "added tab Inventory" in first.stdout
    grid = w.sheets.get_values(w.sheet_id, "Inventory")
    assert [str(h) for h in grid[0]] == HEADER
    protected = w.sheets.protected_ranges(w.sheet_id)
    second = w.run_cli("init-sheet")
    assert second.returncode == 0, second.stderr
    assert "added" not in second.stdout and "protected" not in second.stdout
    assert w.sheets.protected_ranges(w.sheet_id) == protected
    # Display is plain text now: a typed +20 stays +20.
    w.sheets.set_value(w.sheet_id, "Inventory", "A2", "X-1")
    w.sheets.set_value(w.sheet_id, "Inventory", "C2", 4)
    w.sheets.set_value(w.sheet_id, "Inventory", "D2", "+20")
    assert w.sheets.get_values(w.sheet_id, "Inventory")[1][3] == "+20"
    assert w.run_cli("sync").returncode == 0
    assert w.sheets.get_values(w.sheet_id, "Inventory")[1][8] == 24


def test_run_stops_after_the_cycle_in_progress_on_sigterm(w: World) -> None:
    w.env["STOCKBOT_INTERVAL_SECONDS"] = "10"
    w.sheets.latency = 0.3
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        env=w.cli_env(),
        cwd=w.tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not w.sheets.requests_to(r"values:batchGet") and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopping after the cycle in progress" in err
    assert w.markets["rakuten"].quantity("TEA-001") == 50  # the cycle finished its pushes


def test_demo_runs_the_whole_story_offline(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("STOCKBOT_")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "oversold" in done.stdout
    assert "cancel" in done.stdout
    assert "manual" in done.stdout
    assert "Demo finished" in done.stdout
    # The last line sends a new user to README sections: they must exist.
    last = done.stdout.strip().splitlines()[-1]
    headings = {
        line.lstrip("#").strip()
        for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    named = re.findall(r"'([^']+)'", last)
    assert named and all(name in headings for name in named), (named, sorted(headings))


def test_rakuten_licence_key_near_expiry_is_flagged_in_check_and_the_channels_tab(
    w: World,
) -> None:
    soon = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()
    w.env["STOCKBOT_RAKUTEN_LICENSE_EXPIRES"] = soon
    check = w.run_cli("check")
    assert "licence key expires in" in check.stdout and soon in check.stdout
    assert w.run_cli("sync").returncode == 0
    channels = w.sheets.get_values(w.sheet_id, "Channels")
    assert soon in str(channels[1][3]) and channels[1][2]


def test_empty_optional_settings_in_a_dotenv_file_are_ignored(w: World) -> None:
    (w.tmp / ".env").write_text("STOCKBOT_RAKUTEN_LICENSE_EXPIRES=\nSTOCKBOT_TIMEZONE=\n")
    done = w.run_cli("sync")
    assert done.returncode == 0, done.stderr


def test_a_wrong_sheet_id_exits_2_and_says_what_to_check(w: World) -> None:
    w.env["STOCKBOT_SHEET_ID"] = "no-such-sheet"
    done = w.run_cli("sync")
    assert done.returncode == 2
    assert "STOCKBOT_SHEET_ID" in done.stderr


def test_an_empty_channel_list_exits_2_and_says_what_to_set(w: World) -> None:
    w.env["STOCKBOT_CHANNELS"] = ""
    for command in ("check", "sync", "sync"):
        done = w.run_cli(command)
        assert done.returncode == 2, done.stderr
        assert "STOCKBOT_CHANNELS is empty" in done.stderr
    # check writes nothing; sync records the stop in the Log once, not once per run.
    (error,) = w.log()
    assert "STOCKBOT_CHANNELS is empty" in error["Detail"]


def test_a_pasted_sheet_url_works_as_the_sheet_id(w: World) -> None:
    w.env["STOCKBOT_SHEET_ID"] = f"https://docs.google.com/spreadsheets/d/{w.sheet_id}/edit#gid=0"
    done = w.run_cli("sync")
    assert done.returncode == 0, done.stderr
