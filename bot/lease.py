"""The sheet lease: one bot writes to a sheet at a time (SPEC.md section 4, one writer).

The state file's lock keeps two bots on one machine and one state file apart; the lease keeps
apart bots with their own state files (two VMs, a copied state) that point at the same sheet.
It is a spreadsheet developer-metadata entry `stockbot.lease` holding who writes and until when.

- A bot takes the lease by writing it and reading it back: two bots that read "free" at the
  same moment both write, both see two entries, and both give way.
- A cycle can outlast the lease (a slow marketplace, a long rate-limit wait). Before its commit
  the cycle calls `keep`, which renews the lease the same careful way when little of it is left,
  and refuses if another bot took it meanwhile: so a lease that ran out mid-cycle never lets a
  second bot commit the same orders.
- Every entry names the machine and the state file it belongs to, and that pair, not the
  instance id kept in the state file, says whose it is: a copy of the state file on another
  machine is another bot. A bot whose state file was lost starts with a new identity; the lease
  of the earlier bot *on the same machine and the same state path* is its own (the state file's
  lock proves that earlier bot is not running), so it takes over at once instead of waiting.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.errors import LockedError, SheetError
from bot.i18n import _
from bot.sheet.client import SheetClient
from bot.sheet.writes import COMMIT_KEY, LEASE_KEY, set_metadata

__all__ = ["LEASE", "Lease", "LeaseEntry", "metadata_entries", "metadata_values"]

log = logging.getLogger("stockbot")

LEASE = timedelta(minutes=15)  # how long a quiet bot keeps the sheet to itself
RENEW_BELOW = timedelta(minutes=5)  # renew before a commit when less than this is left
# Another bot's lease counts as held this long past its end: the two machines' clocks may
# disagree, and a bot commits without reading the lease again while more than `RENEW_BELOW`
# of its own is left. A second machine with a clock 10 minutes fast took the sheet while the
# first bot still held it, and an order was applied twice (tests/test_review_attacks_12.py).
CLOCK_SKEW = timedelta(minutes=15)


@dataclass(frozen=True)
class LeaseEntry:
    """One stored lease: who holds the sheet, until when, and from which machine and state."""

    holder: str
    until: datetime
    host: str = ""
    state: str = ""

    @classmethod
    def parse(cls, text: str | None) -> LeaseEntry:
        """Read a stored value; anything unreadable is a lease nobody holds."""
        try:
            data = json.loads(text or "")
            until = datetime.fromisoformat(data["until"])
            return cls(
                str(data["holder"]),
                until if until.tzinfo else until.replace(tzinfo=UTC),
                str(data.get("host", "")),
                str(data.get("state", "")),
            )
        except (ValueError, KeyError, TypeError):
            return cls("", datetime.min.replace(tzinfo=UTC))

    def to_json(self) -> str:
        """The stored value."""
        return json.dumps(
            {
                "holder": self.holder,
                "until": self.until.isoformat(),
                "host": self.host,
                "state": self.state,
            }
        )


def metadata_values(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Spreadsheet-level developer metadata as key -> value."""
    return {
        str(m.get("metadataKey")): str(m.get("metadataValue", ""))
        for m in metadata.get("developerMetadata", [])
    }


def metadata_entries(metadata: Mapping[str, Any], key: str) -> list[str]:
    """Every value stored under a developer-metadata key (a race can create two)."""
    return [
        str(m.get("metadataValue", ""))
        for m in metadata.get("developerMetadata", [])
        if m.get("metadataKey") == key
    ]


class Lease:
    """This bot's claim on one sheet."""

    def __init__(
        self,
        sheet: SheetClient,
        instance: str,
        state_path: str,
        interval: timedelta,
        now: Callable[[], datetime],
    ) -> None:
        self.sheet = sheet
        self.instance = instance
        self.state = state_path
        self.host = socket.gethostname()
        self.interval = interval
        self.now = now
        self.until = datetime.min.replace(tzinfo=UTC)  # what this bot last wrote
        self.exists = False  # whether the metadata entry exists (create vs update)
        self._seen = LeaseEntry("", self.until)  # the entry read at the start of the cycle
        self._marker: list[str] | None = None  # the commit marker read at the start of the cycle

    def _ours(self, entry: LeaseEntry) -> bool:
        """Written by this bot, or by an earlier bot on the same machine and state file.

        The instance id alone is not enough: it lives in the state file, and a copy of the state
        file (a backup restored on a second VM while the first still runs) carries it too. The
        machine and the state file's path tell the copy apart; only entries of versions that did
        not record them are judged by the id.
        """
        if entry.host:
            return entry.host == self.host and entry.state == self.state
        return entry.holder == self.instance

    def _held(self, entry: LeaseEntry) -> bool:
        """Whether another bot's lease may still be running, by any clock within `CLOCK_SKEW`."""
        return entry.until + CLOCK_SKEW > self.now()

    def check(self, entry: LeaseEntry) -> None:
        """Raise `LockedError` when another bot holds the sheet."""
        if entry.holder and not self._ours(entry) and self._held(entry):
            holder = (
                _("{holder} on {host}").format(holder=entry.holder, host=entry.host)
                if entry.host
                else entry.holder
            )
            raise LockedError(
                _(
                    "another stockbot ({holder}) is writing to this sheet until {until}; "
                    "stop it first (only one bot may write to a sheet)"
                ).format(holder=holder, until=entry.until.isoformat(timespec="seconds"))
            )

    def check_start(self, metadata: Mapping[str, Any]) -> None:
        """At the start of a cycle: refuse if another bot holds the sheet (writes nothing)."""
        values = metadata_entries(metadata, LEASE_KEY)
        self.exists = bool(values)
        self._seen = LeaseEntry.parse(values[0] if values else None)
        self._marker = metadata_entries(metadata, COMMIT_KEY)
        self.check(self._seen)

    def take(self) -> None:
        """Hold the sheet for this cycle, unless this bot already holds it long enough.

        Long enough is the rule `keep` applies before the commit: more than `RENEW_BELOW` left.
        A `run` loop's every commit renews the lease to an interval and `LEASE` ahead, so the
        next cycle finds `LEASE` left at least and needs no write of its own, whatever the
        interval (a one-hour interval used to cost a lease write every cycle, since its
        `LEASE` left was shorter than the interval). Mutual exclusion rests on the commits'
        renewals and on `keep`, which reads before it renews a lease running short mid-cycle.
        """
        seen = self._seen
        if seen.holder and self._ours(seen) and seen.until - self.now() > RENEW_BELOW:
            self.until = seen.until
            return
        self._claim()

    def keep(self) -> None:
        """Before a commit: make sure the lease still has time left, renewing it if not."""
        if self.until - self.now() > RENEW_BELOW:
            return
        # Too little left (a long cycle): another bot may have taken the sheet once it ran
        # out. Read it first; renew only if nobody else holds it.
        for value in metadata_entries(self.sheet.metadata(), LEASE_KEY):
            entry = LeaseEntry.parse(value)
            if entry.holder and not self._ours(entry) and self._held(entry):
                raise LockedError(
                    _(
                        "this cycle outlasted its lease on the sheet and another stockbot "
                        "({holder}) took the sheet over; nothing was written. Stop one of "
                        "the two bots"
                    ).format(holder=entry.holder)
                )
        self._claim()

    def _claim(self) -> None:
        """Write the lease, then read it back and give way unless every entry is ours.

        The read-back is the write's own answer: Google returns the spreadsheet as it is right
        after the write (`includeSpreadsheetInResponse`), which saves a read request per cycle
        and leaves no gap between the write and the look.
        """
        answer = self.sheet.batch_update(
            [self.request(release=False)], extra={"includeSpreadsheetInResponse": True}
        )
        snapshot = (answer or {}).get("updatedSpreadsheet") or {}
        if not metadata_entries(snapshot, LEASE_KEY):
            # No snapshot came back (it holds our entry at least): read it.
            snapshot = self.sheet.metadata()
        for value in metadata_entries(snapshot, LEASE_KEY):
            self.check(LeaseEntry.parse(value))
        if self._marker is not None and metadata_entries(snapshot, COMMIT_KEY) != self._marker:
            # Another bot committed since this cycle looked at the lease (it found the sheet
            # free too, and its claim was overwritten by ours, which an update cannot see):
            # its orders may be ours. Give the sheet back to it and write nothing.
            with contextlib.suppress(SheetError):
                self.release()
            log.warning("another stockbot committed to the sheet while this cycle started")
            raise LockedError(
                _(
                    "another stockbot wrote to this sheet while this one was starting its "
                    "cycle; nothing was written. Stop one of the two bots (only one bot may "
                    "write to a sheet)"
                )
            )

    def request(self, *, release: bool) -> dict[str, Any]:
        """The batchUpdate request that renews (or releases) the lease inside a commit."""
        until = self.now() if release else self.now() + self.interval + LEASE
        if not release:
            self.until = until
        # A released lease names no holder: nobody holds the sheet, whatever the clocks say
        # (another bot's lease otherwise counts as held `CLOCK_SKEW` past its end).
        entry = LeaseEntry("" if release else self.instance, until, self.host, self.state)
        request = set_metadata(LEASE_KEY, entry.to_json(), self.exists)
        self.exists = True
        return request

    def release(self) -> None:
        """Give the sheet up at once (when `run` stops), so another bot need not wait."""
        self.sheet.batch_update([self.request(release=True)])
