"""Review round 6: attacks on the features merged today (rollover, once-only error rows,
Stock-jump and cap warnings, check's lookups, credential expiry, demo --serve, init-sheet's
rename detection, the language choice).

Each test states what SPEC.md promises and is marked xfail(strict=True) while the defect
stands: whole cycles or `python -m bot` against the stand-ins, only the network faked.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.i18n import set_language
from tests.world import HEADER, LOG_HEADER, World, world

ROWS = [["TEA-001", "Sencha", 30, "", "", "", "", "", "", ""]]


@pytest.fixture(autouse=True)
def english_afterwards() -> Iterator[None]:
    """The language is one per process: leave it as the other tests expect it."""
    yield
    set_language("en")


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(ROWS)
        w.markets["rakuten"].add_item("TEA-001", 0)
        yield w


def _writes(w: World) -> int:
    return sum(1 for r in w.sheets.requests if r.method == "POST" and ":batchUpdate" in r.path)


# -- init-sheet on a shop's existing spreadsheet --------------------------------------------
def test_init_sheet_sets_up_a_shop_s_existing_inventory_with_its_own_columns(w: World) -> None:
    # SPEC section 6: init-sheet "creates or repairs the tabs, headers ...", and section 2:
    # staff may add their own columns. The shop's spreadsheet has its product list with a
    # price and a supplier column; Display, Shown and Status are what init-sheet adds.
    w.sheet_id = w.sheets.create_spreadsheet(
        "shop",
        {
            "Inventory": [
                ["SKU", "Name", "Stock", "Price", "Supplier"],
                ["TEA-001", "Sencha", 30, 1200, "Shizuoka Tea Co."],
            ]
        },
    )
    w.env["STOCKBOT_SHEET_ID"] = w.sheet_id
    done = w.run_cli("init-sheet")
    assert done.returncode == 0, done.stdout + done.stderr
    head = w.sheets.get_values(w.sheet_id, "Inventory")[0]
    assert {"Display", "Shown", "Status"} <= set(head)


def test_init_sheet_adds_the_log_tab_beside_a_shop_s_own_orders_tab(w: World) -> None:
    w.sheet_id = w.sheets.create_spreadsheet(
        "shop",
        {
            "Inventory": [HEADER, *ROWS],
            "Orders": [["Date", "Order", "SKU", "Qty"], ["2026-11-01", "A-1", "TEA-001", 2]],
        },
    )
    w.env["STOCKBOT_SHEET_ID"] = w.sheet_id
    done = w.run_cli("init-sheet")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "added tab Log" in done.stdout


# -- the Log rollover -------------------------------------------------------------------------
JA_HEADER = ["商品コード", "商品名", "在庫数", "表示在庫設定", "Rakuten", "Yahoo", "Amazon",
             "Shopify", "表示在庫", "状態"]  # fmt: skip
JA_LOG = ["日時", "イベント", "チャネル", "注文番号", "商品コード", "増減", "変更前", "変更後",
          "詳細"]  # fmt: skip
JA_CHANNELS = ["チャネル", "連携", "最終同期", "最終エラー"]


@pytest.fixture
def ja(tmp_path: Path) -> Iterator[World]:
    """A Japanese sheet (在庫, ログ, チャネル), Rakuten only, one cycle done."""
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(ROWS)
        w.sheet_id = w.sheets.create_spreadsheet(
            "在庫表", {"在庫": [JA_HEADER, *ROWS], "ログ": [JA_LOG], "チャネル": [JA_CHANNELS]}
        )
        w.env["STOCKBOT_SHEET_ID"] = w.sheet_id
        w.markets["rakuten"].add_item("TEA-001", 0)
        w.sync()
        yield w


def test_a_japanese_log_tab_rolls_over_under_its_own_name(
    ja: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.rollover.LOG_ROLL_CELLS", 26_000)
    order = ja.markets["rakuten"].place_order([("TEA-001", 1)])
    report = ja.sync()
    day = ja.today().isoformat()
    assert report.log_rolled_over == f"ログ（{day}まで）"
    tabs = set(ja.sheets.tab_ids(ja.sheet_id))
    assert {"ログ", f"ログ（{day}まで）"} <= tabs and "Log" not in tabs
    new = ja.sheets.get_values(ja.sheet_id, "ログ")
    assert new[0] == JA_LOG
    assert [r[1] for r in new[1:]] == ["受注", "反映"] and new[1][3] == order


def test_the_full_spreadsheet_warning_names_the_old_log_tabs_as_they_are_titled(
    ja: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SPEC section 2, Language: in Japanese everything staff read is Japanese; section 7: old
    # Log tabs are moved out before the spreadsheet nears Google's limits.
    monkeypatch.setattr("bot.rollover.LOG_ROLL_CELLS", 26_000)
    ja.sync()
    old = next(t for t in ja.sheets.tab_ids(ja.sheet_id) if t.startswith("ログ（"))
    monkeypatch.setattr("bot.sync.WARN_TOTAL_CELLS", 50_000)
    ja.sync()
    rows = ja.sheets.get_values(ja.sheet_id, "ログ")
    warning = next(str(r[8]) for r in rows[1:] if "Google" in str(r[8:9]))
    assert "ログ（" in warning and "Log" not in warning, (old, warning)


# -- once-only error rows ---------------------------------------------------------------------
def _channel_errors(w: World) -> list[str]:
    return [str(r["Detail"]) for r in w.log("error") if r["Channel"] == "rakuten"]


def test_a_push_failure_after_a_fetch_failure_is_logged_although_the_message_is_the_same(
    w: World,
) -> None:
    # SPEC section 4, "Nothing silent": every failure is in the Log tab, with what happens
    # next. First the order API is refused (orders not applied); staff fix that key setting
    # but Inventory API is now refused: orders are applied, quantities are not pushed, which
    # the first row does not say.
    w.sync()
    store = w.markets["rakuten"]
    store.fail(401, times=10_000, match="searchOrder")
    assert "rakuten" in w.sync().failed_channels
    with store.lock:
        store.faults.clear()
    store.fail(401, times=10_000, match="inventories/bulk-upsert")
    w.set_stock("TEA-001", 40)
    report = w.sync()
    assert "rakuten" in report.failed_channels
    assert any("push to rakuten failed" in e for e in _channel_errors(w)), _channel_errors(w)


# -- check writes nothing ---------------------------------------------------------------------
def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_check_after_a_sync_changes_no_file_and_writes_nothing(w: World) -> None:
    # SPEC section 6: check "... writing nothing".
    w.sync()
    w.markets["rakuten"].place_order([("TEA-001", 1)])
    before, writes = _files(w.tmp), _writes(w)
    done = w.run_cli("check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "would log order" in done.stdout
    assert _writes(w) == writes
    after = _files(w.tmp)
    assert sorted(after) == sorted(before)
    assert [k for k in after if after[k] != before[k]] == []


def test_init_sheet_adds_a_log_tab_beside_the_bot_s_own_old_log_tabs(w: World) -> None:
    # SPEC section 7: a full Log is renamed `Log until …` and a new `Log` started; section 6:
    # init-sheet creates or repairs the tabs. Staff moved the current Log tab out with the
    # old ones (Copy to, delete); init-sheet must start a new one, not ask to rename an
    # archive back into the Log the bot appends to.
    w.sheet_id = w.sheets.create_spreadsheet(
        "shop",
        {
            "Inventory": [HEADER, *ROWS],
            "Log until 2026-11-30": [
                LOG_HEADER,
                ["2026-11-30T09:00:00+09:00", "manual", "", "", "TEA-001", 5, 25, 30, ""],
            ],
            "Channels": [["Channel", "Enabled", "Last sync", "Last error"]],
        },
    )
    w.env["STOCKBOT_SHEET_ID"] = w.sheet_id
    done = w.run_cli("init-sheet")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "added tab Log" in done.stdout
    assert "Log until 2026-11-30" in w.sheets.tab_ids(w.sheet_id)


# -- demo --serve -------------------------------------------------------------------------------
def test_demo_serve_closed_with_its_terminal_leaves_no_files_behind(tmp_path: Path) -> None:
    # SPEC section 6: demo --serve keeps the stand-ins running until Ctrl-C; an operator who
    # closes the terminal window instead (SIGHUP) must not find stockbot-demo-* folders with
    # service-account keys piling up in /tmp.
    import os
    import signal
    import subprocess
    import sys

    from bot.demo import READY

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKBOT_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "bot", "demo", "--serve"],
        cwd=tmp_path,
        env={**env, "TMPDIR": str(scratch)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if line.startswith(READY):
                break
        assert list(scratch.iterdir()), "the demo keeps its files in TMPDIR"
        server.send_signal(signal.SIGHUP)
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if server.stdout is not None:
            server.stdout.close()
    assert sorted(p.name for p in scratch.iterdir()) == []


# -- credential expiry ----------------------------------------------------------------------------
@pytest.fixture
def y(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("yahoo",)) as y:
        y.create_sheet(ROWS)
        yield y


def _yahoo_notices(y: World) -> dict[str, str]:
    from bot.channels import build_channels
    from bot.expiry import Credentials, notices

    settings = y.settings()
    channels = build_channels(settings, sleep=y.time.sleep, wall_clock=y.time.now)
    try:
        return dict(notices(Credentials(settings, channels, now=y.time.now).review()))
    finally:
        for channel in channels.values():
            channel.close()


def test_a_bot_moved_with_its_state_file_still_warns_of_the_yahoo_token_in_time(
    y: World,
) -> None:
    # SPEC section 5: alerts when a credential is about to expire. The README's way to move
    # the bot: back up STOCKBOT_STATE_PATH and restore it on the new VM.
    import shutil

    y.sync()
    assert _yahoo_notices(y) == {}  # first sight of the token
    y.time.offset += timedelta(days=20)
    y.sync(release=True)  # the old VM's last cycle; then it is stopped
    moved = y.tmp / "new-vm"
    moved.mkdir()
    shutil.copy(y.tmp / "state.sqlite3", moved / "state.sqlite3")
    y.env["STOCKBOT_STATE_PATH"] = str(moved / "state.sqlite3")
    y.sync()
    y.time.offset += timedelta(days=4)  # 24 days after first sight: 4 days left at most
    assert "yahoo" in _yahoo_notices(y)
