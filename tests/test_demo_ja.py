"""`STOCKBOT_LANGUAGE=ja stockbot demo`: the story on a Japanese sheet, told in Japanese.

The demo builds its sheet from `sheet_template/ja/` (在庫, ログ, チャネル), so the real bot
writes Japanese Event names and Status texts there, and the printout is Japanese too. The
English demo is `tests/test_cli.py::test_demo_runs_the_whole_story_offline`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from bot.demo import READY
from tests.world import ROOT


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("STOCKBOT_")}, **extra}


def test_demo_in_japanese_writes_and_tells_the_story_in_japanese(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=_env(STOCKBOT_LANGUAGE="ja"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # The sheet's own headers head the tables; the Log rows the bot wrote carry Japanese events.
    assert "商品コード" in out and "在庫数" in out and "状態" in out
    for event in ("受注", "キャンセル", "手動", "売り越し", "反映"):
        assert re.search(rf"^  \d\d:\d\d:\d\d {event}", out, re.M), event
    assert "在庫数がシートで変更されました" in out  # a Detail the bot wrote, in Japanese
    assert '表示在庫設定 "+abc"' in out  # the typo's Status on its row
    assert "Stock changed in the sheet" not in out and "== Cycle" not in out
    assert "同期5" in out and "デモ終了" in out
    last = out.strip().splitlines()[-1]
    headings = {
        line.lstrip("#").strip()
        for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    named = re.findall(r"'([^']+)'", last)
    assert "はじめに" in named and all(name in headings for name in named), named


def test_served_demo_in_japanese_serves_a_japanese_sheet_the_commands_sync(
    tmp_path: Path,
) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "bot", "demo", "--serve"],
        cwd=tmp_path,
        env=_env(STOCKBOT_LANGUAGE="ja"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        lines = []
        for line in server.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith(READY):
                break
        assert "STOCKBOT_LANGUAGE=ja" in lines
        (tmp_path / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")
        sync = subprocess.run(
            [sys.executable, "-m", "bot", "sync"],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sync.returncode == 0, sync.stdout + sync.stderr
        assert "pushed: rakuten 5" in sync.stdout
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "代役サーバー" in err and "停止しました" in err
