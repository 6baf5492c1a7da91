"""The `stockbot` commands (SPEC.md section 6): parse, call the library, print.

Exit status: 0 everything synced; 1 a channel or the sheet failed (what could be done was
done); 2 the configuration or the sheet's structure is wrong (nothing written); 3 another
stockbot already runs on the same state or sheet (nothing done).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.channels.base import ItemLookup
from bot.config import Settings, load_settings, salvage_settings
from bot.errors import (
    ConfigError,
    LockedError,
    SheetStructureError,
    StateFileError,
    StockbotError,
    plain,
)
from bot.health import Watch, alert_setup
from bot.sync import CycleReport
from bot.verdict import sheet_problems

if TYPE_CHECKING:
    from bot.app import App

__all__ = ["main"]

log = logging.getLogger("stockbot")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_LOCKED = 0, 1, 2, 3
CHECK_ROWS_SHOWN = 20  # rows with problems `check` lists unless asked for --all
# Item ids `check` asks each marketplace about: Rakuten's bulk-get takes 1,000 a call at 5 calls
# a second, so this keeps `check` within a few seconds on a big sheet.
CHECK_ITEMS_MAX = 5000
MISSING_SHOWN = 20


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "urllib3", "google"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _guard(action: Callable[[], int]) -> int:
    """Run a command, turning the project's errors into exit statuses and plain messages."""
    try:
        return action()
    except (ConfigError, SheetStructureError) as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    except LockedError as exc:
        log.error("%s", exc)
        return EXIT_LOCKED
    except StockbotError as exc:
        log.error("%s", exc)
        return EXIT_FAILED


def summarize(report: CycleReport) -> str:
    """A few lines on what a cycle did."""
    counts: dict[str, int] = {}
    for event in report.events:
        counts[event.event] = counts.get(event.event, 0) + 1
    lines = [
        "events: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"),
        "pushed: "
        + (
            ", ".join(_pushed(report, p.channel, len(p.updates)) for p in report.pushes)
            or "nothing"
        ),
        f"sheet requests: {report.sheet_reads} reads, {report.sheet_writes} writes",
    ]
    for name, why in report.skipped.items():
        lines.append(f"{name}: orders not fetched this cycle ({why})")
    for name, why in report.failed_channels.items():
        lines.append(f"FAILED {name}: {why}")
    for name in report.paused:
        lines.append(
            f"{name}: paused (Enabled is FALSE in the Channels tab): nothing fetched or pushed"
        )
    return "\n".join(lines)


def _pushed(report: CycleReport, channel: str, sent: int) -> str:
    """How many items a channel took, and how many it refused (those count as not pushed)."""
    if channel in report.failed_channels:
        return f"{channel} 0 ({sent} not pushed)"
    refused = report.refused.get(channel, 0)
    return f"{channel} {sent - refused}" + (f" ({refused} refused)" if refused else "")


def _watched(watch: Watch, cycle: Callable[[], CycleReport], app: App) -> CycleReport:
    """Run one cycle and tell the watch how it ended (alerts, health check, a stop shown)."""
    app.refresh_notices()  # never raises: a credential it cannot check is only logged
    try:
        report = cycle()
    except (ConfigError, SheetStructureError) as exc:
        watch.stopped(exc, app.sheet)
        raise
    except LockedError:
        raise  # another bot does the work: nothing of ours to report
    except Exception as exc:
        watch.failed(exc, app.sheet)
        raise
    app.credentials.settle(report.failed_channels)
    watch.synced(report, app.cycle.notices)
    return report


def _open(settings: Settings, watch: Watch) -> App:
    """The app; a configuration error on the way is a stop the watch reports."""
    from bot.app import open_app

    try:
        return open_app(settings)
    except (ConfigError, SheetStructureError) as exc:
        watch.stopped(exc)
        raise
    except StateFileError as exc:  # a full disk under the state file: alerted, said plainly
        watch.failed(exc)
        raise


def cmd_sync(settings: Settings) -> int:
    """One cycle."""
    watch = Watch(settings)
    app = _open(settings, watch)
    try:
        report = _watched(watch, lambda: app.cycle.run(release=True), app)
    finally:
        app.close()
    print(summarize(report))
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_run(settings: Settings) -> int:
    """A cycle every interval until SIGTERM or Ctrl-C."""
    from bot.scheduler import Loop

    watch = Watch(settings)
    app: App | None = None
    # A full disk under the state file is alerted here (`_open`); the loop below then tries
    # to open it again every interval, saying why, rather than end the bot.
    with contextlib.suppress(StateFileError):
        app = _open(settings, watch)

    def job() -> bool:
        nonlocal app
        if app is None:
            app = _open(settings, watch)
        report = _watched(watch, app.cycle.run, app)
        log.info("cycle done: %s", summarize(report).replace("\n", "; "))
        return report.ok

    try:
        log.info(
            "stockbot runs every %d s for %s; stop with Ctrl-C or SIGTERM",
            settings.interval_seconds,
            ", ".join(settings.channels) or "no marketplace",
        )
        Loop(job, settings.interval_seconds).run()
        if app is not None:
            try:
                app.cycle.release()
            except StockbotError as exc:
                log.warning("could not release the sheet (%s); it frees itself within 15 min", exc)
    finally:
        if app is not None:
            app.close()
    return EXIT_OK


def cmd_check(settings: Settings, show_all: bool = False) -> int:
    """Check everything and show what the next cycle would push; write nothing."""
    from bot.app import open_app

    app = open_app(settings, lock=False)
    failed = False
    try:
        print(f"sheet {settings.sheet_id} via {settings.sheets_api_url}")
        zone = ZoneInfo(settings.timezone)  # as every time the bot shows: "JST", not "UTC+09:00"
        for found in app.refresh_notices(save=False):
            expires = found.expires
            when = f"{expires.astimezone(zone):%Y-%m-%d %H:%M %Z}" if expires else "unknown"
            print(f"  {found.channel}: {found.credential} expires {when} ({found.source})")
        for name, notice in app.cycle.notices.items():
            print(f"  {name}: WARNING: {notice}")
        senders, unheard = alert_setup(settings)
        print(f"  alerts: {_alerts_text(settings, [s.name for s in senders])}")
        for problem in unheard:
            failed = True
            print(f"  FAILED alerts: {problem}")
        for name, channel in app.channels.items():
            try:
                print(f"  {name}: {channel.check()}")
            except StockbotError as exc:
                failed = True
                print(f"  {name}: FAILED: {plain(exc)}")
        report = app.cycle.run(dry_run=True)
        known_skus = list(app.ledger.stock_baseline())
        for name, channel in app.channels.items():
            if name not in report.failed_channels and name not in report.paused:
                _print_missing(name, channel, report)
    finally:
        app.close()
    bad = [r for r in report.rows if r.problems or r.display_problems]
    print(f"inventory: {len(report.rows)} rows, {len(bad)} with problems")
    shown = bad if show_all else bad[:CHECK_ROWS_SHOWN]
    for row in shown:
        problems = "; ".join([*row.problems, *row.display_problems])
        print(f"  row {row.index + 1} {row.sku or '(no SKU)'}: {problems}")
    if len(bad) > len(shown):
        print(f"  … and {len(bad) - len(shown)} more rows with problems: `stockbot check --all`")
    for problem in sheet_problems(report.rows, known_skus):
        failed = True
        print(f"  FAILED inventory: {problem}")
    _print_sets(report)
    for event in report.events:
        print(
            f"  would log {event.event} {event.channel} {event.sku} {event.change or ''} "
            f"{event.detail}"
        )
    for plan in report.pushes:
        sample = ", ".join(f"{u.item}={u.quantity}" for u in plan.updates[:10])
        more = f" … and {len(plan.updates) - 10} more" if len(plan.updates) > 10 else ""
        print(f"  would push to {plan.channel}: {len(plan.updates)} items ({sample}{more})")
    if not report.pushes:
        print("  nothing to push")
    for name, why in report.failed_channels.items():
        failed = True
        print(f"  FAILED {name}: {why}")
    for name in report.paused:
        print(f"  {name}: paused (Enabled is FALSE in the Channels tab): not fetched or pushed")
    return EXIT_FAILED if failed else EXIT_OK


def _alerts_text(settings: Settings, senders: Sequence[str]) -> str:
    """How staff will hear of trouble, for `check` (never a URL: they carry secrets)."""
    ways = ", ".join(senders) or (
        "none set (STOCKBOT_ALERT_WEBHOOK_URL, or STOCKBOT_ALERT_EMAIL_TO with "
        "STOCKBOT_SMTP_URL; README 'Alerts and health check')"
    )
    ping = "a health-check ping after every cycle" if settings.healthcheck_url else "no ping"
    return f"{ways}; {ping}"


def _print_missing(name: str, channel: object, report: CycleReport) -> None:
    """Warn of the sheet's item ids the marketplace does not have, where its API can tell."""
    items = list(dict.fromkeys(i for r in report.rows if (i := r.items.get(name))))
    if not isinstance(channel, ItemLookup):
        print(f"  {name}: item ids not checked (the API cannot tell which exist)")
        return
    asked = items[:CHECK_ITEMS_MAX]
    try:
        absent = channel.missing(asked)
    except StockbotError as exc:
        print(f"  {name}: WARNING: could not check item ids: {plain(exc)}")
        return
    capped = f" (the first {len(asked)} of {len(items)})" if len(asked) < len(items) else ""
    if not absent:
        print(f"  {name}: all {len(asked)} item ids found{capped}")
        return
    shown = ", ".join(absent[:MISSING_SHOWN])
    more = f" … and {len(absent) - MISSING_SHOWN} more" if len(absent) > MISSING_SHOWN else ""
    print(
        f"  {name}: WARNING: {len(absent)} of {len(asked)} item ids checked{capped} are not on "
        f"{name}: {shown}{more}. Fine for a product not listed there yet; else correct the "
        f"{name} column, or write '-' if it is not sold there"
    )


def _print_sets(report: CycleReport) -> None:
    """The set products of the sheet, each with its computed Stock and what it would push."""
    sets = [r for r in report.rows if r.is_set]
    if not sets:
        return
    pushed = {(p.channel, p.sku(u.item)): u.quantity for p in report.pushes for u in p.updates}
    print(f"sets: {len(sets)}")
    for row in sets[:20]:
        terms = " + ".join(f"{c.sku}*{c.qty}" for c in row.components or ())
        stock = report.final.get(row.sku)
        where = ", ".join(f"{ch}={q}" for (ch, sku), q in sorted(pushed.items()) if sku == row.sku)
        state = "broken (see above)" if stock is None else f"Stock {stock}"
        print(f"  {row.sku} = {terms or '?'}: {state}; would push {where or 'nothing new'}")


def cmd_init_sheet(settings: Settings) -> int:
    """Create or repair the tabs, headers, validation, protection and formats."""
    from bot.app import open_sheet
    from bot.sheet.setup import init_sheet

    for line in init_sheet(
        open_sheet(settings),
        settings.channels,
        settings.language,
        interval_seconds=settings.interval_seconds,
        timezone=settings.timezone,
    ):
        print(line)
    return EXIT_OK


def cmd_reset_state(settings: Settings, force: bool = False) -> int:
    """Start the state file afresh from the sheet as it is now (after a lost or old state).

    Only a state file `sync` refuses is reset, unless `force`: resetting one it goes on with
    would only lose the cancellations of orders applied before.
    """
    from bot import unread
    from bot.app import open_sheet
    from bot.handover import Marker, refuse_needless_reset
    from bot.i18n import set_language
    from bot.lease import metadata_values
    from bot.ledger import Ledger
    from bot.sheet.writes import COMMIT_KEY

    if settings.language != "auto":
        set_language(settings.language)
    sheet = open_sheet(settings)
    metadata = sheet.metadata()
    marker = Marker.parse(metadata_values(metadata).get(COMMIT_KEY))
    if not force and not settings.state_path.exists():
        new = Ledger(settings.state_path, in_memory=True)  # decided before making the file
        try:
            refuse_needless_reset(sheet, new, marker)
        finally:
            new.close()
    ledger = Ledger(settings.state_path)
    try:
        ledger.lock()
        if not force:
            refuse_needless_reset(sheet, ledger, marker)
        rows, unreadable = unread.read_log(sheet, metadata)
        logged = unread.from_log(rows)
        cursors, carried = ledger.cursors(), ledger.owed()
        found = unread.gather(
            unread.from_cursors(cursors),
            carried,
            logged=logged,
            known={ch: ledger.all_orders(ch) for ch in {*cursors, *logged.named, *carried}},
        )
        # Without every Log tab, an applied order cannot be told from an unapplied one.
        carry = unread.READ_BY_ID if not unreadable else frozenset()
        owed = {ch: ids for ch, ids in found.items() if ch in carry}
        by_hand = {ch: ids for ch, ids in found.items() if ch not in carry}
        ledger.reset(sheet.sheet_id, marker.id if marker else None, owed)
    finally:
        ledger.close()
    print(f"{settings.state_path} now serves spreadsheet {sheet.sheet_id}, starting afresh.")
    for channel, ids in sorted(owed.items()):
        print(
            f"{channel}: {len(ids)} order(s) seen but never applied ({_listed(ids)}) are read "
            "again and applied once the marketplace shows them, though placed before the new "
            "start."
        )
    if unreadable:
        print(
            f"The Log tab(s) {', '.join(unreadable)} could not be read (missing, or an Event, "
            "Channel or Order header renamed): without them the bot cannot tell which orders "
            "it applied, so it carries none over. Check the orders below by hand."
        )
    for channel, ids in sorted(by_hand.items()):
        why = (
            "may or may not have been applied"
            if unreadable
            else f"cannot be read again by their number on {channel}"
        )
        print(
            f"{channel}: {len(ids)} order(s) seen but maybe never applied ({_listed(ids)}) "
            f"{why}: correct Stock by hand for them."
        )
    if marker is not None:
        print(
            f"The sheet's last stockbot commit was at {marker.at or 'an unknown time'}: orders "
            "placed on the marketplaces after it and before the next sync are taken as already "
            "counted in Stock, and cancellations of orders applied before now are not put back. "
            "Check those orders by hand."
        )
    print("The next sync starts clean: orders placed before it count as already in Stock.")
    return EXIT_OK


def _listed(ids: set[str], at_most: int = 20) -> str:
    named = sorted(ids)
    more = len(named) - at_most
    return ", ".join(named[:at_most]) + (f" and {more} more" if more > 0 else "")


def cmd_demo(serve: bool) -> int:
    """The whole product on local stand-ins, no account needed; `serve` keeps them up."""
    from bot.demo import run_demo, serve_demo

    return serve_demo() if serve else run_demo()


COMMANDS: dict[str, tuple[str, Callable[[Settings], int]]] = {
    "sync": ("run one cycle", cmd_sync),
    "run": ("run a cycle every STOCKBOT_INTERVAL_SECONDS until stopped", cmd_run),
    "check": ("check settings, credentials, channels and sheet; write nothing", cmd_check),
    "init-sheet": ("create or repair the tabs, headers and formats of the sheet", cmd_init_sheet),
    "reset-state": (
        "start the state file afresh from the sheet, only when sync refuses it (lost, restored "
        "from a backup, of another sheet)",
        cmd_reset_state,
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """The console script."""
    if argv is None:
        # A process of its own (the console script, `python -m bot`): everything the imports
        # made lives until it exits. Set aside from the cycle collector, it is not walked at
        # every full collection, nor at exit, where Python's teardown took 75-100 ms of every
        # `sync` (issue 8). Objects made from here on are collected as usual.
        gc.freeze()
    parser = argparse.ArgumentParser(
        prog="stockbot",
        description="Keeps one stock count per product in a Google Sheet and the "
        "marketplaces in step with it.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="show the whole product on local stand-ins (no account)")
    demo.add_argument(
        "--serve",
        action="store_true",
        help="keep the stand-ins and a demo sheet running and print the environment (KEY=value) "
        "that points the other commands at them, until Ctrl-C",
    )
    for name, (text, _) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=text)
        if name == "check":
            command_parser.add_argument(
                "--all", action="store_true", help="list every row with a problem, not 20"
            )
        if name == "reset-state":
            command_parser.add_argument(
                "--force",
                action="store_true",
                help="reset a state file sync would go on with too (its orders' cancellations "
                "are then never put back)",
            )
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    if args.command == "demo":
        return _guard(lambda: cmd_demo(args.serve))
    if args.command == "check":
        return _guard(lambda: cmd_check(load_settings(), args.all))
    if args.command == "reset-state":
        return _guard(lambda: cmd_reset_state(_settings(watched=False), args.force))
    _, command = COMMANDS[args.command]
    return _guard(lambda: command(_settings(watched=args.command in ("sync", "run"))))


def _settings(*, watched: bool) -> Settings:
    """The settings; for `sync` and `run`, an invalid one is a stop that is alerted and pinged.

    The watch is then built from the settings that can be read (the invalid ones at their
    defaults): the alert and health-check variables are usually not the wrong ones.
    """
    try:
        return load_settings()
    except ConfigError as exc:
        if watched and (readable := salvage_settings()) is not None:
            Watch(readable).stopped(exc)
        raise
