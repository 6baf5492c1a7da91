"""What staff read after a cycle: Log rows, each row's Status, the Channels tab.

Pure functions from the cycle's outcome to Log events and sheet values; the cycle writes them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from bot.apply import Event
from bot.channels.base import PushResult
from bot.config import CHANNEL_NAMES
from bot.errors import StockbotError, plain
from bot.i18n import _, language
from bot.inventory import Row
from bot.pushing import PushPlan
from bot.sheet.layout import Layout, event_name
from bot.sheet.writes import append_rows, column_runs

__all__ = ["OK", "channel_requests", "log_row", "push_events", "status_text"]

log = logging.getLogger("stockbot")

PUSH_DETAIL_ITEMS = 200  # a push row lists this many items, then counts the rest
# Google refuses a cell of more than 50,000 characters, and with it the whole atomic commit.
CELL_MAX = 50_000


def log_row(layout: Layout, stamp: str, event: Event) -> list[Any]:
    """One Log row, in the Log tab's column order."""
    cols = layout.log.columns
    line: list[Any] = [None] * (max(cols.values()) + 1)
    values = {
        "time": stamp,
        "event": event_name(event.event, language()),
        "channel": event.channel,
        "order": event.order,
        "sku": event.sku,
        "change": event.change,
        "before": event.before,
        "after": event.after,
        "detail": event.detail,
    }
    for key, value in values.items():
        if isinstance(value, str) and len(value) > CELL_MAX:
            value = value[: CELL_MAX - 1] + "…"
        line[cols[key]] = value
    return line


OK = "OK"  # the Status of a row with nothing to say


def status_text(
    row: Row, push_errors: Mapping[tuple[str, str], str], note: str | None = None
) -> str:
    """The Status text of a row: its problems, push failures and this cycle's note, or OK."""
    problems = [*row.problems, *row.display_problems, *([note] if note else [])]
    if push_errors:  # most cycles have none: no look-up per row and marketplace then
        for channel in CHANNEL_NAMES:
            item = row.item(channel)
            if item is not None and (channel, item) in push_errors:
                problems.append(
                    _("{channel}: {error}").format(
                        channel=channel, error=push_errors[channel, item]
                    )
                )
    return "; ".join(problems) if problems else OK


def push_events(
    plans: Sequence[PushPlan],
    results: Mapping[str, PushResult | StockbotError],
    failed_channels: Mapping[str, str],
    write: Mapping[str, str | None] | None = None,
) -> list[Event]:
    """Log events for what the pushes did, and for channels that failed before pushing.

    With `write`, a channel's failure is written only if `write` names it (`bot.repeats`),
    with the time it started when that is a reminder of a lasting one.
    """
    events: list[Event] = []

    def still(name: str) -> str:
        since = write.get(name) if write else None
        return _(" (still so since {since})").format(since=since) if since else ""

    for p in plans:
        result = results[p.channel]
        if isinstance(result, StockbotError):
            if write is not None and p.channel not in write:
                continue  # written when it started; Channels › Last error still shows it
            events.append(
                Event(
                    "error",
                    p.channel,
                    detail=_(
                        "push to {channel} failed: {error}. Nothing was recorded as pushed; "
                        "the next cycle pushes these quantities again"
                    ).format(channel=p.channel, error=plain(result))
                    + still(p.channel),
                )
            )
            continue
        done = [u for u in p.updates if u.item not in result.failed and u.item not in result.stale]
        if done:
            listed = ", ".join(f"{u.item}={u.quantity}" for u in done[:PUSH_DETAIL_ITEMS])
            more = len(done) - PUSH_DETAIL_ITEMS
            again = [u.item for u in done if u.item in p.resync]
            resynced = ", ".join(again[:PUSH_DETAIL_ITEMS])
            if len(again) > PUSH_DETAIL_ITEMS:
                resynced += f" … and {len(again) - PUSH_DETAIL_ITEMS} more"
            note = (
                _(
                    " ({items}: the store held another quantity than expected, from an edit "
                    "made there or a sale fetched later; set after re-reading it)"
                ).format(items=resynced)
                if resynced
                else ""
            )
            events.append(
                Event(
                    "push",
                    p.channel,
                    sku=p.sku(done[0].item) if len(done) == 1 else "",
                    detail=_("set {count} item(s) in {calls} call(s): {items}").format(
                        count=len(done), calls=result.calls, items=listed
                    )
                    + (_(" … and {count} more").format(count=more) if more > 0 else "")
                    + note,
                )
            )
        for item, message in result.failed.items():
            if p.repeated.get(item) == message:
                continue  # logged when it was first refused; the row's Status still says it
            events.append(
                Event(
                    "error",
                    p.channel,
                    sku=p.sku(item),
                    detail=_(
                        "{channel} refused the quantity for {item}: {error}. "
                        "The next cycle tries again"
                    ).format(channel=p.channel, item=item, error=message),
                )
            )
        if result.stale:
            log.info(
                "%s: %d items changed on the marketplace meanwhile; they are pushed "
                "again after the next fetch",
                p.channel,
                len(result.stale),
            )
    for name, message in failed_channels.items():
        if name not in results and (write is None or name in write):
            events.append(
                Event(
                    "error",
                    name,
                    detail=_(
                        "{error}. Orders from {channel} were not applied and nothing was "
                        "pushed to {channel}; the next cycle tries again"
                    ).format(error=message, channel=name)
                    + still(name),
                )
            )
    return events


def channel_requests(
    layout: Layout,
    names: Sequence[str],
    enabled: Sequence[str],
    channel_rows: Mapping[str, int],
    failed: Mapping[str, str],
    notices: Mapping[str, str],
    stamp: str,
) -> list[dict[str, Any]]:
    """The Channels tab: Last sync and Last error per channel; rows added for new channels."""
    tab = layout.channels
    cols = tab.columns
    requests: list[dict[str, Any]] = []
    new_rows: list[list[object]] = []
    width = max(cols.values()) + 1
    for name in names:
        error = failed.get(name, "") or notices.get(name, "")
        index = channel_rows.get(name)
        if index is None:
            line: list[object] = [None] * width
            line[cols["channel"]] = name
            line[cols["enabled"]] = True
            line[cols["last_sync"]] = "" if name in failed else stamp
            line[cols["last_error"]] = error
            new_rows.append(line)
            continue
        if name not in enabled:
            continue
        if name not in failed:
            requests += column_runs(tab.sheet_id, cols["last_sync"], {index: stamp})
        requests += column_runs(tab.sheet_id, cols["last_error"], {index: error})
    requests += append_rows(tab.sheet_id, new_rows)
    return requests
