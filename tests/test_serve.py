"""`stockbot demo --serve` (SPEC.md section 6): the other commands, run for real against it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from bot.demo import READY


def _cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` from `folder`, configured by nothing but its `.env` file."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=folder,
        env={k: v for k, v in os.environ.items() if not k.startswith("STOCKBOT_")},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_served_demo_prints_an_env_the_other_commands_run_against_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "bot", "demo", "--serve"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("STOCKBOT_")},
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
        assert lines and lines[-1].startswith(READY), lines
        settings = [line for line in lines if not line.startswith("#")]
        assert all(line.partition("=")[0].startswith("STOCKBOT_") for line in settings), lines
        keys = {line.partition("=")[0] for line in settings}
        assert {"STOCKBOT_GOOGLE_CREDENTIALS", "STOCKBOT_STATE_PATH", "STOCKBOT_SHEET_ID"} <= keys
        (tmp_path / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")

        init = _cli(tmp_path, "init-sheet")
        assert init.returncode == 0, init.stderr
        check = _cli(tmp_path, "check")
        assert check.returncode == 0, check.stdout + check.stderr
        assert "would push to rakuten" in check.stdout
        sync = _cli(tmp_path, "sync")
        assert sync.returncode == 0, sync.stdout + sync.stderr
        assert "pushed: " in sync.stdout and "nothing" not in sync.stdout.split("pushed: ")[1]
        again = _cli(tmp_path, "check")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "nothing to push" in again.stdout
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
