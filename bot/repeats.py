"""Log `error` rows of a lasting problem: written once, not every cycle; pure functions.

A marketplace that fails the same way for hours would otherwise add the same row every five
minutes and bury everything else in the Log. Like Home Assistant's coordinator, the bot writes
a problem when it starts, again when its text changes or after it ended and came back, and, as
long as it lasts, once a day as a reminder: a failing marketplace is something staff must act
on (renew a key, lift a restriction) and a Log read only for today's rows must still show it.
Between those rows the Channels tab's `Last error` shows it every cycle (SPEC.md section 4,
"Nothing silent"). Problems are keyed by the caller, stage included (`channel:rakuten:fetch`,
`channel:rakuten:push`: a push failure after a fetch failure with the same text is news, the
orders now applied and the quantities not pushed); what was written is remembered in the state
file, and only once the rows reached the sheet, so a lost write means a row written twice,
never a row missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["REMIND_EVERY", "Logged", "due", "dump", "load", "remember"]

REMIND_EVERY = timedelta(days=1)


@dataclass(frozen=True)
class Logged:
    """A problem whose Log row was written: its text, when it started, when last written."""

    text: str
    since: datetime
    at: datetime


def due(
    current: Mapping[str, str], logged: Mapping[str, Logged], now: datetime
) -> dict[str, Logged | None]:
    """The problems whose row is written now: None for a new or changed one, else a reminder."""
    out: dict[str, Logged | None] = {}
    for key, text in current.items():
        before = logged.get(key)
        if before is None or before.text != text:
            out[key] = None
        elif now - before.at >= REMIND_EVERY:
            out[key] = before
    return out


def remember(
    current: Mapping[str, str],
    logged: Mapping[str, Logged],
    written: Mapping[str, Logged | None],
    now: datetime,
) -> dict[str, Logged]:
    """What is remembered once `written` reached the sheet; problems that ended are forgotten."""
    kept: dict[str, Logged] = {}
    for key, text in current.items():
        if key not in written:
            kept[key] = logged[key]
        else:
            reminder = written[key]
            kept[key] = Logged(text, reminder.since if reminder else now, now)
    return kept


def dump(logged: Mapping[str, Logged]) -> str:
    """The state file's text of `logged`."""
    return json.dumps(
        {k: [v.text, v.since.isoformat(), v.at.isoformat()] for k, v in logged.items()},
        ensure_ascii=False,
        sort_keys=True,
    )


def load(text: str | None) -> dict[str, Logged]:
    """Read back what `dump` wrote; anything unreadable counts as nothing written yet."""
    try:
        data = json.loads(text or "{}")
        return {
            str(k): Logged(str(v[0]), datetime.fromisoformat(v[1]), datetime.fromisoformat(v[2]))
            for k, v in data.items()
        }
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return {}
