"""Benchmark (not a test): many `stockbot run` cycles on a virtual clock, watching for growth.

    python tests/benchmarks/bench_longrun.py [--cycles 10000] [--skus 100] [--step 300]
        [--channels rakuten,yahoo,amazon,shopify] [--every 500]

The stand-ins run in their own process (`tests/benchmarks/standin_server.py`), so this
process's memory is the bot's alone: the stand-ins keep every order and every Log row, which
would hide the bot's own growth. The bot runs in this process the way `stockbot run` does:
one sheet client, one ledger, one set of adapters and one `Cycle`, run again and again. Time
is virtual (tests/world.py's `FakeTime`): every cycle moves the bot's clocks `--step` seconds
on and the marketplaces' clocks with them (`/_control/bench/clock`), rate-limit pauses do not
wait, and the stand-ins do not enforce rates. The bot is configured with that step as its
interval, so the lease sees the cycles it expects.

Between cycles, through the stand-ins' control routes: random orders (1-2 lines) on the four
marketplaces, cancellations of unshipped orders, orders shipped `--ship-after` virtual hours
after they were placed (closed, so the state file may forget them), and staff typing new Stock
values. Every `--every` cycles it prints: this process's RSS (VmRSS), its growth since the
first report (the warm-up), the memory SQLite holds (the ledger's page cache, which grows with
the state file up to `bot.ledger.CACHE_KIB`), the state file's size (and its SQLite write-ahead
log's), the Log tab's rows, tabs whose title starts with "Log until" (rollovers), the longest
Log cell, Sheets requests per cycle, and the time the last cycles took.

Speed: a cycle costs ~150-200 ms here with four marketplaces, most of it the stand-ins
answering (Shopify's GraphQL stand-in alone ~70 ms), so 10,000 cycles take ~30 minutes on two
cores; `--channels rakuten` brings a cycle to ~70 ms, `--channels amazon,shopify` to ~130 ms
(on a shared machine, up to twice these). The default step, 300 s, is the default interval:
10,000 cycles are 35 virtual days. Orders change for longer than that (Rakuten treats a shipped
order as final after 30 days; whole closed orders are forgotten 180 days after they were placed,
their ids after 800, `bot.sync.RETAIN_ORDERS` and `RETAIN_IDS`), so to see the state file level
off run with a longer step: `--step 10800` passes 800 days at cycle 6,400.

Measured 2026-11-30, with other engineers' benchmarks on the 2 cores (load 4-7), 100 SKUs:
- `--cycles 2000 --every 500` (four marketplaces, step 300; main as merged, 5e24551, before
  this day's lease change, which changes nothing at a 300 s interval): 5.0 Sheets requests a
  cycle in every report; RSS 72.1 MB at cycle 500, 76.1 MB at 2,000 (+4.0 MB, still warming
  up); state file 196 to 472 KB; no rollover; longest Log cell 1,530. Again with this code,
  `--cycles 1000 --every 500` (same seed, same shop): 5 Sheets requests in each of cycles
  2-1,000, 6 in the first. No push failed in these runs, so none needed the read that finds
  rows again before a Status write (a 6th request).
- `--cycles 10000 --channels amazon,shopify --step 3600 --every 1000 --log-roll-cells 50000`
  (416 days): RSS 69.1 MB at cycle 1,000, 73.3 MB at 6,000, 73.0 MB at 10,000 (+3.9 MB); state
  file 232 KB to 932 KB (~145 KB per 1,000 cycles until the 180-day prune at cycle 4,320, ~40
  KB per 1,000 after: the ids, kept 800 days, still pile up at 416); 12 rollovers; 5 Sheets
  requests in every cycle but the first (6: it takes the lease); longest Log cell 1,530.
- `--cycles 9000 --channels rakuten --step 10800 --every 500 --log-roll-cells 50000` (1,125
  days): the state file grew ~190 KB per 1,000 cycles until the 180-day prune (cycle 1,440),
  ~50 KB per 1,000 until 800 days (cycle 6,400, 644 KB at 6,500), then 12 KB in all: 652 KB at
  7,000, 656 KB from 8,000 to 9,000 (SQLite memory 848 KB from 7,500 on). RSS 71.3 MB at cycle
  500, 73.8 MB at 9,000 (+2.5 MB); 7 rollovers; 5 Sheets requests in every cycle but the first
  (6: it takes the lease); longest Log cell 1,528.
The README's "Long run" section has the tables.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import random
import sys
import tempfile
import time
from collections import Counter, deque
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bot import rollover  # noqa: E402
from bot.channels import build_channels  # noqa: E402
from bot.channels.http import RetryPolicy  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.ledger import Ledger  # noqa: E402
from bot.sheet.client import SheetClient  # noqa: E402
from bot.sync import Cycle  # noqa: E402
from tests.benchmarks.bench_scale import MARKETS, Server  # noqa: E402
from tests.world import FakeTime  # noqa: E402


def rss_mb() -> float:
    """This process's resident set size now (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sqlite_kb() -> float:
    """Memory SQLite holds in this process (the ledger's page cache, mostly), in KB."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
    except OSError:
        return float("nan")
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    return int(lib.sqlite3_memory_used()) / 1024


def state_kb(path: Path) -> tuple[float, float]:
    """The state file's size, and its SQLite write-ahead log's, in KB."""
    wal = path.with_name(path.name + "-wal")
    return (
        path.stat().st_size / 1024 if path.exists() else 0.0,
        wal.stat().st_size / 1024 if wal.exists() else 0.0,
    )


class Shop:
    """Shoppers and staff acting through the stand-ins' control routes."""

    def __init__(
        self,
        server: Server,
        skus: int,
        rng: random.Random,
        markets: list[str],
        ship_after: timedelta,
    ) -> None:
        self.ship_after = ship_after
        self.server = server
        self.markets = markets
        self.skus = skus
        self.rng = rng
        self.open: deque[tuple[timedelta, str, str]] = deque()  # (placed at, market, id)
        self.counts = {"orders": 0, "lines": 0, "cancels": 0, "ships": 0, "edits": 0}

    def act(self, now: timedelta, orders: float, cancels: float, edits: float) -> None:
        """One cycle's worth of shop life, at virtual time `now` (offset from real time)."""
        rng = self.rng
        while self.open and now - self.open[0][0] >= self.ship_after:
            _, market, order_id = self.open.popleft()
            self.server.bench("POST", "ship", {"market": market, "order_id": order_id})
            self.counts["ships"] += 1
        for _ in range(_draws(rng, orders)):
            market = rng.choice(self.markets)
            lines = [
                {"item": f"SKU-{rng.randrange(self.skus):06d}", "quantity": rng.randint(1, 2)}
                for _ in range(rng.randint(1, 2))
            ]
            if len({line["item"] for line in lines}) < len(lines):
                lines = lines[:1]
            url = self.server.env[f"BENCH_{market.upper()}_URL"] + "/_control/orders"
            answer = self.server.control("POST", url, {"lines": lines, "force": True})
            self.open.append((now, market, str(answer["order_id"])))
            self.counts["orders"] += 1
            self.counts["lines"] += len(lines)
        for _ in range(_draws(rng, cancels)):
            recent = [o for o in self.open if now - o[0] < self.ship_after]
            if not recent:
                break
            order = rng.choice(recent)
            self.open.remove(order)
            _, market, order_id = order
            url = self.server.env[f"BENCH_{market.upper()}_URL"]
            self.server.control("POST", f"{url}/_control/orders/{order_id}/cancel")
            self.counts["cancels"] += 1
        sid = self.server.env["STOCKBOT_SHEET_ID"]
        for _ in range(_draws(rng, edits)):
            row = rng.randrange(self.skus) + 2
            spec = {"tab": "Inventory", "a1": f"C{row}", "value": rng.randint(0, 80)}
            self.server.control("POST", f"{self.server.url}/_control/spreadsheets/{sid}/cell", spec)
            self.counts["edits"] += 1


def _draws(rng: random.Random, mean: float) -> int:
    """How many times something happens this cycle: `mean` on average."""
    whole = int(mean)
    return whole + (1 if rng.random() < mean - whole else 0)


def open_bot(server: Server, state: Path, clock: FakeTime, step: int) -> tuple[Cycle, Any]:
    """The bot as `stockbot run` builds it, on the virtual clock; and what to close after."""
    env = {k: v for k, v in server.env.items() if k.startswith("STOCKBOT_")}
    env["STOCKBOT_STATE_PATH"] = str(state)
    env["STOCKBOT_INTERVAL_SECONDS"] = str(step)
    settings = Settings.from_env(env)
    assert settings.google_credentials is not None
    sheet = SheetClient(
        settings.sheet_id,
        settings.google_credentials,
        settings.sheets_api_url,
        policy=RetryPolicy(sleep=clock.sleep),
    )
    channels = build_channels(
        settings, sleep=clock.sleep, clock=clock.monotonic, wall_clock=clock.now
    )
    ledger = Ledger(settings.state_path)
    ledger.lock()
    cycle = Cycle(
        sheet,
        ledger,
        channels,
        timezone=settings.timezone,
        interval_seconds=step,
        now=clock.now,
        sleep=clock.sleep,
    )

    def close() -> None:
        for channel in channels.values():
            channel.close()
        ledger.close()

    return cycle, close


def report_line(
    server: Server,
    n: int,
    state: Path,
    base: float | None,
    took: float,
    every: int,
    requests: Counter[int],
) -> tuple[str, float]:
    """One progress line; and the RSS it printed.

    `requests` counts the cycles since the last report by the Sheets requests each made (as the
    bot's own `CycleReport` counts them).
    """
    rss = rss_mb()
    counters = server.control("GET", f"{server.url}/_control/counters")
    per_cycle = (counters["reads"] + counters["writes"]) / every
    spread = ", ".join(f"{k}: {v}" for k, v in sorted(requests.items()))
    markets = server.bench("GET", "stats")["markets"]
    calls = ", ".join(f"{m} {v['calls'] / every:.1f}" for m, v in markets.items())
    main, wal = state_kb(state)
    tabs = server.bench("GET", "tabs")["tabs"]
    log = tabs.get("Log", {"rows": 0, "longest_cell": 0})
    rolled = {t: v["rows"] for t, v in tabs.items() if t.startswith("Log until")}
    longest = max([log["longest_cell"], *(tabs[t]["longest_cell"] for t in rolled)])
    growth = "" if base is None else f" ({rss - base:+.1f} since cycle {every})"
    line = (
        f"cycle {n:>6}: RSS {rss:6.1f} MB{growth}, SQLite {sqlite_kb():.0f} KB; "
        f"state {main:7.0f} KB (+WAL {wal:.0f} KB); "
        f"Log rows {log['rows']:>6}; rollovers {len(rolled)}"
        + (f" {sorted(rolled.items())}" if rolled else "")
        + f"; longest Log cell {longest}; per cycle: Sheets requests {per_cycle:.1f} "
        f"(cycles by requests made {{{spread}}}), marketplace calls {calls}; "
        f"{took / every * 1000:.0f} ms/cycle"
    )
    return line, rss


def main() -> None:
    """Parse arguments, run the cycles, print as it goes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--skus", type=int, default=100)
    parser.add_argument(
        "--step", type=int, default=300, help="virtual seconds per cycle (the bot's interval)"
    )
    parser.add_argument("--every", type=int, default=500, help="cycles between reports")
    parser.add_argument("--orders", type=float, default=0.5, help="orders per cycle (mean)")
    parser.add_argument(
        "--ship-after", type=float, default=12, help="virtual hours until an order ships"
    )
    parser.add_argument("--cancels", type=float, default=0.1, help="cancels per cycle (mean)")
    parser.add_argument("--edits", type=float, default=0.2, help="staff edits per cycle (mean)")
    parser.add_argument("--channels", default=",".join(MARKETS))
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument(
        "--log-roll-cells",
        type=int,
        default=rollover.LOG_ROLL_CELLS,
        help="roll the Log tab over at this many cells (lower it to see rollovers in a short run)",
    )
    args = parser.parse_args()
    rollover.LOG_ROLL_CELLS = args.log_roll_cells  # the bot runs in this process
    span = timedelta(seconds=args.cycles * args.step)
    print(
        f"{args.cycles:,} cycles over {args.skus:,} SKUs and marketplaces {args.channels}, "
        f"{args.step} virtual seconds apart ({span.days} virtual days); per cycle on average "
        f"{args.orders} orders, {args.cancels} cancellations, {args.edits} staff edits",
        flush=True,
    )
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-longrun-") as tmp:
        folder = Path(tmp)
        server = Server(args.skus, folder, enforce=False, channels=args.channels)
        clock = FakeTime()
        state = folder / "state.sqlite3"
        cycle, close = open_bot(server, state, clock, args.step)
        shop = Shop(
            server,
            args.skus,
            rng,
            args.channels.split(","),
            timedelta(hours=args.ship_after),
        )
        failed = 0
        base: float | None = None
        requests: Counter[int] = Counter()  # Sheets requests a cycle made -> cycles
        most = 0
        print(f"cycle      0: RSS {rss_mb():6.1f} MB (before the first cycle)", flush=True)
        try:
            started = last = time.perf_counter()
            for n in range(1, args.cycles + 1):
                clock.offset += timedelta(seconds=args.step)
                clock.advance(args.step)
                server.bench("POST", "clock", {"offset": clock.offset.total_seconds()})
                if n > 1:
                    shop.act(clock.offset, args.orders, args.cancels, args.edits)
                report = cycle.run()
                made = report.sheet_reads + report.sheet_writes
                requests[made] += 1
                most = max(most, made)
                if not report.ok:
                    failed += 1
                    if failed <= 5:
                        print(f"cycle {n}: failed channels {report.failed_channels}", flush=True)
                if n % args.every == 0 or n == args.cycles:
                    now = time.perf_counter()
                    line, rss = report_line(
                        server, n, state, base, now - last, n % args.every or args.every, requests
                    )
                    print(line, flush=True)
                    requests.clear()
                    server.bench("POST", "forget")  # the stand-ins' request logs, not the sheet
                    clock.slept.clear()  # FakeTime keeps every pause: the harness's, not the bot's
                    if base is None:
                        base = rss
                    last = time.perf_counter()
            elapsed = time.perf_counter() - started
        finally:
            close()
            server.stop()
    print(
        f"\n{args.cycles:,} cycles in {elapsed:.0f} s ({elapsed / args.cycles * 1000:.0f} ms a "
        f"cycle, shop actions included); {failed} cycles reported a failed channel; "
        f"at most {most} Sheets requests in a cycle; shop: "
        + ", ".join(f"{k} {v}" for k, v in shop.counts.items())
    )
    print(
        "RSS is this process's (the bot plus this script; the stand-ins run in another "
        "process); growth is counted from the first report, after the warm-up. Sheets "
        "requests/cycle: reads and writes the Sheets stand-in received, averaged since the "
        "last report."
    )


if __name__ == "__main__":
    main()
