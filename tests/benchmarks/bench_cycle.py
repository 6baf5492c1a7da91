"""Benchmark (not a test): one cycle over 10,000 SKUs and 500 order lines, against the stand-ins.

    python tests/benchmarks/bench_cycle.py [--skus 10000] [--lines 500] [--channels rakuten]

Prints the cycle's wall time, Sheets requests, each marketplace's requests against the
minimum its batch limits allow, the staff-edit window, and peak memory; then the same
changes done the naive way (one Sheets write per changed cell, one marketplace call per SKU)
in the same run, for comparison. Rate-limit pauses are counted, not slept: the printed
"at published rates" time is what the real APIs would need.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.world import World, world  # noqa: E402

BATCH = {"rakuten": 400, "yahoo": 1000, "amazon": 1, "shopify": 250}


def _rows(count: int) -> list[list[object]]:
    return [
        [f"SKU-{i:05d}", "", 50, "+2" if i % 3 == 0 else "", "", "", "", "", "", ""]
        for i in range(count)
    ]


def _marketplace_calls(w: World) -> dict[str, int]:
    return {name: len(m.requests) for name, m in w.markets.items()}


def _push_calls(w: World, name: str, since: int) -> int:
    paths = {
        "rakuten": "bulk-upsert",
        "yahoo": "setStock",
        "amazon": "listings|feeds",
        "shopify": "graphql",
    }
    requests = w.markets[name].requests[since:]
    if name == "shopify":  # one GraphQL endpoint: count the stock mutations
        return sum(1 for r in requests if b"inventorySetQuantities" in r.body)
    return sum(1 for r in requests if re.search(paths[name], r.path))


def bench(skus: int, lines: int, channels: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp, world(Path(tmp), channels) as w:
        w.create_sheet(_rows(skus))
        for market in w.markets.values():
            for i in range(skus):
                market.add_item(f"SKU-{i:05d}", 0)
        print(f"setup: {skus} SKUs, {len(channels)} marketplace(s): {', '.join(channels)}")
        t = time.perf_counter()
        first = w.sync()
        print(
            f"first cycle (pushes every SKU): {time.perf_counter() - t:.2f} s, "
            f"{first.sheet_reads} Sheets reads + {first.sheet_writes} writes"
        )

        sold: set[str] = set()
        names = list(w.markets)
        for n in range(lines):
            sku = f"SKU-{(n * 7919) % skus:05d}"
            sold.add(sku)
            w.markets[names[n % len(names)]].place_order([(sku, 1)], force=True)
        before = _marketplace_calls(w)
        sheet_before = len(w.sheets.requests)
        slept_before = len(w.time.slept)
        arrivals: list[tuple[str, float]] = []

        def note(request: object) -> None:
            arrivals.append((str(getattr(request, "path", "")), time.perf_counter()))

        w.sheets.add_hook(note)
        t = time.perf_counter()
        report = w.sync()
        elapsed = time.perf_counter() - t
        rate_wait = sum(w.time.slept[slept_before:])
        changed = len(sold)
        print(f"\ncycle with {lines} order lines on {changed} SKUs:")
        print(
            f"  wall time            {elapsed:.2f} s (+ {rate_wait:.1f} s of rate-limit "
            "pauses at published rates, not slept here)"
        )
        print(
            f"  Sheets requests      {len(w.sheets.requests) - sheet_before} "
            f"({report.sheet_reads} reads, {report.sheet_writes} writes)"
        )
        pushed = {p.channel: len(p.updates) for p in report.pushes}
        calls = {name: _push_calls(w, name, before[name]) for name in names}
        for name in names:
            pushes = calls[name]
            items = pushed.get(name, 0)
            minimum = math.ceil(items / BATCH[name])
            total = len(w.markets[name].requests) - before[name]
            print(
                f"  {name:<8} {items} items changed: push calls {pushes} vs minimum "
                f"ceil({items}/{BATCH[name]}) = {minimum}; all calls incl. orders {total}"
            )
        # The re-read before the commit: the narrow one (batchGetByDataFilter), or the whole
        # columns (batchGet) when the commit writes too many rows or the narrow one saw a change.
        reads = [
            at
            for path, at in arrivals
            if path.endswith(("values:batchGet", "values:batchGetByDataFilter"))
        ]
        commit = next(
            at for path, at in arrivals if path.endswith(":batchUpdate") and at > reads[-1]
        )
        print(
            f"  staff-edit window    {(commit - reads[-1]) * 1000:.1f} ms (the re-read before "
            "the commit reaching the stand-in, to the commit reaching it)"
        )
        print(f"  Log rows written     {len(report.events)}")

        # Memory, in a cycle of its own: tracing slows Python down too much to time it.
        for n in range(lines):
            w.markets[names[n % len(names)]].place_order([(f"SKU-{n % skus:05d}", 1)], force=True)
        tracemalloc.start()
        w.sync()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"  peak Python memory   {peak / 1e6:.1f} MB (tracemalloc, a like cycle; the "
            "stand-ins share the process, so this is an upper bound for the bot)"
        )

        # The naive baseline: the same Stock changes, one gspread write per cell.
        import gspread

        from bot.sheet.client import http_client_for

        gc = gspread.service_account(
            filename=str(w.key_path), http_client=http_client_for(w.sheets.url)
        )
        sheet = gc.open_by_key(w.sheet_id).worksheet("Inventory")
        t = time.perf_counter()
        for i, _sku in enumerate(sorted(sold)):
            sheet.update([[49]], f"C{i + 2}", raw=True)
        naive = time.perf_counter() - t
        print(
            f"\nnaive baseline: {changed} single-cell Sheets writes took {naive:.2f} s locally "
            f"({changed} write requests vs {report.sheet_writes}); at Google's 60 writes/min "
            f"that is {changed / 60:.0f} min of quota vs one cycle"
        )
        for name in names:
            print(f"  {name:<8} one call per SKU: {pushed.get(name, 0)} calls vs {calls[name]}")


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--channels", default="rakuten,yahoo,amazon,shopify")
    args = parser.parse_args()
    bench(args.skus, args.lines, args.channels.split(","))


if __name__ == "__main__":
    main()
