"""A test world: the Sheets stand-in and marketplace stand-ins on loopback, and the real bot.

Nothing of the bot is faked: the real gspread + google-auth and the real httpx adapters talk
to the stand-ins over loopback. Only time is fake, so rate limits and back-off never wait.
"""

from __future__ import annotations

import atexit
import importlib
import json
import locale
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from bot.channels import build_channels
from bot.channels.http import RetryPolicy
from bot.config import Settings
from bot.ledger import Ledger
from bot.sheet.client import SheetClient
from bot.standins.market import MarketplaceStandIn
from bot.standins.sheets import SheetsStandIn, make_service_account_info
from bot.sync import Cycle, CycleReport

ROOT = Path(__file__).resolve().parents[1]
STANDINS = {
    "rakuten": ("bot.standins.rakuten", "RakutenStandIn"),
    "yahoo": ("bot.standins.yahoo", "YahooStandIn"),
    "amazon": ("bot.standins.amazon", "AmazonStandIn"),
    "shopify": ("bot.standins.shopify", "ShopifyStandIn"),
}
HEADER = [
    "SKU",
    "Name",
    "Stock",
    "Display",
    "Rakuten",
    "Yahoo",
    "Amazon",
    "Shopify",
    "Shown",
    "Status",
]
LOG_HEADER = ["Time", "Event", "Channel", "Order", "SKU", "Change", "Before", "After", "Detail"]


class FakeTime:
    """Clocks that move only when something sleeps or a test advances them.

    The monotonic clock (rate limits, back-off) is fully fake. Wall-clock time is real time
    plus `offset`, shared with the stand-ins, so in-process cycles can be minutes apart
    (Amazon only lists changes two minutes old) without waiting; subprocess bots use real
    time, so tests that run them leave `offset` at zero.
    """

    def __init__(self) -> None:
        self.t = 1_000.0
        self.offset = timedelta(0)
        self.tick = timedelta(0)
        self.slept: list[float] = []

    def monotonic(self) -> float:
        """Seconds, monotonic."""
        return self.t

    def sleep(self, seconds: float) -> None:
        """Advance instead of waiting."""
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Let time pass."""
        self.t += seconds

    def now(self) -> datetime:
        """Wall-clock time: real time plus the offset, which moves `tick` on at every look."""
        self.offset += self.tick
        return datetime.now(UTC) + self.offset


class World:
    """Stand-ins plus a configured bot, for whole-cycle tests."""

    def __init__(self, tmp: Path, channels: Sequence[str], stack: ExitStack) -> None:
        self.tmp = tmp
        self.time = FakeTime()
        self.sheets = stack.enter_context(SheetsStandIn())
        self.markets: dict[str, MarketplaceStandIn] = {}
        for name in channels:
            module, cls = STANDINS[name]
            stand_in = getattr(importlib.import_module(module), cls)()
            # The stand-ins stamp orders with the world's wall clock (Amazon calls it `clock`).
            setattr(stand_in, "clock" if name == "amazon" else "now", self.time.now)
            self.markets[name] = stack.enter_context(stand_in)
        key = make_service_account_info(self.sheets.url + "/token")
        self.key_path = tmp / "service-account.json"
        self.key_path.write_text(json.dumps(key))
        self.sheet_id = ""
        self.env: dict[str, str] = {}
        self.channels = list(channels)

    def create_sheet(self, rows: Sequence[Sequence[Any]], channels_tab: bool = True) -> str:
        """A spreadsheet with Inventory rows under the standard header."""
        tabs: dict[str, list[list[object]]] = {
            "Inventory": [HEADER, *[list(r) for r in rows]],
            "Log": [LOG_HEADER],
        }
        if channels_tab:
            tabs["Channels"] = [["Channel", "Enabled", "Last sync", "Last error"]]
        self.sheet_id = self.sheets.create_spreadsheet("stock", tabs)
        self.env = {
            "STOCKBOT_SHEET_ID": self.sheet_id,
            "STOCKBOT_GOOGLE_CREDENTIALS": str(self.key_path),
            "STOCKBOT_SHEETS_API_URL": self.sheets.url,
            "STOCKBOT_STATE_PATH": str(self.tmp / "state.sqlite3"),
            "STOCKBOT_CHANNELS": ",".join(self.channels),
            "STOCKBOT_INTERVAL_SECONDS": "60",
        }
        for market in self.markets.values():
            self.env.update(market.env())
        return self.sheet_id

    def settings(self) -> Settings:
        """Settings from the world's environment (no .env file)."""
        return Settings.from_env(self.env)

    def today(self) -> date:
        """Today in the shop's time zone (STOCKBOT_TIMEZONE), as the bot names its days: from
        15:00 UTC that is already tomorrow in Tokyo."""
        return self.time.now().astimezone(ZoneInfo(self.settings().timezone)).date()

    @contextmanager
    def bot(self) -> Iterator[Cycle]:
        """A real bot (gspread, adapters, ledger) whose clocks are this world's fake time."""
        settings = self.settings()
        assert settings.google_credentials is not None
        sheet = SheetClient(
            settings.sheet_id,
            settings.google_credentials,
            settings.sheets_api_url,
            policy=RetryPolicy(sleep=self.time.sleep),
        )
        channels = build_channels(
            settings, sleep=self.time.sleep, clock=self.time.monotonic, wall_clock=self.time.now
        )
        ledger = Ledger(settings.state_path)
        ledger.lock()
        # The stand-ins count rates on the real clock; this bot runs on fake time.
        for market in self.markets.values():
            market.enforce_rate_limits = False  # type: ignore[attr-defined]
        try:
            yield Cycle(
                sheet,
                ledger,
                channels,
                timezone="Asia/Tokyo",
                interval_seconds=60,
                now=self.time.now,
                sleep=self.time.sleep,
            )
        finally:
            for channel in channels.values():
                channel.close()
            ledger.close()
            for market in self.markets.values():
                market.enforce_rate_limits = True  # type: ignore[attr-defined]

    def sync(self, **kwargs: Any) -> CycleReport:
        """One cycle with a fresh bot, as `stockbot sync` would run it, 150 s after the last."""
        self.time.offset += timedelta(seconds=150)
        self.time.advance(150)
        with self.bot() as cycle:
            return cycle.run(**kwargs)

    def cli_env(self, **extra: str) -> dict[str, str]:
        """The environment a subprocess bot of this world runs with."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("STOCKBOT_")}
        return {**clean, **self.env, **extra}

    def spawn(
        self, *args: str, stderr: int | IO[str] = subprocess.DEVNULL
    ) -> subprocess.Popen[str]:
        """Start `python -m bot ARGS` without waiting for it (its log to `stderr`, a file).

        A fresh interpreter, as the tests time and kill it; the fork server for `run_cli` is
        started first, so a `run_cli` beside this bot does not wait for that start.
        """
        warm_fork_server()
        return subprocess.Popen(
            [sys.executable, "-m", "bot", *args],
            env=self.cli_env(),
            cwd=self.tmp,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )

    def run_cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`python -m bot ARGS` in a subprocess with this world's environment.

        The process is forked from an interpreter that has the bot imported already
        (tests/cli_server.py), which saves each run the start and imports; a fresh
        `python -m bot` is run instead when that could differ (see `run_bot`).
        """
        return run_bot(args, env=self.cli_env(), cwd=self.tmp, timeout=timeout)

    # -- reading the sheet back ----------------------------------------------------------
    def inventory(self) -> list[dict[str, Any]]:
        """Inventory rows as dicts by header."""
        grid = self.sheets.get_values(self.sheet_id, "Inventory")
        head = [str(h) for h in grid[0]]
        return [dict(zip(head, [*r, *[""] * (len(head) - len(r))], strict=False)) for r in grid[1:]]

    def row(self, sku: str) -> dict[str, Any]:
        """One Inventory row by SKU."""
        return next(r for r in self.inventory() if str(r["SKU"]) == sku)

    def log(self, event: str | None = None) -> list[dict[str, Any]]:
        """Log rows as dicts, optionally only one event kind."""
        grid = self.sheets.get_values(self.sheet_id, "Log")
        rows = [dict(zip(LOG_HEADER, [*r, *[""] * 9], strict=False)) for r in grid[1:]]
        return [r for r in rows if event is None or r["Event"] == event]

    def set_stock(self, sku: str, value: object) -> None:
        """Staff type a new Stock value."""
        index = next(i for i, r in enumerate(self.inventory()) if str(r["SKU"]) == sku)
        self.sheets.set_value(
            self.sheet_id, "Inventory", f"C{index + 2}", value, raw=isinstance(value, str)
        )

    def set_cell(self, sku: str, column: str, value: object) -> None:
        """Staff type into a column (by letter) of a SKU's row."""
        index = next(i for i, r in enumerate(self.inventory()) if str(r["SKU"]) == sku)
        self.sheets.set_value(
            self.sheet_id, "Inventory", f"{column}{index + 2}", value, raw=isinstance(value, str)
        )


# What a fresh interpreter makes of its environment at start (encodings, locale, flags,
# paths): a fork of tests/cli_server.py has it from the server's start, so a run whose
# environment differs in these from the server's goes to a fresh `python -m bot`.
_START_VARIABLES = ("PYTHON", "LANG", "LC_", "LANGUAGE")


def _start_environment(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(_START_VARIABLES)}


class _ForkServer:
    """tests/cli_server.py, started at the first CLI run of this test process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_env: dict[str, str] = {}
        self.pending = b""

    def start(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.start_env = _start_environment(dict(os.environ))
            self.pending = b""
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "tests" / "cli_server.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=ROOT,
            )
            atexit.register(self.stop)
            assert self.answer() == {"ready": 1}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=30)

    def answer(self, deadline: float | None = None) -> dict[str, int] | None:
        """The server's next answer; None when `deadline` (monotonic) passed first."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.pending:
            if deadline is not None:
                ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    return None
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError("tests/cli_server.py ended")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        answer: dict[str, int] = json.loads(line)
        return answer

    def run(
        self, args: Sequence[str], env: dict[str, str], cwd: Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "bot", *args]
        deadline = time.monotonic() + timeout
        assert self.proc is not None and self.proc.stdin is not None
        with tempfile.TemporaryDirectory() as folder:
            out, err = Path(folder) / "stdout", Path(folder) / "stderr"
            request = {"args": list(args), "env": env, "cwd": str(cwd)}
            line = json.dumps({**request, "stdout": str(out), "stderr": str(err)}) + "\n"
            self.proc.stdin.write(line.encode())
            self.proc.stdin.flush()
            forked = self.answer()
            assert forked is not None
            ended = self.answer(deadline)
            if ended is None:
                os.kill(forked["pid"], signal.SIGKILL)
                self.answer()
                raise subprocess.TimeoutExpired(
                    cmd, timeout, out.read_text(errors="replace"), err.read_text(errors="replace")
                )
            return subprocess.CompletedProcess(cmd, ended["status"], _read(out), _read(err))


def _read(path: Path) -> str:
    """A captured stream as `subprocess.run(text=True)` decodes it."""
    with open(path, encoding=locale.getpreferredencoding(False)) as stream:
        return stream.read()


_SERVER = _ForkServer()


def warm_fork_server() -> None:
    """Start the fork server now, if it is not started yet (and not busy)."""
    if os.environ.get("TESTS_FRESH_CLI") != "1" and _SERVER.lock.acquire(blocking=False):
        try:
            _SERVER.start()
        finally:
            _SERVER.lock.release()


def run_bot(
    args: Sequence[str], *, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` as `subprocess.run(capture_output=True, text=True)` runs it: forked
    from tests/cli_server.py when this test process is free to (not already running one from
    another thread, the same start environment), else a fresh interpreter."""
    if os.environ.get("TESTS_FRESH_CLI") != "1" and _SERVER.lock.acquire(blocking=False):
        try:
            _SERVER.start()
            if _start_environment(env) == _SERVER.start_env:
                return _SERVER.run(args, env, cwd, timeout)
        finally:
            _SERVER.lock.release()
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def world(tmp: Path, channels: Sequence[str] = ("rakuten",)) -> Iterator[World]:
    """Start a world; stop its stand-ins afterwards."""
    with ExitStack() as stack:
        yield World(tmp, channels, stack)


def later(now: datetime, minutes: float) -> datetime:
    """A time `minutes` after `now`."""
    return now + timedelta(minutes=minutes)
