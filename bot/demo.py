"""`stockbot demo`: the whole product on local stand-ins, with no account and no network.

It starts the Sheets API stand-in and one stand-in per marketplace on loopback, builds a sheet
from `sheet_template/`, and plays a short story through the real bot (real gspread, real
adapters, real ledger): sales on every marketplace, a cancellation, a staff restock, a broken
display setting, a gift-box set sold on one marketplace (its components drop everywhere), an
Amazon-only hold-back (`Amazon display`) and an oversell. After each cycle it prints the sheet
and what each store shows.

`stockbot demo --serve` starts the same stand-ins and sheet, prints the environment that points
the other commands at them (`.env` lines), and keeps them up until Ctrl-C, SIGTERM or SIGHUP
(its terminal closed).
"""

from __future__ import annotations

import csv
import importlib
import json
import logging
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, suppress
from pathlib import Path

from bot.app import App, open_app
from bot.config import CHANNEL_NAMES, Settings
from bot.i18n import _, set_language
from bot.inventory import NOT_SOLD
from bot.sheet.layout import (
    CHANNELS_HEADERS,
    INVENTORY_HEADERS,
    LOG_HEADERS,
    TABS,
    event_name,
    header_key,
    written_name,
)
from bot.sheet.setup import init_sheet
from bot.standins.market import MarketplaceStandIn
from bot.standins.sheets import SheetsStandIn, make_service_account_info

__all__ = ["demo_language", "run_demo", "serve_demo"]

STANDINS = {
    "rakuten": ("bot.standins.rakuten", "RakutenStandIn"),
    "yahoo": ("bot.standins.yahoo", "YahooStandIn"),
    "amazon": ("bot.standins.amazon", "AmazonStandIn"),
    "shopify": ("bot.standins.shopify", "ShopifyStandIn"),
}


def demo_language(environ: Mapping[str, str] = os.environ) -> str:
    """The demo's language: `ja` when STOCKBOT_LANGUAGE says so, else English.

    `auto` is English: the demo builds its sheet, so there are no headers to go by.
    """
    return "ja" if environ.get("STOCKBOT_LANGUAGE", "").strip().lower() == "ja" else "en"


def tab_title(key: str, language: str) -> str:
    """The title of tab `key` (`inventory`, `log`, `channels`) in the template of `language`."""
    return written_name(key, TABS[key], language)


def find_template(language: str = "en") -> Path:
    """sheet_template/ (ja: sheet_template/ja/): in the checkout, the package or the cwd."""
    package = Path(__file__).resolve().parent
    first = tab_title("inventory", language)
    for base in (package.parent, package, Path.cwd()):
        folder = base / "sheet_template" / ("ja" if language == "ja" else "")
        if (folder / f"{first}.csv").exists():
            return folder
    raise FileNotFoundError(
        "sheet_template/ not found: reinstall stockbot (it ships inside the package)"
    )


def column_keys(header: Sequence[object], aliases: Mapping[str, Sequence[str]]) -> list[str]:
    """The key of each header cell (its layout alias key, e.g. `stock` for 在庫数), or ''."""
    known = {header_key(n): key for key, names in aliases.items() for n in names}
    return [known.get(header_key(cell), "") for cell in header]


def _typed(key: str, header: Sequence[str], row: Sequence[str]) -> list[object]:
    """CSV text as the values staff would have typed."""
    aliases = {"inventory": INVENTORY_HEADERS, "channels": CHANNELS_HEADERS}.get(key, {})
    values: list[object] = []
    for column, text in zip(column_keys(header, aliases), row, strict=False):
        if (key, column) == ("inventory", "stock") and text.strip():
            values.append(int(text))
        elif (key, column) == ("channels", "enabled") and text.strip():
            values.append(text.strip().upper() == "TRUE")
        else:
            values.append(text)
    return values


def load_template(folder: Path, language: str = "en") -> dict[str, list[list[object]]]:
    """The template's tabs as typed rows, by tab title."""
    tabs: dict[str, list[list[object]]] = {}
    for key in TABS:
        title = tab_title(key, language)
        with open(folder / f"{title}.csv", encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        header = rows[0]
        tabs[title] = [list(header), *[_typed(key, header, r) for r in rows[1:]]]
    return tabs


def _width(text: str) -> int:
    """Columns `text` takes in a terminal: two for each wide (Japanese) character."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int, right: bool = False) -> str:
    """`text` padded with blanks to `width` terminal columns."""
    fill = " " * max(0, width - _width(text))
    return fill + text if right else text + fill


class Demo:
    """The demo's world: stand-ins, the sheet and the bot."""

    def __init__(
        self, stack: ExitStack, tmp: Path, say: Callable[[str], None], language: str = "en"
    ) -> None:
        self.say = say
        self.language = language
        self.inventory = tab_title("inventory", language)
        self.log = tab_title("log", language)
        self.sheets = stack.enter_context(SheetsStandIn())
        self.markets: dict[str, MarketplaceStandIn] = {}
        for name in CHANNEL_NAMES:
            module, cls = STANDINS[name]
            self.markets[name] = stack.enter_context(
                getattr(importlib.import_module(module), cls)()
            )
        key = tmp / "service-account.json"
        key.write_text(json.dumps(make_service_account_info(self.sheets.url + "/token")))
        tabs = load_template(find_template(language), language)
        self.sheet_id = self.sheets.create_spreadsheet("stockbot demo", tabs)
        env = {
            "STOCKBOT_SHEET_ID": self.sheet_id,
            "STOCKBOT_GOOGLE_CREDENTIALS": str(key),
            "STOCKBOT_SHEETS_API_URL": self.sheets.url,
            "STOCKBOT_STATE_PATH": str(tmp / "state.sqlite3"),
            "STOCKBOT_CHANNELS": ",".join(CHANNEL_NAMES),
        }
        if language == "ja":
            env["STOCKBOT_LANGUAGE"] = "ja"
        for market in self.markets.values():
            env.update(market.env())
        self.env = env
        self.settings = Settings.from_env(env)
        self.header = [str(h) for h in tabs[self.inventory][0]]
        self.keys = column_keys(self.header, INVENTORY_HEADERS)
        for row in self.rows():
            for name, market in self.markets.items():
                item = self.item(row, name)
                if item is not None:
                    market.add_item(item, 0)

    @staticmethod
    def item(cells: Mapping[str, object], channel: str) -> str | None:
        """A row's item id on a marketplace, None when not sold there."""
        value = str(cells.get(channel, "") or "").strip()
        if value == NOT_SOLD:
            return None
        return value or str(cells["sku"])

    def rows(self) -> list[dict[str, object]]:
        """The Inventory tab as dicts by column key (`sku`, `stock`...), in either language."""
        grid = self.sheets.get_values(self.sheet_id, self.inventory)
        keys = column_keys(grid[0], INVENTORY_HEADERS)
        return [
            {k: v for k, v in zip(keys, [*r, *[""] * len(keys)], strict=False) if k}
            for r in grid[1:]
        ]

    def sku_item(self, sku: str, channel: str) -> str:
        """The item id of a SKU on a channel."""
        row = next(r for r in self.rows() if str(r["sku"]) == sku)
        item = self.item(row, channel)
        assert item is not None
        return item

    def order(self, channel: str, sku: str, quantity: int) -> str:
        """A shopper buys on a marketplace."""
        order_id = self.markets[channel].place_order([(self.sku_item(sku, channel), quantity)])
        self.say(
            "  · "
            + _("a shopper buys {quantity} × {sku} on {channel} (order {order_id})").format(
                quantity=quantity, sku=sku, channel=channel, order_id=order_id
            )
        )
        return order_id

    def staff(self, sku: str, column: str, value: object, why: str) -> None:
        """Staff type into the sheet: `column` is a key (`stock`, `display`)."""
        rows = self.rows()
        index = next(i for i, r in enumerate(rows) if str(r["sku"]) == sku)
        at = self.keys.index(column)
        letter = chr(ord("A") + at)
        self.sheets.set_value(self.sheet_id, self.inventory, f"{letter}{index + 2}", value)
        self.say(
            "  · "
            + _("staff set {column} of {sku} to {value}: {why}").format(
                column=self.header[at], sku=sku, value=repr(value), why=why
            )
        )

    def cycle(self, app: App, title: str) -> None:
        """Run one cycle and show the sheet and the stores."""
        self.say(f"\n== {title}")
        started = time.monotonic()
        report = app.cycle.run()
        kinds: dict[str, int] = {}
        for event in report.events:
            name = event_name(event.event, self.language)
            kinds[name] = kinds.get(name, 0) + 1
        self.say(
            "  "
            + _("cycle took {seconds} s; Log rows: {kinds}").format(
                seconds=f"{time.monotonic() - started:.1f}",
                kinds=", ".join(f"{k} {v}" for k, v in kinds.items()) or _("none"),
            )
        )
        self.show()

    def show(self) -> None:
        """The Inventory tab beside each store's quantity."""
        own = ["sku", "stock", "display", "amazon_display", "set", "shown"]
        names = {k: self.header[self.keys.index(k)] for k in [*own, "status"] if k in self.keys}
        table = [[names.get(k, k) for k in own] + [*CHANNEL_NAMES, names.get("status", "")]]
        for row in self.rows():
            line = [str(row.get(c, "")) for c in own]
            for name in CHANNEL_NAMES:
                item = self.item(row, name)
                quantity = None if item is None else self.markets[name].quantity(item)
                line.append("-" if quantity is None else str(quantity))
            line.append(str(row.get("status", ""))[:60])
            table.append(line)
        widths = [max(_width(r[i]) for r in table) for i in range(len(table[0]))]
        for line in table:
            self.say("  " + "  ".join(_pad(c, widths[i]) for i, c in enumerate(line)).rstrip())

    def show_log(self) -> None:
        """The Log tab."""
        self.say("\n== " + _("The Log tab (one row per change)"))
        grid = self.sheets.get_values(self.sheet_id, self.log)
        keys = column_keys(grid[0], LOG_HEADERS)
        for values in grid[1:]:
            row = {k: v for k, v in zip(keys, [*values, *[""] * len(keys)], strict=False) if k}
            before, after = row.get("before", ""), row.get("after", "")
            moved = f"{before!s:>4}→{after!s:<4}" if before != "" else " " * 9
            self.say(
                f"  {str(row.get('time', ''))[11:19]} {_pad(str(row.get('event', '')), 8)} "
                f"{_pad(str(row.get('channel', '')), 8)} {_pad(str(row.get('sku', '')), 8)} "
                f"{_pad(str(row.get('change', '')), 4, right=True)} {moved} "
                f"{str(row.get('detail', ''))[:70]}"
            )


def run_demo(say: Callable[[str], None] = print, language: str | None = None) -> int:
    """Play the story in `language` (default: STOCKBOT_LANGUAGE); return the exit status."""
    lang = language or demo_language()
    set_language(lang)
    started = time.monotonic()
    logging.getLogger("stockbot").setLevel(logging.WARNING)  # the demo prints its own story
    say(_("stockbot demo: a Google Sheet stand-in and four marketplace stand-ins on loopback."))
    say(_("The bot below is the real one (gspread, the marketplace adapters, the ledger)."))
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        demo = Demo(stack, Path(folder), say, lang)
        app = open_app(demo.settings)
        stack.callback(app.close)
        say(
            "\n== "
            + _("stockbot init-sheet: plain-text columns, validation, protected bot columns")
        )
        for line in init_sheet(app.sheet, demo.settings.channels, demo.settings.language):
            say(f"  · {line}")

        demo.cycle(
            app,
            _(
                "Cycle 1: first sync. Orders placed before now count as already in "
                "Stock; every store gets its display quantity"
            ),
        )
        say("\n" + _("Shoppers buy on every marketplace:"))
        rakuten_order = demo.order("rakuten", "TEA-001", 2)
        demo.order("yahoo", "CUP-001", 1)
        demo.order("amazon", "TEA-002", 1)
        demo.order("shopify", "TEA-003", 1)
        demo.cycle(app, _("Cycle 2: each sale lowers Stock once and what the other stores show"))

        say("\n" + _("A gift box (set SET-001 = TEA-002 + CUP-001) sells on Rakuten:"))
        demo.order("rakuten", "SET-001", 2)
        demo.cycle(
            app,
            _(
                "Cycle 2b: one 'order' row per component; TEA-002 and CUP-001 drop on every "
                "store, the set's Stock is recomputed; Amazon keeps its own settings "
                "(TEA-002 at half, CUP-001 held back by 5)"
            ),
        )

        say("\n" + _("A cancellation, a delivery, and a typo:"))
        demo.markets["rakuten"].cancel_order(rakuten_order)
        say("  · " + _("the shop cancels Rakuten order {order_id}").format(order_id=rakuten_order))
        demo.staff("CUP-001", "stock", 21, _("10 cups arrived"))
        demo.staff("SET-001", "display", "+abc", _("a typo"))
        demo.cycle(
            app,
            _(
                "Cycle 3: the cancellation is put back, the restock is logged as "
                "manual and pushed, the typo is reported on its row"
            ),
        )

        say("\n" + _("A TV mention: staff count only 1 matcha tin left:"))
        demo.staff("TEA-003", "stock", 1, _("stocktake"))
        demo.cycle(app, _("Cycle 4: every store now shows 1"))
        say("\n" + _("Before the next cycle, two shoppers buy the last tin on two stores:"))
        demo.order("rakuten", "TEA-003", 1)
        demo.order("yahoo", "TEA-003", 1)
        demo.cycle(
            app,
            _("Cycle 5: Stock goes to -1, an 'oversold' row tells staff, all stores show 0"),
        )
        demo.show_log()
    say(
        "\n"
        + _(
            "Demo finished in {seconds} s. Next: README.md, sections 'Configuration' and "
            "'Deployment on a VM', and sheet_template/README.md for the sheet."
        ).format(seconds=f"{time.monotonic() - started:.1f}")
    )
    return 0


# `run` against the served demo: short enough to watch, within the setting's minimum of 10 s.
SERVE_INTERVAL_SECONDS = 15
READY = "# stockbot demo --serve is ready;"  # the last line printed, a comment in .env syntax


def serve_demo(
    say: Callable[[str], None] = lambda line: print(line, flush=True),
    tell: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True),
    stop: threading.Event | None = None,
    language: str | None = None,
) -> int:
    """Serve the demo's stand-ins and sheet until Ctrl-C, SIGTERM or SIGHUP; return the status.

    `say` gets only the `KEY=value` lines (stdout, so `stockbot demo --serve > .env` works);
    `tell` gets what a person reads (stderr). `language` (default: STOCKBOT_LANGUAGE) picks
    the sheet's template and the language of what is told.
    """
    lang = language or demo_language()
    set_language(lang)
    stop = stop or threading.Event()
    # SIGHUP too, where the platform has it: an operator who closes the terminal window must
    # not leave the temporary folder (with its service-account key) behind.
    stops = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGHUP"):  # not on Windows
        stops.append(signal.SIGHUP)
    previous = {s: signal.signal(s, lambda *args: stop.set()) for s in stops}
    try:
        with tempfile.TemporaryDirectory(prefix="stockbot-demo-") as folder, ExitStack() as stack:
            demo = Demo(stack, Path(folder), lambda line: None, lang)
            env = {**demo.env, "STOCKBOT_INTERVAL_SECONDS": str(SERVE_INTERVAL_SECONDS)}
            for key, value in sorted(env.items()):
                say(f"{key}={shlex.quote(value)}")  # quoted where a shell would need it
            say(f"{READY} Ctrl-C stops it")
            tell(
                _(
                    "stockbot demo --serve is ready: stand-ins on 127.0.0.1, files in "
                    "{folder}. Its settings (KEY=value lines) went to standard output: put "
                    "them in .env (or `export` them), then try `stockbot init-sheet`, "
                    "`stockbot check`, `stockbot sync`, `stockbot run`. Ctrl-C stops the "
                    "stand-ins."
                ).format(folder=folder)
            )
            while not stop.wait(0.5):  # short waits: the signal handler runs in between
                pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    with suppress(OSError):  # after SIGHUP the terminal may be gone
        tell(_("stockbot demo --serve: stopped"))
    return 0
