"""`stockbot demo`: the whole product on local stand-ins, with no account and no network.

It starts the Sheets API stand-in and one stand-in per marketplace on loopback, builds a sheet
from `sheet_template/`, and plays a short story through the real bot (real gspread, real
adapters, real ledger): sales on every marketplace, a cancellation, a staff restock, a broken
display setting, a gift-box set sold on one marketplace (its components drop everywhere), an
Amazon-only hold-back (`Amazon display`) and an oversell. After each cycle it prints the sheet
and what each store shows.

`stockbot demo --serve` starts the same stand-ins and sheet, prints the environment that points
the other commands at them (`.env` lines), and keeps them up until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import csv
import importlib
import json
import logging
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

from bot.app import App, open_app
from bot.config import CHANNEL_NAMES, Settings
from bot.inventory import NOT_SOLD
from bot.sheet.setup import init_sheet
from bot.standins.market import MarketplaceStandIn
from bot.standins.sheets import SheetsStandIn, make_service_account_info

__all__ = ["run_demo", "serve_demo"]

STANDINS = {
    "rakuten": ("bot.standins.rakuten", "RakutenStandIn"),
    "yahoo": ("bot.standins.yahoo", "YahooStandIn"),
    "amazon": ("bot.standins.amazon", "AmazonStandIn"),
    "shopify": ("bot.standins.shopify", "ShopifyStandIn"),
}
TABS = ("Inventory", "Log", "Channels")


def find_template() -> Path:
    """sheet_template/: in the source checkout, in the installed package, or the working folder."""
    package = Path(__file__).resolve().parent
    for base in (package.parent, package, Path.cwd()):
        if (base / "sheet_template" / "Inventory.csv").exists():
            return base / "sheet_template"
    raise FileNotFoundError(
        "sheet_template/ not found: reinstall stockbot (it ships inside the package)"
    )


def _typed(tab: str, header: Sequence[str], row: Sequence[str]) -> list[object]:
    """CSV text as the values staff would have typed."""
    values: list[object] = []
    for name, text in zip(header, row, strict=False):
        if tab == "Inventory" and name == "Stock" and text.strip():
            values.append(int(text))
        elif tab == "Channels" and name == "Enabled" and text.strip():
            values.append(text.strip().upper() == "TRUE")
        else:
            values.append(text)
    return values


def load_template(folder: Path) -> dict[str, list[list[object]]]:
    """The template's tabs as typed rows."""
    tabs: dict[str, list[list[object]]] = {}
    for tab in TABS:
        with open(folder / f"{tab}.csv", encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        header = rows[0]
        tabs[tab] = [list(header), *[_typed(tab, header, r) for r in rows[1:]]]
    return tabs


class Demo:
    """The demo's world: stand-ins, the sheet and the bot."""

    def __init__(self, stack: ExitStack, tmp: Path, say: Callable[[str], None]) -> None:
        self.say = say
        self.sheets = stack.enter_context(SheetsStandIn())
        self.markets: dict[str, MarketplaceStandIn] = {}
        for name in CHANNEL_NAMES:
            module, cls = STANDINS[name]
            self.markets[name] = stack.enter_context(
                getattr(importlib.import_module(module), cls)()
            )
        key = tmp / "service-account.json"
        key.write_text(json.dumps(make_service_account_info(self.sheets.url + "/token")))
        tabs = load_template(find_template())
        self.sheet_id = self.sheets.create_spreadsheet("stockbot demo", tabs)
        env = {
            "STOCKBOT_SHEET_ID": self.sheet_id,
            "STOCKBOT_GOOGLE_CREDENTIALS": str(key),
            "STOCKBOT_SHEETS_API_URL": self.sheets.url,
            "STOCKBOT_STATE_PATH": str(tmp / "state.sqlite3"),
            "STOCKBOT_CHANNELS": ",".join(CHANNEL_NAMES),
        }
        for market in self.markets.values():
            env.update(market.env())
        self.env = env
        self.settings = Settings.from_env(env)
        header = [str(h) for h in tabs["Inventory"][0]]
        for row in tabs["Inventory"][1:]:
            cells = dict(zip(header, row, strict=False))
            for name, market in self.markets.items():
                item = self.item(cells, name)
                if item is not None:
                    market.add_item(item, 0)
        self.header = header

    @staticmethod
    def item(cells: dict[str, object], channel: str) -> str | None:
        """A row's item id on a marketplace, None when not sold there."""
        value = str(cells.get(channel.capitalize(), "") or "").strip()
        if value == NOT_SOLD:
            return None
        return value or str(cells["SKU"])

    def rows(self) -> list[dict[str, object]]:
        """The Inventory tab as dicts."""
        grid = self.sheets.get_values(self.sheet_id, "Inventory")
        head = [str(h) for h in grid[0]]
        return [dict(zip(head, [*r, *[""] * len(head)], strict=False)) for r in grid[1:]]

    def sku_item(self, sku: str, channel: str) -> str:
        """The item id of a SKU on a channel."""
        row = next(r for r in self.rows() if str(r["SKU"]) == sku)
        item = self.item(row, channel)
        assert item is not None
        return item

    def order(self, channel: str, sku: str, quantity: int) -> str:
        """A shopper buys on a marketplace."""
        order_id = self.markets[channel].place_order([(self.sku_item(sku, channel), quantity)])
        self.say(f"  · a shopper buys {quantity} × {sku} on {channel} (order {order_id})")
        return order_id

    def staff(self, sku: str, column: str, value: object, why: str) -> None:
        """Staff type into the sheet."""
        rows = self.rows()
        index = next(i for i, r in enumerate(rows) if str(r["SKU"]) == sku)
        letter = chr(ord("A") + self.header.index(column))
        self.sheets.set_value(self.sheet_id, "Inventory", f"{letter}{index + 2}", value)
        self.say(f"  · staff set {column} of {sku} to {value!r}: {why}")

    def cycle(self, app: App, title: str) -> None:
        """Run one cycle and show the sheet and the stores."""
        self.say(f"\n== {title}")
        started = time.monotonic()
        report = app.cycle.run()
        kinds: dict[str, int] = {}
        for event in report.events:
            kinds[event.event] = kinds.get(event.event, 0) + 1
        self.say(
            f"  cycle took {time.monotonic() - started:.1f} s; Log rows: "
            + (", ".join(f"{k} {v}" for k, v in kinds.items()) or "none")
        )
        self.show()

    def show(self) -> None:
        """The Inventory tab beside each store's quantity."""
        columns = ["SKU", "Stock", "Display", "Amazon display", "Set", "Shown"]
        columns += [*CHANNEL_NAMES, "Status"]
        table = [columns]
        for row in self.rows():
            line = [str(row.get(c, "")) for c in columns[:6]]
            for name in CHANNEL_NAMES:
                item = self.item(row, name)
                quantity = None if item is None else self.markets[name].quantity(item)
                line.append("-" if quantity is None else str(quantity))
            line.append(str(row["Status"])[:60])
            table.append(line)
        widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
        for line in table:
            self.say("  " + "  ".join(c.ljust(widths[i]) for i, c in enumerate(line)))

    def show_log(self) -> None:
        """The Log tab."""
        self.say("\n== The Log tab (one row per change)")
        for row in self.sheets.get_values(self.sheet_id, "Log")[1:]:
            time_, event, channel, _order, sku, change, before, after, detail = [*row, *[""] * 9][
                :9
            ]
            moved = f"{before!s:>4}→{after!s:<4}" if before != "" else " " * 9
            self.say(
                f"  {str(time_)[11:19]} {event:<8} {channel:<8} {sku:<8} "
                f"{change!s:>4} {moved} {str(detail)[:70]}"
            )


def run_demo(say: Callable[[str], None] = print) -> int:
    """Play the story; return the exit status."""
    started = time.monotonic()
    logging.getLogger("stockbot").setLevel(logging.WARNING)  # the demo prints its own story
    say("stockbot demo: a Google Sheet stand-in and four marketplace stand-ins on loopback.")
    say("The bot below is the real one (gspread, the marketplace adapters, the ledger).")
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        demo = Demo(stack, Path(folder), say)
        app = open_app(demo.settings)
        stack.callback(app.close)
        say("\n== stockbot init-sheet: plain-text columns, validation, protected bot columns")
        for line in init_sheet(app.sheet, demo.settings.channels):
            say(f"  · {line}")

        demo.cycle(
            app,
            "Cycle 1: first sync. Orders placed before now count as already in "
            "Stock; every store gets its display quantity",
        )
        say("\nShoppers buy on every marketplace:")
        rakuten_order = demo.order("rakuten", "TEA-001", 2)
        demo.order("yahoo", "CUP-001", 1)
        demo.order("amazon", "TEA-002", 1)
        demo.order("shopify", "TEA-003", 1)
        demo.cycle(app, "Cycle 2: each sale lowers Stock once and what the other stores show")

        say("\nA gift box (set SET-001 = TEA-002 + CUP-001) sells on Rakuten:")
        demo.order("rakuten", "SET-001", 2)
        demo.cycle(
            app,
            "Cycle 2b: one 'order' row per component; TEA-002 and CUP-001 drop on every "
            "store, the set's Stock is recomputed; Amazon keeps its own settings "
            "(TEA-002 at 50%, CUP-001 held back by 5)",
        )

        say("\nA cancellation, a delivery, and a typo:")
        demo.markets["rakuten"].cancel_order(rakuten_order)
        say(f"  · the shop cancels Rakuten order {rakuten_order}")
        demo.staff("CUP-001", "Stock", 21, "10 cups arrived")
        demo.staff("SET-001", "Display", "+abc", "a typo")
        demo.cycle(
            app,
            "Cycle 3: the cancellation is put back, the restock is logged as "
            "manual and pushed, the typo is reported on its row",
        )

        say("\nA TV mention: staff count only 1 matcha tin left:")
        demo.staff("TEA-003", "Stock", 1, "stocktake")
        demo.cycle(app, "Cycle 4: every store now shows 1")
        say("\nBefore the next cycle, two shoppers buy the last tin on two stores:")
        demo.order("rakuten", "TEA-003", 1)
        demo.order("yahoo", "TEA-003", 1)
        demo.cycle(
            app, "Cycle 5: Stock goes to -1, an 'oversold' row tells staff, all stores show 0"
        )
        demo.show_log()
    say(
        f"\nDemo finished in {time.monotonic() - started:.1f} s. Next: README.md, sections "
        "'Configuration' and 'Deployment on a VM', and sheet_template/README.md for the sheet."
    )
    return 0


# `run` against the served demo: short enough to watch, within the setting's minimum of 10 s.
SERVE_INTERVAL_SECONDS = 15
READY = "# stockbot demo --serve is ready;"  # the last line printed, a comment in .env syntax


def serve_demo(
    say: Callable[[str], None] = lambda line: print(line, flush=True),
    tell: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True),
    stop: threading.Event | None = None,
) -> int:
    """Serve the demo's stand-ins and sheet until Ctrl-C or SIGTERM; return the exit status.

    `say` gets only the `KEY=value` lines (stdout, so `stockbot demo --serve > .env` works);
    `tell` gets what a person reads (stderr).
    """
    stop = stop or threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with tempfile.TemporaryDirectory(prefix="stockbot-demo-") as folder, ExitStack() as stack:
            demo = Demo(stack, Path(folder), lambda _: None)
            env = {**demo.env, "STOCKBOT_INTERVAL_SECONDS": str(SERVE_INTERVAL_SECONDS)}
            for key, value in sorted(env.items()):
                say(f"{key}={shlex.quote(value)}")  # quoted where a shell would need it
            say(f"{READY} Ctrl-C stops it")
            tell(
                f"stockbot demo --serve: stand-ins on 127.0.0.1, files in {folder}. Put the "
                "lines above in .env (or `export` them), then try `stockbot init-sheet`, "
                "`stockbot check`, `stockbot sync`, `stockbot run`. Ctrl-C stops the stand-ins."
            )
            while not stop.wait(0.5):  # short waits: the signal handler runs in between
                pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    tell("stockbot demo --serve: stopped")
    return 0
