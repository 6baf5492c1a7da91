"""The exactly-once hand-over between the state file and the sheet (see `bot.ledger`).

Every sheet write of a cycle goes through the same four steps, all here:

1. **prepare**: the ledger saves what the commit implies as *pending*, under a fresh id;
2. **send once**: one atomic `spreadsheets.batchUpdate` carries the writes and sets the
   spreadsheet's developer-metadata marker `stockbot.commit` to that id (and the time);
3. **complete**: the ledger applies the pending changes and records the id as the last commit
   it completed;
4. **recover**: a bot that stopped between 1 and 3 reads the marker at its next start: the
   marker holds the pending id exactly when the write landed.

The marker also ties the state file to its sheet (SPEC.md section 4, the state belongs to its
sheet). Before anything is written, `check_identity` compares the sheet's marker with the
spreadsheet id and last completed commit the state file recorded, and refuses (exit status 2,
nothing written) when they cannot belong together: a state file of another sheet, a restored
backup older than the sheet, or a new state file while the sheet shows an earlier bot's commits.
Each of those, run on, would apply orders a second time or lose cancellations silently.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.errors import ConfigError, SheetError, StockbotError
from bot.i18n import _
from bot.lease import metadata_values
from bot.ledger import Changes, Ledger, disk_failure
from bot.sheet.client import SheetClient, UpdateBody, encode_update
from bot.sheet.writes import COMMIT_KEY, set_metadata

__all__ = ["Handover", "Marker", "StateMismatchError", "refuse_needless_reset"]

log = logging.getLogger("stockbot")

COMMIT_TRIES = 3
CHECK_LOOKS = 3  # `check` looks at the sheet's marker and the state file again this often


def _reset_hint() -> str:
    return _(
        "If you are sure this state file is the right one to go on with, run `stockbot "
        "reset-state` to start it afresh from the sheet as it is now (orders placed before that "
        "count as already in Stock; cancellations of older orders are then not put back: check "
        "them by hand)"
    )


class StateMismatchError(ConfigError):
    """The state file does not belong to the sheet it is used with (nothing was written)."""


@dataclass(frozen=True)
class Marker:
    """The sheet's commit marker: the id of the last commit that landed, and when."""

    id: str
    at: str = ""

    @classmethod
    def parse(cls, text: str | None) -> Marker | None:
        """Read the stored value (a plain id from earlier versions, or JSON)."""
        if not text:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return cls(text)
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            return cls(data["id"], str(data.get("at", "")))
        return cls(text)

    def to_json(self) -> str:
        """The stored value."""
        return json.dumps({"id": self.id, "at": self.at})


def refuse_needless_reset(sheet: SheetClient, ledger: Ledger, marker: Marker | None) -> None:
    """For `stockbot reset-state`: raise `ConfigError` when `sync` would go on with the state
    file as it is (`check_identity` refuses nothing), writing nothing either way.

    Resetting such a file only loses what it holds: orders applied before would never have
    their cancellations put back.
    """
    handover = Handover(sheet, ledger, now=lambda: datetime.now(UTC), sleep=time.sleep)
    try:
        handover.check_identity(marker, dry_run=True)
    except StateMismatchError:
        return  # sync refuses it: what reset-state is for
    raise ConfigError(
        _(
            "the state file {path} fits spreadsheet {sheet}: `stockbot sync` goes on with it as "
            "it is, so nothing needs resetting, and nothing was changed. reset-state is only for "
            "a state file sync refuses (lost, restored from a backup, of another sheet); "
            "resetting this one would forget the orders it applied, and their cancellations "
            "would never be put back. To reset it all the same, run `stockbot reset-state "
            "--force`"
        ).format(path=ledger.path, sheet=sheet.sheet_id)
    )


@dataclass(frozen=True)
class Prepared:
    """A commit saved as pending, with the batchUpdate body that carries it, encoded."""

    id: str
    kind: str
    body: UpdateBody


class Handover:
    """Prepare, send once, complete, recover: the sheet and the state file kept in step."""

    def __init__(
        self,
        sheet: SheetClient,
        ledger: Ledger,
        *,
        now: Callable[[], datetime],
        sleep: Callable[[float], None],
    ) -> None:
        self.sheet = sheet
        self.ledger = ledger
        self.now = now
        self.sleep = sleep
        self.marker_exists = False
        # The last commit the state file completed, as this bot knows it: a state file that
        # says otherwise before a commit was replaced while the bot had it open.
        self.last: str | None = None

    # -- at the start of a cycle --------------------------------------------------------------
    def check_identity(self, marker: Marker | None, *, dry_run: bool = False) -> None:
        """Refuse a state file that does not belong to this sheet; adopt the sheet otherwise.

        `dry_run` (`stockbot check`, which runs without the state file's lock) checks only: it
        records nothing, so a check against another sheet never binds the state file to it.
        """
        ledger, sheet_id = self.ledger, self.sheet.sheet_id
        self.marker_exists = marker is not None
        served = ledger.get_meta("spreadsheet")
        if served and served != sheet_id:
            raise StateMismatchError(
                _(
                    "the state file {path} belongs to spreadsheet {served}, not to {sheet} "
                    "(STOCKBOT_SHEET_ID); nothing was written. Each sheet needs its own state "
                    "file: point STOCKBOT_STATE_PATH at this sheet's state file"
                ).format(path=ledger.path, served=served, sheet=sheet_id)
            )
        if not ledger.intact():
            raise StateMismatchError(
                _(
                    "the state file {path} does not hold together: its orders do not add up to "
                    "what it last recorded. It was copied or moved over while a bot had it open, "
                    "and SQLite mixed the copy with the journal the bot left ({path}-wal); "
                    "running on could apply orders a second time, so nothing was written. Stop "
                    "the bot, delete {path}-wal and {path}-shm, and put the state file back, "
                    "the newest copy you have (see Deployment in the README). {hint}"
                ).format(path=ledger.path, hint=_reset_hint())
            )
        last = ledger.get_meta("last_commit")
        pending = ledger.pending()
        if marker is None:
            if last:
                raise StateMismatchError(
                    _(
                        "the state file {path} has written to this sheet before, but the sheet "
                        "carries no stockbot commit: it was replaced, copied or restored to an "
                        "older version; nothing was written. {hint}"
                    ).format(path=ledger.path, hint=_reset_hint())
                )
        elif marker.id != last and (pending is None or pending.id != marker.id):
            if last and dry_run and self._caught_up():
                return
            if last:
                raise StateMismatchError(
                    _(
                        "the state file {path} is older than the sheet (the sheet's last "
                        "stockbot commit was at {at} and this state file never saw it): it is a "
                        "restored backup or another bot's copy, and running on would apply "
                        "orders a second time; nothing was written. Use the newest state file "
                        "of this sheet. {hint}"
                    ).format(
                        path=ledger.path, at=marker.at or _("an unknown time"), hint=_reset_hint()
                    )
                )
            if ledger.is_fresh():
                raise StateMismatchError(
                    _(
                        "the sheet was kept by a stockbot before (last commit at {at}), but the "
                        "state file {path} is new: it was lost, moved or not copied. Starting "
                        "afresh silently would never put back cancellations of orders applied "
                        "before; nothing was written. Restore the state file, or: {hint}"
                    ).format(
                        at=marker.at or _("an unknown time"), path=ledger.path, hint=_reset_hint()
                    )
                )
            # A state file from before the state recorded its commits: adopt the sheet once.
            if not dry_run:
                log.info("the state file now records the sheet it serves (%s)", sheet_id)
                ledger.set_meta("last_commit", marker.id)
        if not served and not dry_run:
            ledger.set_meta("spreadsheet", sheet_id)
        self.last = ledger.get_meta("last_commit")

    def _caught_up(self) -> bool:
        """For `check`, which runs beside `run` without the lock: whether the sheet's marker
        and the state file agree when looked at again, a few times.

        The bot beside commits twice a cycle (the cycle, then its report), so a commit can land
        between any look at the sheet and any read of the file (review attacks 21, 22). A
        state file that is really older than the sheet never catches up.
        """
        for _look in range(CHECK_LOOKS):
            marker = Marker.parse(metadata_values(self.sheet.metadata()).get(COMMIT_KEY))
            last = self.ledger.get_meta("last_commit")
            pending = self.ledger.pending()
            if marker is not None and (
                marker.id == last or (pending is not None and pending.id == marker.id)
            ):
                self.last = last
                return True
        return False

    def recover(self, marker: Marker | None) -> None:
        """Finish or drop a commit left pending by a stop, by what the sheet's marker says."""
        pending = self.ledger.pending()
        if pending is None:
            return
        if marker is not None and marker.id == pending.id:
            log.info(
                "finishing commit %s, which reached the sheet before the bot stopped", pending.id
            )
            self.ledger.complete(pending.id)
            self.last = pending.id
        else:
            log.info(
                "dropping commit %s, which never reached the sheet; its orders are fetched again",
                pending.id,
            )
            self.ledger.discard(pending.id)

    # -- a commit -----------------------------------------------------------------------------
    def prepare(
        self,
        kind: str,
        requests: list[dict[str, Any]],
        changes: Changes,
        *,
        response_ranges: Sequence[str] = (),
    ) -> Prepared:
        """Step 1: save the commit as pending; the requests get the marker appended.

        The body is encoded here, ahead of sending: the cycle's commit is prepared before the
        re-read that precedes it, so that only sending is left inside the staff-edit window.
        `response_ranges` ask for the sheet as it is right after the write, to check positions.
        """
        commit_id = uuid.uuid4().hex
        if not self.ledger.prepare(commit_id, kind, changes, check=True, after=self.last):
            raise self._replaced()
        marker = Marker(commit_id, self.now().isoformat(timespec="seconds"))
        body = [*requests, set_metadata(COMMIT_KEY, marker.to_json(), self.marker_exists)]
        extra: dict[str, Any] = {}
        if response_ranges:
            extra = {
                "includeSpreadsheetInResponse": True,
                "responseRanges": list(response_ranges),
                "responseIncludeGridData": True,
            }
        return Prepared(commit_id, kind, encode_update(body, extra))

    def discard(self, prepared: Prepared) -> None:
        """Drop a prepared commit that will not be sent."""
        self.ledger.discard(prepared.id)

    def send_once(self, prepared: Prepared, *, last: bool) -> dict[str, Any] | None:
        """Step 2 then 3: the answer when it landed; None when it certainly did not.

        None means it may be prepared and sent again after a pause. When nobody can tell
        whether it landed, it raises and leaves the commit pending: the next cycle reads the
        marker and settles it, never sending it twice. A commit whose landing was learned from
        the marker answers `{}` (no `updatedSpreadsheet` to check positions against).
        """
        try:
            answer: dict[str, Any] = dict(self.sheet.send_update(prepared.body, retry=False) or {})
        except SheetError as exc:
            # The request may have landed although no answer came back: only the marker can
            # say, and without it sending again could append the Log rows twice.
            try:
                landed = Marker.parse(metadata_values(self.sheet.metadata()).get(COMMIT_KEY))
            except SheetError:
                raise exc from None
            if landed is None or landed.id != prepared.id:
                final = last or not exc.retriable
                # A retry sends the same Log rows again: only a commit given up keeps them.
                self.ledger.discard(prepared.id, keep_log_rows=final)
                if final:
                    raise
                self.sleep(self.sheet.policy.delay(1))
                return None
            answer = {}
        self.marker_exists = True
        self.ledger.complete(prepared.id)
        if self.ledger.get_meta("last_commit") != prepared.id:
            # The pending row was gone: the file was replaced between prepare and complete.
            # The sheet holds the write, the state does not: stop (the next start refuses it).
            raise self._replaced()
        self.last = prepared.id
        return answer

    def _replaced(self) -> StateMismatchError:
        """The state file changed under the running bot (restored from a backup, copied over)."""
        return StateMismatchError(
            _(
                "the state file {path} was replaced while the bot was using it (it no longer "
                "holds the bot's last commit: an older copy restored?); the bot stopped so "
                "that no order is applied twice. Stop the bot before restoring a state file. "
                "{hint}"
            ).format(path=self.ledger.path, hint=_reset_hint())
        )

    def commit(
        self,
        kind: str,
        requests: list[dict[str, Any]],
        changes: Changes,
        *,
        response_ranges: Sequence[str] = (),
        alone: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        """Write `requests` and the marker atomically, retrying a commit that did not land.

        When the commit cannot be saved as pending because the disk under the state file is
        full (`prepare` failed, so no try of it was sent or landed), the `alone` requests (Log
        rows no later cycle writes again) are sent on their own, once, before the error goes
        on: at most once rather than never (review attacks 24).
        """
        for attempt in range(1, COMMIT_TRIES + 1):
            try:
                prepared = self.prepare(kind, requests, changes, response_ranges=response_ranges)
            except (sqlite3.Error, OSError) as exc:
                if alone and disk_failure(self.ledger.path, exc) is not None:
                    self._send_alone(alone)
                raise
            answer = self.send_once(prepared, last=attempt == COMMIT_TRIES)
            if answer is not None:
                return answer
        raise AssertionError("unreachable: the last try raises")  # pragma: no cover

    def _send_alone(self, requests: Sequence[dict[str, Any]]) -> None:
        """One plain batchUpdate of `requests`, not retried; a failure is only logged."""
        try:
            self.sheet.batch_update(list(requests), retry=False)
        except StockbotError as exc:
            # Not "the next cycle tries again": nothing keeps these rows (review attacks 33).
            log.error(
                "the Log rows of a commit the full disk refused may not have been written, and "
                "are not sent again (%s)",
                type(exc.__cause__ or exc).__name__,
            )
