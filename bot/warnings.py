"""Values that are applied as they are but look wrong, and what staff are told: pure functions.

- A staff edit that makes Stock jump (48 → 99,999,999) is applied and pushed, staff being the
  authority on Stock, but its `manual` Log row and the row's Status ask staff to check it. A
  jump is an increase of more than `JUMP_AMOUNT` that leaves Stock more than `JUMP_FACTOR`
  times what it was: an extra digit or two typed, or a code pasted into Stock, both make
  Stock ten times bigger at least; a delivery adds a lot but rarely tenfolds a stock above a
  hundred, and a stock of a few units refilled to a few hundred is an ordinary delivery, not
  a jump, hence the amount too. A decrease is never warned about: it shows less, not more.
  The Status warning stays for `JUMP_SHOWN`, or until staff edit that Stock again.
- A shown quantity above what a marketplace accepts (SPEC.md section 3: Rakuten 99,999) is
  pushed as that maximum; the row's Status says so for as long as it lasts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.apply import Event, Plan
from bot.i18n import _
from bot.inventory import Row
from bot.rules import shown_quantity

__all__ = [
    "JUMP_AMOUNT",
    "JUMP_FACTOR",
    "JUMP_SHOWN",
    "Jump",
    "capped",
    "dump_jumps",
    "flag_jumps",
    "is_jump",
    "load_jumps",
    "standing_jumps",
]

JUMP_FACTOR = 10
JUMP_AMOUNT = 1_000
JUMP_SHOWN = timedelta(days=1)


@dataclass(frozen=True)
class Jump:
    """A Stock jump staff made: the Status text that asks them to check it, and when."""

    text: str
    at: datetime


def is_jump(before: int, after: int) -> bool:
    """Whether a staff edit of Stock from `before` to `after` looks like a typo."""
    return after - before > JUMP_AMOUNT and after > JUMP_FACTOR * max(before, 0)


def _jump(event: Event) -> str | None:
    """The text asking staff to check a `manual` event's Stock jump; None when it is no jump."""
    if event.event != "manual" or event.before is None or event.after is None:
        return None
    if not is_jump(event.before, event.after):
        return None
    return _(
        "Stock jumped from {before} to {after}: check that it is not a typo "
        "(applied and pushed as typed)"
    ).format(before=f"{event.before:,}", after=f"{event.after:,}")


def flag_jumps(plan: Plan) -> Plan:
    """The plan with each jumping `manual` row's Detail asking staff to check it."""
    events = [
        replace(e, detail=f"{e.detail}; {text}") if (text := _jump(e)) else e for e in plan.events
    ]
    return replace(plan, events=events)


def standing_jumps(
    shown: Mapping[str, Jump], events: Sequence[Event], now: datetime
) -> dict[str, Jump]:
    """Jump warnings by SKU after a cycle with `events`: its own, and earlier ones still shown.

    An earlier warning goes when staff edit that Stock again (the edit is checked anew) or
    once it has been shown for `JUMP_SHOWN`.
    """
    edited = {e.sku for e in events if e.event == "manual"}
    kept = {
        sku: jump for sku, jump in shown.items() if sku not in edited and now - jump.at < JUMP_SHOWN
    }
    for e in events:
        if (text := _jump(e)) is not None:
            kept[e.sku] = Jump(text, now)
    return kept


def capped(row: Row, stock: int, caps: Mapping[str, int]) -> list[str]:
    """Why the row's quantity on some marketplaces is lower than its display setting gives."""
    # A row without settings of its own shows the same quantity everywhere: below every cap
    # (nearly every row), no marketplace is capped, and no per-marketplace check is needed.
    if not row.own_display and (
        row.display is None or shown_quantity(stock, row.display) <= min(caps.values(), default=0)
    ):
        return []
    notes = []
    for channel, cap in caps.items():
        setting = row.setting(channel)
        if row.item(channel) is None or setting is None:
            continue
        wanted = shown_quantity(stock, setting)
        if wanted > cap:
            notes.append(
                _("{channel} takes at most {cap}: {cap} is shown there, not {wanted}").format(
                    channel=channel, cap=f"{cap:,}", wanted=f"{wanted:,}"
                )
            )
    return notes


def dump_jumps(jumps: Mapping[str, Jump]) -> str:
    """The state file's text of standing jump warnings."""
    return json.dumps(
        {sku: [j.text, j.at.isoformat()] for sku, j in jumps.items()},
        ensure_ascii=False,
        sort_keys=True,
    )


def load_jumps(text: str | None) -> dict[str, Jump]:
    """Read back what `dump_jumps` wrote; anything unreadable counts as no warning."""
    try:
        data = json.loads(text or "{}")
        return {str(k): Jump(str(v[0]), datetime.fromisoformat(v[1])) for k, v in data.items()}
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return {}
