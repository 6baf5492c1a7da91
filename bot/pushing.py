"""What each marketplace is sent after a commit, sending it, and recording what happened.

A store's quantity is *known* only while nothing could have changed it since the last push the
bot recorded. Two things make it unknown (both found by a soak of random kills and faults):

- a push whose outcome was never recorded (the bot stopped between the marketplace's answer
  and the record): before sending, the pushed items are marked unknown in the ledger, and only
  the recorded answer makes them known again;
- an order event on that marketplace: a marketplace lowers its own quantity on a sale and may
  raise it again on a cancellation or a refund, whatever the bot's target. Every order line
  whose state changed in a commit counts as an event for its item (`own_events`), and an item
  with events is pushed again even when the bot's target did not change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from bot.channels.base import Channel, PushResult, StockUpdate
from bot.errors import ChannelError, StockbotError
from bot.i18n import _
from bot.inventory import Row, item_key
from bot.ledger import Ledger, LineState
from bot.rules import shown_quantity

__all__ = ["Progress", "PushPlan", "guarded", "own_events", "plan_pushes", "push_all"]

log = logging.getLogger("stockbot")
T = TypeVar("T")

# A long push (a first one of thousands of items, Amazon's feeds) says how far it got this
# often, per marketplace, in the process log; a push shorter than that prints only its result.
PROGRESS_EVERY = 10.0  # seconds
PROGRESS_FROM = 200  # a push of this many items or more also says when it starts


@dataclass
class PushPlan:
    """What a cycle pushes (or would push) to one channel."""

    channel: str
    updates: list[StockUpdate]
    # item -> the SKU of its row, for items typed in a marketplace column only: every other
    # item is its row's SKU (`sku`). A first push of 100,000 rows would hold 100,000 entries
    # a channel that say nothing (issue 8).
    typed: dict[str, str]
    resync: set[str] = field(default_factory=set)  # pushed after re-reading the marketplace
    repeated: dict[str, str] = field(default_factory=dict)  # item -> refusal already logged

    def sku(self, item: str) -> str:
        """The SKU of the row `item` was planned for."""
        return self.typed.get(item, item)


def guarded(name: str, what: str, call: Callable[[], T]) -> T | StockbotError:
    """Run one adapter call; any failure, a bug included, becomes that channel's error only."""
    try:
        return call()
    except StockbotError as exc:
        return exc
    except Exception as exc:  # a bug in one adapter must not stop the other marketplaces
        log.exception("%s: unexpected error while %s", name, what)
        return ChannelError(
            name,
            _(
                "unexpected {error} while {doing} (a bug in stockbot's {channel} adapter, "
                "or an answer it does not understand; the details are in the process log: "
                "please report them)"
            ).format(error=type(exc).__name__, doing=what, channel=name),
        )


def own_events(
    rows: Sequence[Row],
    lines: Sequence[LineState],
    known: Callable[[str, str], Mapping[str, LineState]],
) -> list[tuple[str, str, int]]:
    """One zero-change event per order line that is new or changed, for items rows list.

    `known(channel, order_id)` gives the ledger's lines of an order: a line handed back
    unchanged (an overlapping window shows the same order again) is no new event.
    """
    if not lines:
        return []
    wanted: dict[str, set[str]] = {}  # channel -> the keys of its lines' items
    for line in lines:
        wanted.setdefault(line.channel, set()).add(item_key(line.channel, line.item))
    by_item: dict[tuple[str, str], str] = {}
    for row in rows:
        # `Row.item` and `Row.key` without the calls: a large sheet has 100,000 rows (issue 8).
        typed, sku = row.typed_items, row.sku
        for channel, keys in wanted.items():
            item = typed.get(channel, sku) if typed else sku
            if item is None:
                continue
            key = row.rakuten_key if channel == "rakuten" else item
            if key in keys:
                by_item[channel, key] = item
    events = []
    for line in lines:
        item = by_item.get((line.channel, item_key(line.channel, line.item)))
        if item is None:
            continue
        before = known(line.channel, line.order_id).get(line.line_id)
        if before is not None and (before.target, before.applied, before.cancelled) == (
            line.target,
            line.applied,
            line.cancelled,
        ):
            continue
        events.append((line.channel, item, 0))
    return events


def plan_pushes(
    rows: Sequence[Row],
    final: Mapping[str, int],
    channels: Mapping[str, Channel],
    names: Sequence[str],
    ledger: Ledger,
    now: datetime,
) -> list[PushPlan]:
    """Per channel in `names`: every item whose store quantity is not certainly right.

    An item the marketplace refused is sent again every cycle (a restriction lifted, a listing
    fixed on the marketplace: the bot cannot know), but a refusal repeated with the same
    quantity is marked `repeated`, so the Log says it once, not every cycle; the row's Status
    keeps showing it.
    """
    settled = {name: ledger.settled_quantities(name) for name in names}
    unsettled = {name: ledger.unsettled_pushes(name) for name in names}
    plans = {name: PushPlan(name, [], {}) for name in names}
    # Per channel, what the loop looks up for every row, in one tuple.
    each = [(name, channels[name].max_quantity, settled[name]) for name in names]
    for row in rows:
        # One pass over the rows for every channel: a large sheet has 100,000 (issue 8).
        # `Row.is_set` and `Row.pushable` without the calls.
        is_set = row.components is not None
        stock = final.get(row.sku, None if is_set else row.stock)
        if stock is None or row.problems or (row.stock is None and not is_set):
            continue
        shown = None if row.display is None else shown_quantity(stock, row.display)
        own, typed, sku = row.own_display, row.typed_items, row.sku
        for name, cap, held in each:
            item = typed.get(name, sku) if typed else sku  # `Row.item`, without the call
            if item is None:
                continue
            if own and name in own:  # its own column's setting, else Display (SPEC.md 2)
                setting = own[name]
                if setting is None:
                    continue
                quantity = shown_quantity(stock, setting, cap)
            elif shown is None:
                continue
            else:
                quantity = shown if cap is None or shown <= cap else cap
            expected = held.get(item)
            if expected == quantity:
                continue  # the store holds it already: the common case
            plan = plans[name]
            state = unsettled[name].get(item)
            if state is not None and state.error and state.refused == quantity and state.logged:
                plan.repeated[item] = state.error
            if state is not None and state.quantity is not None:
                expected = state.quantity + state.adjust
            if state is not None and state.stale:
                # The marketplace held another quantity than expected last time: a sale
                # the bot had not fetched yet, or an edit made on the marketplace. Let
                # the adapter compare with what it reads now instead of waiting forever.
                expected = None
                plan.resync.add(item)
            plan.updates.append(StockUpdate(item, quantity, expected))
            if item != sku:
                plan.typed[item] = sku
    return [plan for plan in plans.values() if plan.updates]


class Progress:
    """`amazon: 300/1,200 pushed` in the process log, at most every `PROGRESS_EVERY` seconds."""

    def __init__(
        self, channel: str, total: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.channel = channel
        self.total = total
        self.clock = clock
        self.last = clock()
        if total >= PROGRESS_FROM:
            log.info("%s: pushing %s items", channel, f"{total:,}")

    def __call__(self, done: int) -> None:
        """`done` of the push's items are handled: say so if the last line is old enough."""
        now = self.clock()
        if done < self.total and now - self.last >= PROGRESS_EVERY:
            self.last = now
            log.info("%s: %s/%s pushed", self.channel, f"{done:,}", f"{self.total:,}")


def push_all(
    plans: Sequence[PushPlan],
    channels: Mapping[str, Channel],
    ledger: Ledger,
    now: datetime,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, PushResult | StockbotError]:
    """Send every plan at once (one thread per channel) and record each outcome."""
    for p in plans:
        ledger.forget_quantities(p.channel, [u.item for u in p.updates])

    def one(p: PushPlan) -> tuple[str, PushResult | StockbotError]:
        progress = Progress(p.channel, len(p.updates), clock)
        return p.channel, guarded(
            p.channel,
            _("pushing quantities"),
            lambda: channels[p.channel].push(p.updates, progress),
        )

    results: dict[str, PushResult | StockbotError] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(plans))) as pool:
        for name, result in pool.map(one, plans):
            results[name] = result
    for p in plans:
        result = results[p.channel]
        if isinstance(result, StockbotError):
            log.error("%s: push failed: %s", p.channel, result)
            continue
        left_out = result.failed.keys() | result.stale
        pushed = (
            {u.item: u.quantity for u in p.updates if u.item not in left_out}
            if left_out
            else {u.item: u.quantity for u in p.updates}  # nearly every push (issue 8)
        )
        refused = {u.item: u.quantity for u in p.updates if u.item in result.failed}
        ledger.record_pushes(
            p.channel,
            pushed,
            result.failed,
            result.stale,
            refused=refused,
            at=now.isoformat(),
        )
        log.info(
            "%s: pushed %d item%s in %d call%s",
            p.channel,
            len(pushed),
            "" if len(pushed) == 1 else "s",
            result.calls,
            "" if result.calls == 1 else "s",
        )
    return results
