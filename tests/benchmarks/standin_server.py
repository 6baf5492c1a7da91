"""The Sheets stand-in and the four marketplace stand-ins in one process, for the benchmarks.

    python -m tests.benchmarks.standin_server --skus 10000 --dir /tmp/x [--enforce-rates]

Starts every stand-in on loopback, lists SKU-000000 .. SKU-{N-1} on each marketplace (in
process: 400,000 HTTP calls would take longer than the benchmark), creates the spreadsheet
with N Inventory rows, prints the bot's environment as KEY=value lines (STOCKBOT_* for the bot,
BENCH_* for the benchmark) and a line `READY`, then serves until killed (SIGTERM, SIGINT) or
until its standard input is closed (so it never outlives the benchmark that started it).

Orders, cancellations and staff edits go through the stand-ins' own HTTP control routes (see
bot/standins/sheets.py and bot/standins/market.py). What those do not offer lives on the Sheets
stand-in under `/_control/bench/`, added here with `StandIn.route` (bot/standins is untouched):

    POST /_control/bench/mark      forget the recorded arrivals, count Sheets requests and
                                   marketplace calls from now on
    GET  /_control/bench/stats     since the mark: Sheets reads/writes, every Sheets API request
                                   with its arrival time (perf_counter of this process), ranges,
                                   body size, cells written and whether it carries the commit
                                   marker; per marketplace, all calls and stock-push calls
    POST /_control/bench/clock     {"offset": seconds}: the marketplaces' wall clocks run that
                                   far ahead of real time (the bot's virtual clock, or Amazon's
                                   two-minute settle time passing at once)
    POST /_control/bench/ship      {"market": "rakuten", "order_id": "..."}: the shop ships it
    POST /_control/bench/forget    drop every recorded request (bounded memory in long runs)
    GET  /_control/bench/tabs      {"tabs": {title: rows holding data}}

Unless `--enforce-rates`, the marketplace stand-ins do not refuse calls for going faster than
the published rates: the benchmark's bot does not wait for them (its pauses are counted).
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.standins.base import Request, Response, json_response  # noqa: E402
from bot.standins.market import MarketplaceStandIn  # noqa: E402
from bot.standins.sheets import SheetsStandIn, make_service_account_info  # noqa: E402

STANDINS = {
    "rakuten": ("bot.standins.rakuten", "RakutenStandIn"),
    "yahoo": ("bot.standins.yahoo", "YahooStandIn"),
    "amazon": ("bot.standins.amazon", "AmazonStandIn"),
    "shopify": ("bot.standins.shopify", "ShopifyStandIn"),
}
HEADER = ["SKU", "Name", "Stock", "Display", "Rakuten", "Yahoo", "Amazon", "Shopify", "Shown"]
HEADER += ["Status"]
LOG_HEADER = ["Time", "Event", "Channel", "Order", "SKU", "Change", "Before", "After", "Detail"]
SHIP = {"rakuten": "ship", "yahoo": "complete_order", "amazon": "ship_order", "shopify": "ship"}


def sku(i: int) -> str:
    """The benchmark's SKU number `i`."""
    return f"SKU-{i:06d}"


def inventory_rows(count: int, stock: int = 50, sets: int = 0) -> list[list[object]]:
    """Inventory rows: every third SKU has a display setting of +2.

    With `sets` percent (at most 33), that share of the rows are set products (a `Set` column
    is added) made of their two neighbours, `SKU-(i-1)*2 + SKU-(i+1)`.
    """
    every = 100 // sets if sets else 0
    rows: list[list[object]] = []
    for i in range(count):
        row: list[object] = [sku(i), "", stock, "+2" if i % 3 == 0 else "", "", "", "", "", "", ""]
        if every:
            is_set = i % every == 1 and i + 1 < count
            row[2] = "" if is_set else stock
            row.append(f"{sku(i - 1)}*2 + {sku(i + 1)}" if is_set else "")
        rows.append(row)
    return rows


def is_push(market: str, request: Request) -> bool:
    """Whether a marketplace request sets stock (the calls batch limits apply to)."""
    if market == "rakuten":
        return "bulk-upsert" in request.path
    if market == "yahoo":
        return "setStock" in request.path
    if market == "amazon":  # a PATCH per SKU, or one createFeed per feed
        return request.method == "PATCH" or request.path.endswith("/feeds/2021-06-30/feeds")
    return b"inventorySetQuantities" in request.body


def cells_written(body: bytes) -> tuple[int, int]:
    """Cells a Sheets write request sets (values, updateCells, appendCells), longest text."""
    try:
        spec = json.loads(body or b"null")
    except ValueError:
        return 0, 0
    if not isinstance(spec, dict):
        return 0, 0
    rows: list[list[Any]] = []
    for item in spec.get("data") or []:  # values:batchUpdate
        rows += item.get("values") or []
    if isinstance(spec.get("values"), list):  # values:update / append
        rows += spec["values"]
    for request in spec.get("requests") or []:
        for kind in ("updateCells", "appendCells"):
            part = request.get(kind) or {}
            rows += [row.get("values") or [] for row in part.get("rows") or []]
    count = sum(len(row) for row in rows)
    longest = 0
    for row in rows:
        for value in row:
            if isinstance(value, dict):  # CellData
                value = (value.get("userEnteredValue") or {}).get("stringValue", "")
            longest = max(longest, len(value) if isinstance(value, str) else 0)
    return count, longest


def filter_ranges(request: Request) -> list[str]:
    """The `a1Range`s of a values:batchGetByDataFilter body (the narrow re-read)."""
    if not request.path.endswith("values:batchGetByDataFilter"):
        return []
    try:
        filters = json.loads(request.body or b"null").get("dataFilters") or []
    except (ValueError, AttributeError):
        return []
    return [str(f["a1Range"]) for f in filters if isinstance(f, dict) and "a1Range" in f]


class Bench:
    """The stand-ins, the sheet, and the benchmark's control routes."""

    def __init__(
        self, folder: Path, skus: int, channels: list[str], enforce: bool, sets: int = 0
    ) -> None:
        self.sheets = SheetsStandIn().start()
        self.markets: dict[str, MarketplaceStandIn] = {}
        self.offset = timedelta(0)
        for name in channels:
            module, cls = STANDINS[name]
            market: MarketplaceStandIn = getattr(importlib.import_module(module), cls)()
            attr = "clock" if name == "amazon" else "now"
            real = getattr(market, attr)
            setattr(market, attr, lambda real=real: real() + self.offset)
            market.enforce_rate_limits = enforce  # type: ignore[attr-defined]
            self.markets[name] = market.start()
        key = folder / "service-account.json"
        key.write_text(json.dumps(make_service_account_info(self.sheets.url + "/token")))
        for market in self.markets.values():
            for i in range(skus):
                market.add_item(sku(i), 0)
        self.sheet_id = self.sheets.create_spreadsheet(
            "stockbot benchmark",
            {
                "Inventory": [HEADER + (["Set"] if sets else []), *inventory_rows(skus, sets=sets)],
                "Log": [LOG_HEADER],
                "Channels": [["Channel", "Enabled", "Last sync", "Last error"]],
            },
        )
        self.env = {
            "STOCKBOT_SHEET_ID": self.sheet_id,
            "STOCKBOT_GOOGLE_CREDENTIALS": str(key),
            "STOCKBOT_SHEETS_API_URL": self.sheets.url,
            "STOCKBOT_CHANNELS": ",".join(channels),
        }
        for name, market in self.markets.items():
            self.env.update(market.env())
            self.env[f"BENCH_{name.upper()}_URL"] = market.url
        self.env["BENCH_SKUS"] = str(skus)
        self.arrivals: list[tuple[float, Request]] = []
        self.marks: dict[str, int] = {}
        self.sheets.add_hook(self._arrived)
        route = self.sheets.route
        route("POST", r"/_control/bench/mark", self._mark)
        route("GET", r"/_control/bench/stats", self._stats)
        route("POST", r"/_control/bench/clock", self._clock)
        route("POST", r"/_control/bench/ship", self._ship)
        route("POST", r"/_control/bench/forget", self._forget)
        route("GET", r"/_control/bench/tabs", self._tabs)
        self._do_mark()

    def _arrived(self, request: Request) -> None:
        # Runs inside the stand-in's lock, before the request is handled: its arrival time.
        self.arrivals.append((time.perf_counter(), request))

    def _do_mark(self) -> None:
        self.arrivals = []
        self.sheets.reset_counters()
        self.marks = {name: len(m.requests) for name, m in self.markets.items()}

    def _mark(self, request: Request) -> Response:
        self._do_mark()
        return json_response({"ok": True})

    def _stats(self, request: Request) -> Response:
        sheet_requests = []
        for at, r in self.arrivals:
            if not r.path.startswith("/v4/"):
                continue
            written = cells_written(r.body) if r.method != "GET" else (0, 0)
            sheet_requests.append(
                {
                    "t": at,
                    "method": r.method,
                    "path": r.path,
                    "ranges": r.query.get("ranges", []) or filter_ranges(r),
                    "bytes": len(r.body),
                    "cells": written[0],
                    "longest": written[1],
                    "commit": b"stockbot.commit" in r.body,
                }
            )
        markets = {}
        for name, m in self.markets.items():
            with m.lock:
                recent = m.requests[self.marks.get(name, 0) :]
            markets[name] = {
                "calls": len(recent),
                "push_calls": sum(1 for r in recent if is_push(name, r)),
            }
        return json_response(
            {
                "sheets": {
                    "reads": self.sheets.reads,
                    "writes": self.sheets.writes,
                    "requests": sheet_requests,
                },
                "markets": markets,
            }
        )

    def _clock(self, request: Request) -> Response:
        self.offset = timedelta(seconds=float(request.json()["offset"]))
        return json_response({"ok": True})

    def _ship(self, request: Request) -> Response:
        spec = request.json()
        market = self.markets[spec["market"]]
        getattr(market, SHIP[spec["market"]])(str(spec["order_id"]))
        return json_response({"ok": True})

    def _forget(self, request: Request) -> Response:
        for stand_in in [self.sheets, *self.markets.values()]:
            with stand_in.lock:
                stand_in.requests.clear()
        self.sheets._counted_from = 0  # the counters index into `requests`
        self._do_mark()
        return json_response({"ok": True})

    def _tabs(self, request: Request) -> Response:
        book = self.sheets._books[self.sheet_id]
        tabs = {}
        for sheet in book.sheets:
            values = self.sheets.get_values(self.sheet_id, sheet.title)
            tabs[sheet.title] = {
                "rows": len(values),
                "longest_cell": max((len(str(v)) for row in values for v in row), default=0),
            }
        return json_response({"tabs": tabs})

    def stop(self) -> None:
        """Stop every stand-in."""
        for stand_in in [self.sheets, *self.markets.values()]:
            stand_in.stop()


def main() -> None:
    """Start, print the environment, serve until killed or until stdin closes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, required=True, help="where the key file goes")
    parser.add_argument("--channels", default="rakuten,yahoo,amazon,shopify")
    parser.add_argument("--enforce-rates", action="store_true")
    parser.add_argument("--sets", type=int, default=0, help="percent of rows that are sets")
    args = parser.parse_args()
    started = time.perf_counter()
    bench = Bench(args.dir, args.skus, args.channels.split(","), args.enforce_rates, args.sets)
    for key, value in bench.env.items():
        print(f"{key}={value}")
    print(f"BENCH_SETUP_SECONDS={time.perf_counter() - started:.1f}")
    print("READY", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())

    def watch_stdin() -> None:
        sys.stdin.read()  # returns when the benchmark closes the pipe or exits
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    while not done.wait(0.5):
        pass
    bench.stop()


if __name__ == "__main__":
    main()
