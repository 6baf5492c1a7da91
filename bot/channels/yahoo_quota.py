"""Yahoo! Shopping's daily call quota: how many calls this application made today, and the budget.

Yahoo allows 50,000 calls a day per application over all its APIs, and answers HTTP 403 "Your
Request was Forbidden" once they are spent (developer.yahoo.co.jp appendix/rate.html and the
shopping FAQ; MARKETPLACES.md, Yahoo "Daily quota"). Yahoo does not say when its day starts; we
count calendar days in JST, Yahoo's own time zone.

The count lives in a small JSON file beside the state file (``<state>-yahoo-calls``), not in the
order cursor: the cursor is stored only after a sheet commit, so calls of a failed cycle, the
pushes that follow the commit would go uncounted, and those are exactly the calls that pile up
when something goes wrong. The file holds ``{"day": "YYYY-MM-DD", "calls": n}``; every process
that writes (a `stockbot sync` from cron, `run`) adds what it spent when it saves, re-reading
the file first, so processes that take turns add up. Two processes saving in the same instant
may lose one's few calls: the budget's headroom covers that. `stockbot check` writes nothing
(README), so it reads the file but keeps its own calls in memory (`read_only`): a later cycle
does not see them. Those are a handful (a token, two `orderList`, a `getStock` per 1,000
items asked, an `orderInfo` per order new since the last cycle), and a run by hand, against a
headroom of 2,500 calls between `HARD_LIMIT` and the cap.

The budget keeps headroom below the cap: from `SOFT_LIMIT` the adapter reads only what a sale
needs (new orders, orders it must ask again); from `HARD_LIMIT` it reads no orders at all, and
what is left is kept for pushing stock and refreshing the token.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

__all__ = ["DAILY_CAP", "HARD_LIMIT", "SOFT_LIMIT", "DailyCalls", "jst_day"]

log = logging.getLogger(__name__)

JST = timezone(timedelta(hours=9))
DAILY_CAP = 50_000
SOFT_LIMIT = 40_000  # 80 %: changed open orders wait; new orders are still read
HARD_LIMIT = 47_500  # 95 %: no order reads; the rest is kept for setStock and the token


def jst_day(moment: datetime) -> date:
    """The calendar day in JST of an aware moment."""
    return moment.astimezone(JST).date()


class DailyCalls:
    """Today's Yahoo! calls: those saved by every process, plus this one's not saved yet."""

    def __init__(self, path: Path | None) -> None:
        self.path = path  # None: count in memory only
        self.read_only = False  # True: read `path`, never write it (`stockbot check`)
        self._day: date | None = None
        self._saved = 0  # calls of `_day` in the file when last read or written
        self._pending = 0  # calls of this process not in the file yet

    def add(self, calls: int) -> None:
        """Count calls this process made."""
        self._pending += calls

    def used(self, now: datetime) -> int:
        """Calls counted for `now`'s day, the file re-read (another process may have added)."""
        self._read(jst_day(now))
        return self._saved + self._pending

    def save(self, now: datetime) -> None:
        """Add this process's calls to the file (a new day starts from what is pending).

        When `read_only`, the calls stay pending: counted on top of the file's, never written.
        """
        self._read(jst_day(now))
        if self.read_only:
            return
        total, self._pending = self._saved + self._pending, 0
        self._saved = total
        if self.path is None:
            return
        data = {"day": str(self._day), "calls": total}
        spare = self.path.with_name(self.path.name + ".tmp")
        try:
            spare.write_text(json.dumps(data))
            os.replace(spare, self.path)
        except OSError as exc:
            # Counting must never stop a cycle; the next save writes the whole count again.
            log.warning("yahoo: could not save today's call count to %s: %s", self.path, exc)

    def _read(self, day: date) -> None:
        if self._day != day:
            self._day, self._saved = day, 0
        if self.path is None:
            return
        try:
            data = json.loads(self.path.read_text())
            stored = (date.fromisoformat(str(data["day"])), int(data["calls"]))
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("yahoo: unreadable call count in %s (%s); counting on", self.path, exc)
            return
        if stored[0] == day:
            # Another process may have added calls since; never count fewer than we know.
            self._saved = max(self._saved, stored[1])
