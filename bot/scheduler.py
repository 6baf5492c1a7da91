"""The `run` loop: a cycle every interval, stopped cleanly by SIGTERM or Ctrl-C.

Like Home Assistant's coordinator, it logs once when cycles start failing and once when they
recover, instead of repeating the same error every interval.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

import schedule

from bot.errors import StockbotError

__all__ = ["Loop"]

log = logging.getLogger("stockbot")
EXIT_INTERRUPTED = 130  # the shell's status for a process ended by Ctrl-C


class Loop:
    """Runs `job` now and then every `interval_seconds` until `stop()`."""

    def __init__(self, job: Callable[[], bool], interval_seconds: int) -> None:
        self.job = job
        self.interval = interval_seconds
        self.stopping = threading.Event()
        self.failing = ""  # the problem last logged, empty while cycles succeed
        self._scheduler = schedule.Scheduler()

    def stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Finish the cycle in progress, then return from `run`; a second signal stops at once.

        Stopping mid-cycle is safe: the state file finds an interrupted commit at the next start.
        """
        if self.stopping.is_set() and signum is not None:
            log.warning("second stop signal: stopping now, in the middle of the cycle")
            raise SystemExit(EXIT_INTERRUPTED)
        log.info("stopping after the cycle in progress (Ctrl-C again stops at once)")
        self.stopping.set()

    def _once(self) -> None:
        """One cycle; a failure is logged when it starts or changes, recovery once."""
        problem = ""
        try:
            if not self.job():
                problem = "a marketplace failed (see above and the Log tab)"
        except StockbotError as exc:
            problem = str(exc)
        except Exception as exc:  # a bug must not end the loop: log it and try again
            log.exception("unexpected error in the cycle")
            problem = f"unexpected {type(exc).__name__}"
        if problem and problem != self.failing:
            log.error("cycle failed: %s; retrying every %d s", problem, self.interval)
        if not problem and self.failing:
            log.info("cycles succeed again")
        self.failing = problem

    def run(self) -> None:
        """Loop until stopped; signals only set a flag, so a cycle is never cut short."""
        previous = {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._scheduler.every(self.interval).seconds.do(self._once)
            self._once()
            while not self.stopping.is_set():
                self._scheduler.run_pending()
                self.stopping.wait(min(1.0, max(0.0, self._scheduler.idle_seconds or 1.0)))
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self._scheduler.clear()
