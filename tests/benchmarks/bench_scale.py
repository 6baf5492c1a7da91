"""Benchmark (not a test): the bot as its own process against stand-ins in another.

    python tests/benchmarks/bench_scale.py [--skus 10000,100000] [--lines 500] [--real-sleep]
        [--profile /tmp/prof/bot] [--sets 10]

For each size N: `tests/benchmarks/standin_server.py` starts the Sheets stand-in and the four
marketplace stand-ins in one process with an N-row sheet; then the bot runs twice as a child
process with a fresh state file:

  (a) first cycle: a clean start, every SKU pushed to every marketplace;
  (b) a cycle after `--lines` order lines spread over the four marketplaces (placed through
      the stand-ins' HTTP control routes).

Then, on fresh stand-ins and a fresh sheet (so its first cycle starts where (a) did), the
cycles as `stockbot run` runs them ("run:" rows): one child process opens the app once, as
bot/cli.py `cmd_run` does, and runs a cycle for each line "cycle" the benchmark writes to its
standard input: the first cycle, a cycle after the same order lines as (b), a quiet cycle (no
new orders). For each it answers a JSON line: the whole process's CPU during the cycle
(`resource.getrusage(RUSAGE_SELF)` deltas, user + sys, every thread), wall time, VmRSS after
it, and whether the report was ok; so these figures exclude starting Python and importing the
bot, which "run: open" shows (interpreter start, import and `open_app`). Between cycles the
virtual clocks (below) move on by the interval, as `run` waits it. The stand-ins' counters are
marked before each cycle. "run: whole process CPU" is os.wait4's figure, split into open and
cycles, releasing the sheet and closing the app, and the interpreter's exit.

Measured for the bot's process alone: CPU (user + sys, os.wait4), peak RSS (VmHWM of its own
address space, which the process writes at exit: Linux's ru_maxrss would also count the memory
this benchmark held when it started the child, carried across fork and exec), and
wall time. From the stand-ins: Sheets requests, marketplace calls against the fewest the batch
limits allow, and the staff-edit window (the re-read before the commit reaching the Sheets
stand-in, to the commit reaching it), cut at the bot's own steps: the stand-in serving the
re-read (its answer made and sent, up to the bot holding all of it), decoding its JSON,
comparing it with the first read, re-planning and preparing the commit when something changed,
and sending the commit (the bot's process traces these with perf_counter, the clock of the
stand-in's arrival times). Then a naive baseline in the same run.

Rate-limit pauses: by default the bot runs with a virtual clock for `time.sleep` and
`time.monotonic` (installed before `bot` is imported; each marketplace gets its own timeline,
as each runs in its own thread): the bot's rate limiters, Amazon's feed polls and any back-off
do not wait, and what they would have waited is printed as "rate-limit pauses" per marketplace.
Wall time then excludes them. The stand-ins do not refuse fast calls in this mode, but the
Shopify stand-in's cost bucket still runs on its own real clock and the bot adopts the level it
reports, so a cycle seconds after a big push (b, the run's later cycles) shows Shopify pauses
that a cycle an interval later would not have. With
`--real-sleep` the bot is plain `python -m bot sync`, waits for real, and the stand-ins enforce
the published rates (wall time then includes the pauses; expect many minutes at 100,000).

`--sets 10` makes 10 % of the rows set products of their two neighbours (SPEC.md section 3a).

`--profile P` runs the bot under cProfile, its worker threads included (not with
`--real-sleep`), and writes P.<size>.first.prof and P.<size>.orders.prof for `pstats` (and
P.<size>.run.prof for the whole `run` child); CPU figures of a profiled run are inflated, so
read them from a run without it.

Where the time and memory went at 100,000 SKUs (cProfile of (b), 2026-11-30, issue 8), and
what was done about it:

- `parse_inventory`, 35 % of the main thread: 1.2 million `item_key` calls (each row's four
  marketplace keys worked out again by the shared-item check, `apply.item_index` and
  `own_events`), `parse_display` and `gettext` once per row, a dict-backed `Row` with four
  empty containers each. Now: keys once per row (`Row.keys`), a display setting parsed once
  per distinct value, labels once per sheet, `Row` with slots and shared empty containers.
- `plan_pushes`, 23 %: `Ledger.pushes` built 400,000 `PushState` objects to compare each
  with its row. Now settled items come from SQLite as plain numbers
  (`Ledger.settled_quantities`) and only the few others as `PushState`; one pass over the
  rows serves every channel.
- `apply.plan` 8 % (its item indexes), `own_events` 3 %, `_report` 2 % (Status worked out
  again for every row; now for pushed rows only), the first read and the re-read 8 % (HTTP
  and JSON of 1,000,000 and 200,000 cells), Amazon's 500 PATCH calls 10 % (httpx, in their
  thread), importing the bot 2 %.
- Memory of (a), 514 MB peak: the commit answer's snapshot of 100,000 SKU cells with every
  field (now trimmed by the `fields` parameter to values), the commit body as 200,000
  nested cell dicts (now one shared dict per distinct value), `Row`, `StockUpdate`,
  `PushState` and `LineState` without slots.
- The staff-edit window at 100,000 SKUs, 500 order lines, 4.9 s on a loaded machine: the
  stand-in serving the re-read 3.5 s, decoding its 200,000 one-cell rows 1.1 s, comparing them
  row by row 0.3 s, sending 0.07 s (first cycle: encoding its 11.6 MB commit body 0.5 s). Now
  the re-read is column-major (one list per column: decoding is ten times faster), compared
  with the first read's columns as two lists, and the commit body encoded before the re-read.
Since then the re-read before the commit is narrow (`bot.positions`): the header row and the
SKU and Stock cells of the rows the commit writes, so in (b) the stand-in's part of the
staff-edit window follows the rows a cycle writes, not the sheet; (a) writes every row and
still reads the whole SKU and Stock columns. Not done yet: the first read still takes every
column of the tab as Python objects.

Second round (py-spy --gil samples of (b) at 100,000 SKUs, 2026-11-30 afternoon), from about
10.6 s of the interpreter's time: `parse_inventory` 26 % (a bounds check per cell, a regex
per SKU, four item keys per row, the clash check's dict per marketplace), `apply.plan` 12 %
(four item-index comprehensions, the whole baseline case-folded), `plan_pushes` 12 % (of it
`Ledger.settled_quantities` 4 %: 400,000 SQLite rows), the commit's preparation 11 % (a cap
check and a Status text worked out per row and marketplace, a Status text kept per row),
Amazon's 500 PATCHes 9 %, the first read 6 %, importing 10 %. Now: rows padded once and
indexed directly, fast paths for a text SKU, a whole-number Stock and rows with no item ids,
`strip_blanks` without a regex, only the Rakuten key and the typed item ids stored (`Row.key`,
`Row.item`), the clash and set
checks skipped when nothing can clash, problems as shared empty tuples, the item indexes built
in `plan`'s one pass, the folded baseline made only on a miss and the baseline read once a
cycle, cap notes only for rows that can reach a cap, Status texts kept only when not OK, and
Shopify's answers decoded once. First-cycle memory: the commit's snapshot asks for
`effectiveValue` only. (The first read's grid must stay until the report's own landing check:
a repair after the pushes puts back a staff cell from it, `tests/test_review_attacks_8.py`.)
What is left is spread thin: every cycle still reads, parses and plans every row in about six
passes (see the README's Measured table); meeting 2 s at 100,000 SKUs needs a cycle that
carries its rows from one cycle to the next and works on the changed ones only.

Third round (2026-11-30, the next session; py-spy --gil of (a) and (b) at 100,000 SKUs, and
the time Python's cycle collector took, from `gc.callbacks` in the bot's process): it took
6.4 s of a first cycle's 26 s (5,108 collections, 15 of them walking every object: the
sheet's million cells, the rows, the push bodies) and 0.86 s of (b). Now a cycle runs with the
collector off, and on during the pushes (thresholds 10,000/10/10; `bot.sync._collector_paused`):
1.8 s and 0.16 s. With the collector simply off for the whole cycle the first cycle peaked at
355 MB instead of 290: every httpx request and its answer form a reference cycle, and the
pushes' answers were kept to the end. Setting every older object aside during the pushes
(`gc.freeze`) saved 0.8 s more, but a long run (bench_longrun) then grew 150 KB a cycle: the
objects come back into the oldest generation uncounted, and the collector seldom walks it.
Also: Yahoo's XML answers by the standard library's C parser (defusedxml's parser in Python
took 7.6 % of (a)); `parse_inventory`'s duplicate and clash checks at C speed when nothing
repeats, and a Rakuten key of a plain code without a call (callgrind, 10,000 rows: 381 to 277
million instructions); fewer calls per row in `plan` and `plan_pushes` (292 to 223 million).
The "run:" rows show what a `run` cycle costs without interpreter start, import and exit (the
exit alone: 0.4 s at 10,000 SKUs, 0.7-0.8 s at 100,000; a process that only imports the bot's
libraries already spends 0.25 s on it, tearing down their modules). What is left in (a): the
pushes 46 %
(Shopify's variant look-up 13 %, its pushes 7 %, Rakuten 11 %, Yahoo 8 %, Amazon's feeds 7 %),
the commit 15 % (the pending commit saved as JSON 6 %, the cells 4 %), recording pushes in
the state file 6 %; in a cycle with orders the per-row passes as above and Amazon's PATCHes.

Fourth round (2026-11-30, the session after; py-spy --gil of `run` cycles at 100,000 SKUs,
the "run:" child driven through several cycles, since this machine's CPU figures vary by
20-30 % from run to run). A quiet cycle spent 12 % reading the 400,000 settled push
quantities again, and 4 % in Python's collector turned back on for pushes that did not happen;
`apply.plan` built four item indexes of every row where a cycle's lines name a few hundred
items. Now: the settled quantities are kept between the cycles of a `run` and only the items
written since are read again (`Ledger.settled_quantities`; exactly the query's answer: the
ledger names every write to the pushes table, and SQLite's `data_version` drops them when
another connection writes the file); the collector comes on only for a push of 20,000 items
or 1,000 calls (`sync.PUSH_COLLECTOR_FROM`); `plan` indexes only the lines' items; a push plan
names only the SKUs of typed items (`PushPlan.typed`: 400,000 entries less in a first
cycle); the cap check skips rows that cannot reach a cap; the pushes table is `WITHOUT ROWID`
(a first push's 800,000 writes and every settled read about 30 % faster). What a quiet cycle
spends now: `parse_inventory` 26 %, the commit's preparation and re-read 20 %, `plan_pushes`
18 %, `plan` 15 %, the first read 8 %.

Fifth round (2026-11-30, the session after; py-spy --gil of the first, the orders and the quiet
`run` cycle at 100,000 SKUs, and of the orders cycle at 10,000). The cycle after a first push
read all 400,000 settled quantities again (0.5 s), because the push had written more items than
are read again one by one; a first cycle spent 0.7 s in `dataclasses.asdict` copying the
100,000 Stock baselines of its pending commit before encoding them. Now a recorded push and a
forgotten quantity go into the kept answer as written (`Ledger._pushes_known`), and
`Changes.to_json` hands the fields to `json` as they are. Left: a quiet cycle at 100,000 SKUs
is `parse_inventory` 22 %, the commit's preparation 20 % (`_cycle_writes` 15 %), `plan` 17 %,
`plan_pushes` 17 %, the first read 10 %: passes over every row at about 1-4 us a row, bound by
memory access more than by any one call. With 500 lines, Amazon's 500 PATCHes take about 1 s
by py-spy's count (but see the sixth round) and Yahoo!'s `orderInfo` calls 0.2-0.3 s. A first
cycle spends most in encoding and decoding marketplace bodies (JSON and Yahoo!'s XML) and
Shopify's SKU look-ups, each a few microseconds per item over 400,000.

Sixth round (2026-11-30, the next session). Measured again, per call: against a minimal
loopback server, one httpx PATCH costs about 0.7-0.8 ms of CPU on this machine (httpcore
alone 0.3-0.4 ms, the standard library's http.client 0.15-0.2 ms); 500 Amazon PATCHes from the
bot's own adapter against the Amazon stand-in, outside a cycle, 0.4-0.6 s. Inside the orders
cycle at 10,000 SKUs the Amazon push thread used 0.49-0.59 s of thread CPU and Yahoo!'s fetch
(129 `orderInfo` calls, each signed and parsed from XML) 0.27 s: together most of what the
orders add to a quiet cycle. About a third of httpx's work per call is building the URL from
the base and the path, and carrying each answer through its cookie jar, which no public option
turns off. The earlier "2 ms a call" was py-spy's share of samples, inflated by the stand-ins
sharing the two cores. The staff-edit window of a first cycle at 100,000 SKUs was the re-read
of the whole SKU and Stock columns (0.6 s, nearly all of it the stand-in serving 200,000
cells), because a first cycle writes Shown and Status to every row; a commit that writes no
Stock now checks the header row and the table's bottom first and its rows in its own answer
(`Writes.checked_first`): 13 ms.

Seventh round (2026-11-30, the session after; each marketplace's push timed alone by thread
CPU against the stand-ins, and the ledger's push bookkeeping outside a cycle). At 100,000 SKUs
a first push cost Rakuten, Yahoo! and Amazon 1.0-1.3 s of CPU each and Shopify 5.6 s (its
1,000 variant look-up pages: their JSON, httpx, one variant object per item); the state file's
bookkeeping of the four pushes about 4 s: every item was inserted as unknown before its push
and overwritten with the outcome after it, one statement per item, in the sheet's row order
(up to 1.7 times slower out of key order). Now an item never pushed gets no entry before its
push (it is unknown already), and items go to SQLite as JSON texts of 10,000 (`json_each`) in
key order: 1.2-1.6 s. Shopify read its clock once per item (100,000 calls, each walking the
stack under this benchmark's virtual clock); now once per push and per look-up page. A first
cycle at 100,000 SKUs as a `sync`, back to back on the same machine: 17.6-17.9 s against
19.1-21.2 s before. What is left of it is spread over the marketplaces' bodies and answers
(Shopify's look-ups the largest part), the sheet's read and commit, and the per-row passes.

Eighth round (2026-11-30 evening, the session after). No new cut: this round measures what no
code change in the bot can go under, and prints it as "CPU floor" beside each cycle: importing
the bot (for a `sync`) plus the cycle's marketplace calls times one small httpx call's CPU
against the stand-in process (`CALL_COST`, 0.86-0.88 ms this day). py-spy of the `run` cycles
at 100,000 SKUs found no single large step left in a quiet cycle (parsing 19 %, `plan` 16 %,
`plan_pushes` 15 %, the commit 10 %, the read 9 %, the settled baseline 6 %); thread CPU of a
first Shopify push alone, 3.5 ms per call (about 70 items each: their JSON both ways, httpx,
a variant object per item). With the floor printed, a `sync` at 10,000 SKUs (import 1.1 s
this day) and a first cycle at 100,000 as a `sync` (2.6 s) are over their targets before the
bot does any work of its own.

Ninth round (2026-11-30 late evening). Two corrections to the measuring, no cut in the bot:
- The import figure had included compiling: this machine sets PYTHONDONTWRITEBYTECODE, so no
  child kept its bytecode and every one compiled each module changed since the caches were
  last written (0.95 s to import the bot from its caches, 1.10 s the evening before). The
  benchmark now compiles the bot first (`compileall`), as `pip install` does on a VM.
- A second floor, measured: the launcher times each thread's CPU inside httpx's and requests'
  `send` (the cycle's real calls with their real bodies, the Sheets API's too). A first cycle
  at 100,000 SKUs spends 3.4-3.6 s there, so its 2 s target is out of reach with these
  libraries, `run` or `sync`; a `run` cycle with 500 lines spends 0.74-0.80 s there at both
  sizes, over the 0.7 s target at 10,000 SKUs (500 of its calls are Amazon PATCHes, one per
  SKU, chosen over a feed because a feed takes minutes to land).
Tried and dropped: `plan_pushes` as one pass that works out the plain rows' quantities and then
compares them per channel (a set difference of dict views, then a tight loop): 0.43-0.60 s
against 0.43 s for the loop it would replace, at 100,000 rows. Per-row Python work is near its
floor in every pass; what is left at 100,000 SKUs is the number of passes over every row,
which only a cycle that carries unchanged rows over from the last one would cut.

Tenth round (2026-12-01, the second session that day; each step of a `sync` timed by the main
thread's CPU, the whole process by os.wait4, the code before and after run alternately on the
same machine, its bytecode compiled). Fixed costs of every `sync`, whatever the sheet's size:
opening the app took 0.13 s, of which cryptography's RSA self-check of the service-account key
40 ms (now skipped: `bot.sheet.client.service_account_credentials`) and a second CA bundle for
Shopify's transport 25 ms (now the shared context); Python's teardown at exit 75-100 ms, most
of it walking what the imports made (now set aside with `gc.freeze` in `bot.cli.main`: 10-20
ms). A first push: Shopify's JSONL parsed one `json.loads` per chunk of lines, Rakuten's and
Shopify's per-item records plain slotted dataclasses (a frozen one costs 3 times as much to
make), Yahoo!'s `stock_code` one regex. Before -> after, `sync` CPU: 10,000 SKUs first cycle
1.29-1.33 -> 1.07-1.14 s, 500 lines 1.43-1.47 -> 1.30-1.37 s, quiet 0.83-0.87 -> 0.69-0.70 s;
100,000 SKUs first cycle 7.75-8.47 -> 6.55-7.11 s, 500 lines 2.84-3.06 -> 2.73-2.83 s, quiet
2.06-2.28 -> 2.02-2.07 s; peak RSS of the 100,000 first cycle 285-289 -> 278-288 MB.
Tried and dropped: Amazon's feed messages sharing one patch per quantity (0.25 s less CPU in
the first push at 100,000 SKUs) made that peak 300-310 MB in half the runs, 278 in the others
(bisected over the commits; the feed's own data is a few MB, so most likely it moved when the
collector ran during the pushes); a young or full collection when the pushes end did not take
that back. The settled quantities read as one `json_group_object` per channel (0.33 -> 0.23 s
at 100,000 SKUs, in a test database) lose the shared item strings, and sharing them again
costs the gain; grouped by item over the four channels, 0.31 s. `google_auth_oauthlib`, which
gspread imports for an interactive sign-in the bot never uses, is 70 ms of the import; only
replacing that module in `sys.modules` would skip it, which is not worth the surprise.

Eleventh round (2026-12-01, the third session that day; the first cycle at 100,000 SKUs, the
code before and after run alternately, CPU from os.wait4). The four push threads: 3.63 ->
2.70 s (median of four): Amazon's feed text written message by message with each quantity's
patch encoded once per feed (0.59 -> 0.15 s), Yahoo!'s setStock success told by the answer's
root element (0.57 -> 0.45 s), answers untied from httpx's answer-stream reference cycle so
that they and their request bodies go at once (the cheaper feed had made the peak depend on
when the collector ran: 286-311 MB; untied, 273-277 MB). The main thread: `StockUpdate` not
frozen (0.17 s at 400,000), the first cycle's prune without its listing, per-item work skipped
in the report and the push bookkeeping, orjson for the bookkeeping's JSON texts and Rakuten's
and Shopify's bodies. `sync`, first cycle: 7.73 and 8.05 s -> 5.72 and 6.08 s, peak RSS
275-276 -> 285-286 MB. Tried and dropped: orjson for the commit body (0.29 -> 0.03 s) raised
that peak to 307-313 MB in every run (bisected to it alone, four alternating runs; the body by
itself is freed as fast either way in a small test, so the cause was not found).

Twelfth round (2026-12-01, the fourth session that day; no cut in the bot). A faster machine:
one small httpx call 0.26 ms of CPU (0.84-1.08 ms on 2026-11-30's), the bot imported in 0.29 s.
The same code as the eleventh round measured, as `sync`: 10,000 SKUs 0.69 s first cycle, 0.76 s
with 500 lines; 100,000 SKUs 3.95 s and 1.69 s; `run` cycles 0.26 / 0.41 / quiet 0.09 s and
3.50 / 1.36 / 0.94 s; peaks 93, 86, 290, 178 MB. py-spy (--gil, 250 Hz) of the 100,000-SKU
first cycle: the four push threads 39 % (Shopify 17 %: its matching of the export's variants
to the SKUs 7 %; Yahoo! 12 %; Rakuten 6 %; Amazon 3 %), the commit 18 % (encoding its body 4 %,
sending it 5 %), preparing it 10 %, the report and `plan_pushes` 4 % each, importing 8 %: no
step large enough to bring 3.95 s to 2 s. Of the 10,000-SKU `sync` with 500 lines, the import
and the HTTP libraries' own work are 0.48 s of the 0.76 (Amazon's 500 PATCHes alone 35 % of the
samples). Calling httpx's transport directly instead of `Client.request` saved about 15 % of a
PATCH's CPU in a loop against a minimal server; not done: it would bypass the client's
timeouts, auth and redirect handling the adapters rely on. The benchmark now also compiles the
installed libraries (pip does so as it installs, unless PYTHONDONTWRITEBYTECODE is set then, as
on this machine).

Figures moved here from the README (its Measured section now shows the latest run only).
Shopify's bulk look-up (2026-12-01, first session that day, back to back on the same machine):
a first cycle's SKU look-ups became one bulk export (1 start, 2 status reads, 1 download)
instead of 1,000 searches at 100,000 SKUs (100 at 10,000): Shopify calls 1,401 -> 405 (141 ->
45), its rate-limit pauses 4,063 s -> 33 s (397 s -> 1 s), `sync` CPU 7.88 -> 7.44 s (1.41 ->
1.23 s), of it in the HTTP libraries 1.51 -> 0.64 s, wall time without pauses 49.8 -> 24.9 s,
peak RSS 272 -> 286 MB; a first version kept the export's lines as parsed JSON and peaked at
419 MB. The sessions of 2026-11-30, with the import at 0.67-1.08 s: 2.7-3.5 s and 96-97 MB
(10,000 SKUs, first cycle), 2.6-3.1 s and 84-85 MB (500 lines), 17.4-23.5 s and 272-290 MB
(100,000, first cycle), 4.5-7.8 s and 182-202 MB (500 lines); before issue 8's first session,
on such a machine: 4.6 s and 106 MB, 3.8 s and 90 MB, 32.6 s and 482 MB, 15.1 s and 274 MB, a
staff-edit window of 1.3-4.9 s at 100,000 SKUs. With 10 % of the rows set products (`--sets
10`) the cycles cost the same plus the sets' own pushes (650 SKUs per marketplace instead of
500).
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bot.channels.amazon import FEED_MAX_MESSAGES, FEED_THRESHOLD, PATCH_RATE  # noqa: E402

MARKETS = ("rakuten", "yahoo", "amazon", "shopify")
BATCH = {"rakuten": 400, "yahoo": 1000, "shopify": 250}
# Published stock-setting rates, calls per second, for the naive one-call-per-SKU baseline:
# Rakuten bulk-upsert 1/s, Yahoo setStock 1/s, Amazon patchListingsItem 5/s, Shopify a
# mutation costs 10 points of 100 restored per second (MARKETPLACES.md, the stand-ins' notes).
NAIVE_RATE = {"rakuten": 1.0, "yahoo": 1.0, "amazon": PATCH_RATE, "shopify": 10.0}
SHEETS_WRITES_PER_MINUTE = 60  # Google's quota per service account
# Issue 8's CPU targets per cycle (bot process, first cycle included), by sheet size.
TARGET_CPU = {10_000: 0.7, 100_000: 2.0}

# The CPU one marketplace call costs the bot's HTTP client at least: httpx POSTs a small JSON
# body to the stand-in process and reads a short answer (a 404 from a route nobody serves),
# the least per call of three rounds of 300 after a warm-up. A real call adds its body's
# encoding, its answer's decoding and the adapter's own work, so this is a lower bound.
CALL_COST = r"""
import resource, sys
import httpx
def _cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
body = {"sku": "SKU-000001", "quantity": 5, "note": "x" * 150}
with httpx.Client() as client:
    for _ in range(50):
        client.post(sys.argv[1], json=body)
    best = float("inf")
    for _ in range(3):
        start = _cpu()
        for _ in range(300):
            client.post(sys.argv[1], json=body).read()
        best = min(best, (_cpu() - start) / 300)
print(best)
"""

# Run first in every child: at exit, its peak resident set (VmHWM) goes to $BENCH_HWM_FILE.
PEAK = r"""
import atexit, os
def _peak():
    with open("/proc/self/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    if os.environ.get("BENCH_HWM_FILE"):
        with open(os.environ["BENCH_HWM_FILE"], "w") as out:
            out.write(str(kb))
    else:
        print(kb)
atexit.register(_peak)
"""
RUN_BOT = r"""
import runpy, sys
sys.argv = ["bot", *sys.argv[1:]]
runpy.run_module("bot", run_name="__main__", alter_sys=True)
"""

# Run inside the bot's process before `bot` is imported: sleep advances a virtual clock instead
# of waiting. Each marketplace (found from the calling module) has its own clock, since each
# runs in its own thread, so one marketplace's pauses do not shorten another's. At exit the
# pauses are written, per marketplace, to $BENCH_SLEEP_FILE.
LAUNCHER = r"""
import atexit, json, os, runpy, sys, threading, time
_real_monotonic = time.monotonic
_lock = threading.Lock()
_offset = {}
_slept = {}
_calls = {}
def _who():
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith("bot.channels."):
            part = name.split(".")[2].split("_")[0]
            if part in ("rakuten", "yahoo", "amazon", "shopify"):
                return part
        elif name.startswith("bot.sheet"):
            return "sheets"
        frame = frame.f_back
    return "other"
def _monotonic():
    return _real_monotonic() + _offset.get(_who(), 0.0)
def _sleep(seconds):
    who = _who()
    with _lock:
        _offset[who] = _offset.get(who, 0.0) + max(seconds, 0.0)
        _slept[who] = _slept.get(who, 0.0) + max(seconds, 0.0)
        _calls[who] = _calls.get(who, 0) + 1
# The CPU the HTTP libraries spend inside their send (httpx for the marketplaces, requests
# under gspread for the Sheets API): each thread's own CPU from the call until the answer is
# read, bodies and headers included. Not the bot's work: a floor no change in the bot goes under.
import httpx, requests
_transport = {"cpu": 0.0}
def _timed_send(owner):
    real = owner.send
    def send(*args, **kwargs):
        started = time.thread_time()
        try:
            return real(*args, **kwargs)
        finally:
            spent = time.thread_time() - started
            with _lock:
                _transport["cpu"] += spent
    owner.send = send
_timed_send(httpx.Client)
_timed_send(requests.Session)
def _save():
    with open(os.environ["BENCH_SLEEP_FILE"], "w") as f:
        json.dump({"slept": _slept, "sleeps": _calls, "transport": _transport["cpu"]}, f)
atexit.register(_save)
if os.environ.get("BENCH_PROFILE"):
    import cProfile, pstats
    _profile = cProfile.Profile()
    _thread_profiles = []
    def _profile_thread(frame, event, arg):
        sys.setprofile(None)
        _thread_profiles.append(cProfile.Profile())
        _thread_profiles[-1].enable()
    def _dump():
        _profile.disable()
        stats = pstats.Stats(_profile)
        for profile in _thread_profiles:
            profile.create_stats()
            stats.add(profile)
        stats.dump_stats(os.environ["BENCH_PROFILE"])
    atexit.register(_dump)
    threading.setprofile(_profile_thread)
    _profile.enable()
time.monotonic = _monotonic
time.sleep = _sleep
if os.environ.get("BENCH_TRACE"):
    # When each step around the commit began and ended (perf_counter: the same clock as the
    # stand-in's arrival times on Linux), for the staff-edit window's breakdown.
    import gspread.http_client, bot.sheet.client, bot.sync
    _marks = []
    def _traced(owner, name, label):
        real = getattr(owner, name)
        def traced(*args, **kwargs):
            started = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                _marks.append((label, started, time.perf_counter()))
        setattr(owner, name, traced)
    _traced(gspread.http_client.HTTPClient, "request", "http")
    _traced(bot.sheet.client.SheetClient, "read", "read")
    _traced(bot.sheet.client.SheetClient, "read_cells", "read")
    _traced(bot.sheet.client.SheetClient, "send_update", "write")
    _traced(bot.sync, "reread", "reread")
    def _save_marks():
        with open(os.environ["BENCH_TRACE"], "w") as f:
            json.dump(_marks, f)
    atexit.register(_save_marks)
"""

# The `run` child, after PEAK and LAUNCHER: opens the app once as `stockbot run` does
# (bot/cli.py `cmd_run`), answers one JSON line, then runs a cycle for each line "cycle" on its
# standard input and answers a JSON line for each: the CPU of the whole process during the
# cycle (getrusage deltas: user + sys, every thread), wall time, VmRSS and VmHWM after it,
# whether the report was ok, the cycle's summary and its rate-limit pauses per marketplace.
# Between cycles the launcher's virtual clocks move on by the interval, as `run` waits it (its
# rate limiters and caches see the time pass). When its standard input closes, it releases the
# sheet, closes the app and answers the process's CPU so far. Its standard output carries only
# these answers (the bot's prints go to standard error).
RUN_LOOP = r"""
import json, logging, resource, sys, time
def _cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
def _memory():
    with open("/proc/self/status") as status:
        kb = {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in status)
              if k in ("VmRSS", "VmHWM")}
    return {"rss": kb["VmRSS"] / 1024, "hwm": kb["VmHWM"] / 1024}
_answers = sys.stdout
sys.stdout = sys.stderr
def _answer(**fields):
    _answers.write(json.dumps(fields) + "\n")
    _answers.flush()
from bot.cli import _open, _setup_logging, _watched, summarize
from bot.config import load_settings
from bot.health import Watch
import gc
gc.freeze()  # as bot.cli.main does in a process of its own
_setup_logging(False)
_settings = load_settings()
_watch = Watch(_settings)
_app = _open(_settings, _watch)
_answer(cpu=_cpu(), **_memory())
_cycles = 0
try:
    while sys.stdin.readline().strip() == "cycle":
        if _cycles and "_offset" in globals():
            with _lock:
                for _who_ in ("rakuten", "yahoo", "amazon", "shopify", "sheets", "other"):
                    _offset[_who_] = _offset.get(_who_, 0.0) + _settings.interval_seconds
        _cycles += 1
        _before = dict(globals().get("_slept", {}))
        _transport0 = globals().get("_transport", {}).get("cpu")
        _cpu0, _wall0 = _cpu(), time.perf_counter()
        try:
            # In a function, as `cmd_run`'s job: the report (every row, every push) is freed
            # when the cycle ends, not kept through the next one.
            def _one():
                report = _watched(_watch, _app.cycle.run, _app)
                return report.ok, summarize(report)
            _ok, _summary = _one()
            logging.getLogger("stockbot").info(
                "cycle done: %s", _summary.replace("\n", "; "))
        except Exception as exc:
            logging.getLogger("stockbot").exception("cycle failed")
            _ok, _summary = False, f"{type(exc).__name__}: {exc}"
        _cpu1, _wall1 = _cpu(), time.perf_counter()
        _slept_now = globals().get("_slept", {})
        _transport1 = globals().get("_transport", {}).get("cpu")
        _answer(cpu=_cpu1 - _cpu0, wall=_wall1 - _wall0, ok=_ok, summary=_summary,
                transport=None if _transport0 is None else _transport1 - _transport0,
                slept={k: v - _before.get(k, 0.0) for k, v in _slept_now.items()}, **_memory())
    _app.cycle.release()
finally:
    _app.close()
_answer(cpu=_cpu())
"""


@dataclass
class Run:
    """One `stockbot sync` child process, as measured."""

    label: str
    status: int
    cpu: float  # user + sys seconds
    rss_mb: float  # peak resident set
    wall: float
    stdout: str
    stderr: str
    slept: dict[str, float] = field(default_factory=dict)
    transport: float | None = None  # CPU inside httpx's and requests' send (LAUNCHER)
    stats: dict[str, Any] = field(default_factory=dict)
    pushed: dict[str, int] = field(default_factory=dict)
    marks: list[tuple[str, float, float]] = field(default_factory=list)  # step, start, end


class Server:
    """The stand-in server process."""

    def __init__(
        self,
        skus: int,
        folder: Path,
        enforce: bool,
        channels: str = ",".join(MARKETS),
        sets: int = 0,
    ) -> None:
        args = [sys.executable, "-m", "tests.benchmarks.standin_server", "--skus", str(skus)]
        args += ["--channels", channels, "--sets", str(sets)]
        args += ["--dir", str(folder)] + (["--enforce-rates"] if enforce else [])
        self.proc = subprocess.Popen(
            args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.env: dict[str, str] = {}
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line == "READY":
                break
            key, _, value = line.partition("=")
            self.env[key] = value
        else:
            raise RuntimeError("the stand-in server stopped before it was ready")
        self.url = self.env["STOCKBOT_SHEETS_API_URL"]
        self.http = httpx.Client(timeout=600)

    def control(self, method: str, url: str, body: Any = None) -> Any:
        """Call a control route; its JSON answer."""
        answer = self.http.request(method, url, json=body)
        answer.raise_for_status()
        return answer.json()

    def bench(self, method: str, route: str, body: Any = None) -> Any:
        """Call one of the server script's /_control/bench routes."""
        return self.control(method, f"{self.url}/_control/bench/{route}", body)

    def order(self, market: str, item: str, quantity: int) -> str:
        """A shopper buys on a marketplace (through its own control route)."""
        url = self.env[f"BENCH_{market.upper()}_URL"] + "/_control/orders"
        spec = {"lines": [{"item": item, "quantity": quantity}], "force": True}
        return str(self.control("POST", url, spec)["order_id"])

    def stop(self) -> None:
        """Stop the server (closing its stdin is enough; terminate if it lingers)."""
        self.http.close()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait()


def bot_env(
    server: Server, state: Path, folder: Path, label: str, profile: Path | None
) -> dict[str, str]:
    """A bot child's environment: the stand-ins' settings, the state file, the launcher's files.

    The launcher writes its pauses to folder/slept.json and its peak to folder/peak.kb.
    """
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STOCKBOT_", "BENCH_"))}
    env = {k: v for k, v in server.env.items() if k.startswith("STOCKBOT_")}
    for name in ("slept.json", "peak.kb"):
        (folder / name).unlink(missing_ok=True)
    env = {
        **clean,
        **env,
        "STOCKBOT_STATE_PATH": str(state),
        "BENCH_SLEEP_FILE": str(folder / "slept.json"),
        "BENCH_HWM_FILE": str(folder / "peak.kb"),
        "PYTHONPATH": str(ROOT),
        **(
            {"BENCH_PROFILE": str(profile.with_name(f"{profile.name}.{label}.prof"))}
            if profile
            else {}
        ),
    }
    return env


def pushed_counts(summary: str) -> dict[str, int]:
    """Items pushed per marketplace, from the "pushed: " line of a cycle's summary."""
    pushed: dict[str, int] = {}
    for line in summary.splitlines():
        if line.startswith("pushed: ") and line != "pushed: nothing":
            for part in line[len("pushed: ") :].split(", "):
                name, _, count = part.rpartition(" ")
                pushed[name] = int(count)
    return pushed


def run_bot(
    server: Server, state: Path, folder: Path, label: str, real_sleep: bool, profile: Path | None
) -> Run:
    """`stockbot sync` as a child process; its own CPU, peak RSS and wall time."""
    env = bot_env(server, state, folder, label, profile)
    sleep_file, peak_file = folder / "slept.json", folder / "peak.kb"
    trace_file = folder / "trace.json"
    trace_file.unlink(missing_ok=True)
    env["BENCH_TRACE"] = str(trace_file)
    args = ["-c", PEAK + ("" if real_sleep else LAUNCHER) + RUN_BOT, "sync"]
    out, err = folder / "bot.out", folder / "bot.err"
    server.bench("POST", "mark")
    with open(out, "w") as stdout, open(err, "w") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, *args], env=env, cwd=folder, stdout=stdout, stderr=stderr
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    run = Run(
        label,
        proc.returncode,
        usage.ru_utime + usage.ru_stime,
        int(peak_file.read_text()) / 1024 if peak_file.exists() else usage.ru_maxrss / 1024,
        wall,
        out.read_text(),
        err.read_text(),
    )
    if sleep_file.exists():
        launched = json.loads(sleep_file.read_text())
        run.slept, run.transport = launched["slept"], launched.get("transport")
    if trace_file.exists():
        run.marks = [tuple(m) for m in json.loads(trace_file.read_text())]
    run.stats = server.bench("GET", "stats")
    run.pushed = pushed_counts(run.stdout)
    return run


def place_orders(server: Server, skus: int, lines: int) -> None:
    """`lines` order lines over the four marketplaces, then Amazon's clock 3 minutes on."""
    for n in range(lines):
        market = MARKETS[n % len(MARKETS)]
        server.order(market, f"SKU-{(n * 7919) % skus:06d}", 1 + n % 2)
    # Amazon lists only changes at least two minutes old: its clock moves on 3 minutes.
    server.bench("POST", "clock", {"offset": 180})


@dataclass
class RunProcess:
    """One `run`-like child process, as measured: its opening, its cycles, its whole life."""

    opened: dict[str, Any]  # CPU (getrusage) and memory once the app is open, wall from start
    cycles: list[dict[str, Any]] = field(default_factory=list)  # the child's answers, + stats
    closed: dict[str, Any] = field(default_factory=dict)  # CPU after releasing and closing
    status: int = 0
    cpu: float = 0.0  # the whole process, user + sys (os.wait4)
    peak_mb: float = 0.0  # VmHWM at exit
    stderr: str = ""


def run_cycles(
    server: Server,
    state: Path,
    folder: Path,
    skus: int,
    lines: int,
    real_sleep: bool,
    profile: Path | None,
) -> RunProcess:
    """One child that opens the app as `stockbot run` does, then three cycles on command.

    The first cycle, a cycle after `lines` order lines (placed as for (b)), a quiet cycle.
    Before each cycle the stand-ins' counters are marked; after it their stats are kept.
    """
    env = bot_env(server, state, folder, "run", profile)
    code = PEAK + ("" if real_sleep else LAUNCHER) + RUN_LOOP
    err = folder / "run.err"
    with open(err, "w") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            cwd=folder,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None

        def answer() -> dict[str, Any]:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line:
                raise RuntimeError(f"the run child stopped:\n{err.read_text()[-3000:]}")
            return dict(json.loads(line))

        try:
            run = RunProcess(answer())
            run.opened["wall"] = time.perf_counter() - started
            for name in ("first", "orders", "quiet"):
                if name == "orders":
                    place_orders(server, skus, lines)
                server.bench("POST", "mark")
                print(f"[{skus:,} SKUs] run: {name} cycle ...", flush=True)
                proc.stdin.write("cycle\n")
                proc.stdin.flush()
                cycle = answer()
                cycle["stats"] = server.bench("GET", "stats")
                run.cycles.append(cycle)
            proc.stdin.close()  # the child releases the sheet, closes the app, answers its CPU
            run.closed = answer()
        finally:
            if not proc.stdin.closed:
                proc.stdin.close()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            proc.stdout.close()
    run.status = proc.returncode
    run.cpu = usage.ru_utime + usage.ru_stime
    peak_file = folder / "peak.kb"
    run.peak_mb = int(peak_file.read_text()) / 1024 if peak_file.exists() else math.nan
    run.stderr = err.read_text()
    return run


def describe_run(run: RunProcess, lines: int) -> dict[str, str]:
    """The printed figures of the `run` child: one row per measure, cycles in one cell."""
    first, orders, quiet = run.cycles

    def cycle_cell(cycle: dict[str, Any]) -> str:
        text = f"{cycle['cpu']:.2f} s ({cycle['wall']:.2f} s wall, {cycle['rss']:.0f} MB after)"
        return text if cycle["ok"] else text + ", report NOT ok"

    def each(figure: Any) -> str:
        return ", ".join(str(figure(c)) for c in run.cycles)

    def sheets(cycle: dict[str, Any]) -> str:
        reads, writes = cycle["stats"]["sheets"]["reads"], cycle["stats"]["sheets"]["writes"]
        return f"{reads + writes} ({reads} R, {writes} W)"

    def pushes(cycle: dict[str, Any]) -> str:
        pushed = pushed_counts(cycle["summary"])
        calls = sum(m["push_calls"] for m in cycle["stats"]["markets"].values())
        least = sum(minimum_pushes(m, pushed.get(m, 0)) for m in cycle["stats"]["markets"])
        return f"{calls}/{least}"

    def longest_pause(cycle: dict[str, Any]) -> str:
        slept = {m: cycle["slept"].get(m, 0.0) for m in MARKETS}
        market = max(slept, key=lambda m: slept[m])
        return f"{slept[market]:.0f} s {market}" if slept[market] else "0 s"

    opened = run.opened
    after = run.cpu - run.closed["cpu"]
    spent = opened["cpu"] + sum(c["cpu"] for c in run.cycles)
    spent_close = run.closed["cpu"] - spent
    return {
        "exit status": str(run.status),
        "run: open (import + app)": (
            f"{opened['cpu']:.2f} s ({opened['wall']:.2f} s wall, {opened['rss']:.0f} MB)"
        ),
        "run: first cycle CPU": cycle_cell(first),
        f"run: cycle with {lines} lines CPU": cycle_cell(orders),
        "run: quiet cycle CPU": cycle_cell(quiet),
        "run: peak RSS": (
            f"{run.peak_mb:.0f} MB (VmHWM after each cycle: {each(lambda c: round(c['hwm']))})"
        ),
        "run: whole process CPU (os.wait4)": (
            f"{run.cpu:.2f} s (open + cycles {spent:.2f} s, release + close "
            f"{spent_close:.2f} s, exit {after:.2f} s)"
        ),
        "run: rate-limit pauses, each cycle": each(longest_pause),
        "run: Sheets requests, each cycle": each(sheets),
        "run: SKUs pushed (all markets), each": each(
            lambda c: sum(pushed_counts(c["summary"]).values())
        ),
        "run: push calls / minimum, each": each(pushes),
        "run: marketplace calls, each cycle": each(
            lambda c: sum(m["calls"] for m in c["stats"]["markets"].values())
        ),
    }


def sized(profile: Path | None, skus: int) -> Path | None:
    """The profile path for one size, if profiling."""
    return None if profile is None else profile.with_name(f"{profile.name}.{skus}")


def minimum_pushes(market: str, changed: int) -> int:
    """The fewest stock-setting calls the batch limits allow for `changed` items."""
    if market == "amazon":  # a PATCH per SKU below the feed threshold, else 25,000 per feed
        return changed if changed < FEED_THRESHOLD else math.ceil(changed / FEED_MAX_MESSAGES)
    return math.ceil(changed / BATCH[market])


def window_ends(requests: list[dict[str, Any]]) -> tuple[float, float] | None:
    """When the re-read before the commit and the commit arrived at the Sheets stand-in.

    The re-read is the last read before the commit that takes the header row: the narrow
    `values:batchGetByDataFilter` POST, or the full `values:batchGet` of the SKU and Stock
    columns (the first when the commit writes too many rows; after the narrow one when that
    found a change, and then the window starts at the full read).
    """
    reads = [
        r
        for r in requests
        if r["path"].endswith(("values:batchGet", "values:batchGetByDataFilter"))
    ]
    if not reads:
        return None
    first = reads[0]["t"]
    commit = next(
        (r for r in requests if r["commit"] and r["method"] != "GET" and r["t"] > first), None
    )
    if commit is None:
        return None
    rereads = [
        r for r in reads if first < r["t"] < commit["t"] and any("!1:1" in x for x in r["ranges"])
    ]
    if not rereads:
        return None
    return rereads[-1]["t"], commit["t"]


def staff_edit_window(requests: list[dict[str, Any]]) -> float | None:
    """Milliseconds from the re-read before the commit arriving to the commit arriving."""
    ends = window_ends(requests)
    return None if ends is None else (ends[1] - ends[0]) * 1000


def window_parts(run: Run) -> dict[str, str]:
    """The staff-edit window cut at the bot's own steps (needs the launcher's trace)."""
    ends = window_ends(run.stats["sheets"]["requests"])
    if ends is None or not run.marks:
        return {}
    read_at, commit_at = ends

    def first(label: str, after: float) -> tuple[float, float] | None:
        found = [(s, e) for name, s, e in run.marks if name == label and e > after]
        return min(found) if found else None

    http = first("http", read_at)  # the re-read's HTTP call: its answer fully received
    read = first("read", read_at)  # ... and decoded from JSON into lists
    write = first("write", read_at)  # the commit handed to the Sheets client
    if http is None or read is None or write is None:
        return {}
    reread = first("reread", read[1] - 1e-3)
    checked = reread[1] if reread is not None and reread[1] <= write[0] else read[1]
    ms = lambda a, b: f"{(b - a) * 1000:.0f} ms"  # noqa: E731
    return {
        "  stand-in serves the re-read": ms(read_at, http[1]),
        "  bot: JSON decode": ms(http[1], read[1]),
        "  bot: compare (positions, Stock)": ms(read[1], checked),
        "  bot: re-plan, commit body": ms(checked, write[0]),
        "  bot: send the commit": ms(write[0], commit_at),
    }


def naive_sheets(server: Server, folder: Path, sample: int) -> float:
    """Seconds per single-cell Sheets write, measured on `sample` writes with gspread."""
    import gspread

    from bot.sheet.client import http_client_for

    gc = gspread.service_account(
        filename=server.env["STOCKBOT_GOOGLE_CREDENTIALS"],
        http_client=http_client_for(server.url),
    )
    sheet = gc.open_by_key(server.env["STOCKBOT_SHEET_ID"]).worksheet("Inventory")
    sid = server.env["STOCKBOT_SHEET_ID"]
    grid = server.control("GET", f"{server.url}/_control/spreadsheets/{sid}/values/Inventory")
    stock = [row[2] for row in grid["values"][1 : sample + 1]]
    started = time.perf_counter()
    for i, value in enumerate(stock):  # each Stock cell written back unchanged, one request each
        sheet.update([[value]], f"C{i + 2}", raw=True)
    return (time.perf_counter() - started) / max(1, len(stock))


def describe(run: Run) -> dict[str, str]:
    """The printed figures of one run."""
    stats = run.stats
    sheet = stats["sheets"]
    rows: dict[str, str] = {
        "exit status": str(run.status),
        "bot CPU (user+sys)": f"{run.cpu:.2f} s",
        "bot peak RSS": f"{run.rss_mb:.0f} MB",
        "wall time": f"{run.wall:.2f} s",
    }
    if run.slept:
        by_market = {m: run.slept.get(m, 0.0) for m in MARKETS}
        longest = max(by_market.values())
        rows["rate-limit pauses (not in wall)"] = f"{longest:.0f} s (longest marketplace)"
        for m in MARKETS:
            rows[f"  {m} pauses"] = f"{by_market[m]:.1f} s"
        if run.slept.get("sheets"):
            rows["  sheets back-off"] = f"{run.slept['sheets']:.1f} s"
    rows["Sheets requests"] = (
        f"{sheet['reads'] + sheet['writes']} ({sheet['reads']} R, {sheet['writes']} W)"
    )
    window = staff_edit_window(sheet["requests"])
    rows["staff-edit window"] = "n/a" if window is None else f"{window:.0f} ms"
    rows.update(window_parts(run))
    biggest = max((r["bytes"] for r in sheet["requests"]), default=0)
    rows["largest Sheets request body"] = f"{biggest / 1e6:.1f} MB"
    rows["cells the bot wrote"] = str(sum(r["cells"] for r in sheet["requests"]))
    longest = max((r["longest"] for r in sheet["requests"]), default=0)
    rows["longest text written (limit 50,000)"] = f"{longest:,} chars"
    for m in MARKETS:
        calls = stats["markets"].get(m)
        if calls is None:
            continue
        changed = run.pushed.get(m, 0)
        least = minimum_pushes(m, changed)
        rows[f"{m}: SKUs pushed"] = str(changed)
        rows[f"{m}: push calls / minimum"] = f"{calls['push_calls']} / {least}"
        rows[f"{m}: all calls"] = str(calls["calls"])
    return rows


def print_table(columns: list[tuple[str, dict[str, str]]]) -> None:
    """Figures side by side, one column per run."""
    keys: list[str] = []
    for _, rows in columns:
        keys += [k for k in rows if k not in keys]
    width = max(len(k) for k in keys)
    widths = [max(len(title), *(len(v) for v in rows.values())) for title, rows in columns]
    print(
        "| "
        + " " * width
        + " | "
        + " | ".join(t.ljust(w) for (t, _), w in zip(columns, widths, strict=True))
        + " |"
    )
    print("|" + "-" * (width + 2) + "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for key in keys:
        cells = [rows.get(key, "").ljust(w) for (_, rows), w in zip(columns, widths, strict=True)]
        print("| " + key.ljust(width) + " | " + " | ".join(cells) + " |")


def bench(
    skus: int,
    lines: int,
    real_sleep: bool,
    sample: int,
    profile: Path | None,
    sets: int = 0,
    bot_import: float = 0.0,
) -> list[tuple[str, dict[str, str]]]:
    """Both scenarios at one size; the table columns.

    `bot_import` is the CPU of starting Python and importing the bot (`import_cost`), part of
    every `sync`'s floor.
    """
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        print(f"\n[{skus:,} SKUs] starting the stand-ins and the sheet ...", flush=True)
        server = Server(skus, folder, enforce=real_sleep, sets=sets)
        try:
            print(
                f"[{skus:,} SKUs] stand-ins ready in {time.perf_counter() - started:.1f} s; "
                "(a) first cycle, every SKU pushed ...",
                flush=True,
            )
            state = folder / "state.sqlite3"
            first = run_bot(server, state, folder, "first", real_sleep, sized(profile, skus))
            print(
                f"[{skus:,} SKUs] (a) done: {first.cpu:.2f} s CPU, {first.wall:.1f} s wall; "
                f"placing {lines} order lines ...",
                flush=True,
            )
            if first.status != 0:
                print(first.stdout, first.stderr, sep="\n")
            place_orders(server, skus, lines)
            print(f"[{skus:,} SKUs] (b) cycle with {lines} order lines ...", flush=True)
            orders = run_bot(server, state, folder, "orders", real_sleep, sized(profile, skus))
            if orders.status != 0:
                print(orders.stdout, orders.stderr, sep="\n")
            print(
                f"[{skus:,} SKUs] (b) done: {orders.cpu:.2f} s CPU, {orders.wall:.1f} s "
                f"wall; naive baseline: {sample} single-cell Sheets writes ...",
                flush=True,
            )
            per_write = naive_sheets(server, folder, sample)
            per_call = call_cost(server)
        finally:
            server.stop()
    with tempfile.TemporaryDirectory(prefix="bench-scale-run-") as tmp:
        folder = Path(tmp)
        print(
            f"[{skus:,} SKUs] run: fresh stand-ins and sheet; one process opens the app "
            "and runs three cycles ...",
            flush=True,
        )
        server = Server(skus, folder, enforce=real_sleep, sets=sets)
        try:
            state = folder / "state.sqlite3"
            running = run_cycles(
                server, state, folder, skus, lines, real_sleep, sized(profile, skus)
            )
        finally:
            server.stop()
        if running.status != 0 or not all(c["ok"] for c in running.cycles):
            print(running.stderr[-3000:])
    columns = []
    target = f"{TARGET_CPU[skus]} s" if skus in TARGET_CPU else "none at this size"
    for run, title in ((first, f"{skus:,} (a) first"), (orders, f"{skus:,} (b) {lines} lines")):
        rows = describe(run)
        cells = int(rows["cells the bot wrote"])
        naive_rate = max((run.pushed.get(m, 0) / NAIVE_RATE[m] for m in MARKETS), default=0.0)
        rows["naive: Sheets writes (1 per cell)"] = f"{cells}"
        rows["naive: their local time (measured)"] = f"{cells * per_write:.1f} s"
        rows["naive: at 60 writes/min quota"] = f"{cells / SHEETS_WRITES_PER_MINUTE / 60:.1f} h"
        rows["naive: marketplace calls (1/SKU)"] = str(sum(run.pushed.values()))
        rows["naive: at published rates"] = f"{naive_rate / 60:.1f} min (longest marketplace)"
        calls = sum(m["calls"] for m in run.stats["markets"].values())
        rows["CPU floor: import + calls x one call"] = (
            f"{bot_import:.2f} + {calls} x {per_call * 1e3:.2f} ms = "
            f"{bot_import + calls * per_call:.2f} s"
        )
        if run.transport is not None:
            rows["CPU floor: import + HTTP libraries (measured)"] = (
                f"{bot_import:.2f} + {run.transport:.2f} = {bot_import + run.transport:.2f} s"
            )
        rows["CPU target (issue 8)"] = target
        columns.append((title, rows))
    rows = describe_run(running, lines)
    rows["run: CPU floor (calls x one call), each"] = ", ".join(
        f"{sum(m['calls'] for m in c['stats']['markets'].values()) * per_call:.2f} s"
        for c in running.cycles
    )
    if all(c.get("transport") is not None for c in running.cycles):
        rows["run: CPU in HTTP libraries (measured), each"] = ", ".join(
            f"{c['transport']:.2f} s" for c in running.cycles
        )
    rows["CPU target (issue 8)"] = target
    columns.append((f"{skus:,} run: one process", rows))
    return columns


def import_cost(code: str, runs: int = 3) -> tuple[float, float]:
    """CPU seconds and peak RSS (MB) of `python -c code` here: the least of `runs` tries."""
    best = (math.inf, math.inf)
    env = {k: v for k, v in os.environ.items() if k != "BENCH_HWM_FILE"}
    env["PYTHONPATH"] = str(ROOT)
    for _ in range(runs):
        proc = subprocess.Popen(
            [sys.executable, "-c", PEAK + code], cwd=ROOT, env=env, stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        printed = proc.stdout.read()  # the peak, printed at exit (PEAK)
        proc.stdout.close()
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0  # reaped here
        best = min(best, (usage.ru_utime + usage.ru_stime, int(printed.split()[-1]) / 1024))
    return best


def call_cost(server: Server) -> float:
    """CPU seconds one small httpx call to the stand-in process costs the caller (`CALL_COST`)."""
    env = {k: v for k, v in os.environ.items() if k != "BENCH_HWM_FILE"}
    url = f"{server.url}/_control/bench/none"
    out = subprocess.run(
        [sys.executable, "-c", CALL_COST, url], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"measuring one call failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.split()[-1])


def machine_line(libraries: tuple[float, float], bot: tuple[float, float]) -> str:
    """What starting Python and importing take on this machine, to read the figures against.

    The bot's own share of a cycle is its CPU less the import; the import itself is mostly
    its libraries (pydantic, gspread with google-auth, httpx), measured apart.
    """
    return (
        f"This machine: importing the libraries alone takes {libraries[0]:.2f} s CPU "
        f"({libraries[1]:.0f} MB), importing the bot {bot[0]:.2f} s ({bot[1]:.0f} MB); "
        "every (a) and (b) CPU figure above includes that import (run: open includes it, "
        "run: cycles do not)."
    )


def main() -> None:
    """Parse arguments, run every size, print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--skus", default="10000,100000", help="comma-separated sizes")
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--sample", type=int, default=100, help="naive Sheets writes timed")
    parser.add_argument(
        "--profile",
        type=Path,
        help="cProfile the bot (threads too; not with --real-sleep): writes "
        "PROFILE.<size>.first.prof and .orders.prof (CPU figures then inflated)",
    )
    parser.add_argument("--real-sleep", action="store_true", help="plain `python -m bot sync`")
    parser.add_argument(
        "--sets", type=int, default=0, help="percent of rows that are set products (e.g. 10)"
    )
    args = parser.parse_args()
    if args.profile:
        args.profile.parent.mkdir(parents=True, exist_ok=True)
    # As installed on a VM (pip compiles the package): the bot's modules come from their
    # bytecode caches, which PYTHONDONTWRITEBYTECODE would otherwise keep every child from
    # writing, so each would compile the whole bot again (about 0.3 s on this machine).
    compileall.compile_dir(ROOT / "bot", quiet=1)
    # Likewise the installed libraries: pip compiles them as it installs, unless, as on this
    # machine, PYTHONDONTWRITEBYTECODE was set then (0.05-0.1 s more per child otherwise).
    compileall.compile_dir(sysconfig.get_paths()["purelib"], quiet=1)
    libraries = import_cost("import gspread, httpx, pydantic_settings, sqlite3")
    bot = import_cost("import bot.cli")
    columns = []
    for size in (int(s) for s in args.skus.split(",")):
        columns += bench(
            size, args.lines, args.real_sleep, args.sample, args.profile, args.sets, bot[0]
        )
    print()
    print_table(columns)
    print("\n" + machine_line(libraries, bot))
    print(
        "\nCPU and peak RSS are the bot process's own (os.wait4), interpreter start included; "
        "wall time is from start to exit"
        + (
            ", rate-limit pauses included (--real-sleep)."
            if args.real_sleep
            else ". Rate-limit pauses (each marketplace's limiters, Amazon's feed polls) ran on "
            "a virtual clock: not in wall time, shown apart (marketplaces run in parallel, so "
            "the longest is what a real cycle would add)."
        )
    )
    print(
        "Staff-edit window: the re-read before the commit arriving at the Sheets stand-in, to "
        "the commit arriving. Push calls count Rakuten bulk-upsert, Yahoo setStock, Amazon "
        "PATCH or createFeed, Shopify inventorySetQuantities; all calls add order reads, "
        "look-ups and tokens."
    )
    print(
        "run: one child process on fresh stand-ins and a fresh sheet, started after (a) and (b): "
        "it opens the app once as `stockbot run` does (CPU of interpreter start, import and "
        "open from getrusage), then runs three cycles on command: the first, one after the same "
        f"{args.lines} order lines as (b), a quiet one. A cycle's CPU is the whole process's "
        "(getrusage RUSAGE_SELF deltas, user + sys, every thread), its RSS VmRSS after it; peak "
        "RSS is VmHWM at exit. Figures listed with commas are per cycle: first, with lines, quiet."
    )
    print(
        "CPU floor: a lower bound on the bot's CPU for the same work with the same libraries, "
        "leaving out everything but two costs measured in this run: starting Python and "
        "importing the bot (for a `sync`; a `run` cycle pays it once, at start), and the "
        "marketplace calls the cycle made (its pushes at the fewest the batch limits allow, "
        "see push calls / minimum; besides them order reads, one per order where the API "
        "reads no batch of orders, Shopify's SKU look-ups and tokens) times the CPU of one "
        "small httpx call to the stand-in process, measured in this run (CALL_COST). "
        "Reading, parsing and writing the sheet, encoding the bodies, decoding the answers "
        "and the state file cost on top of it. The measured floor (HTTP libraries) is the "
        "CPU each thread of the bot spent inside httpx's and requests' send for the cycle's "
        "real calls, the Sheets API's included: bodies sent, headers parsed and answers read "
        "(not their JSON or XML decoded, which is the bot's), timed by the launcher."
    )
    print(
        "Naive baseline: one Sheets write per cell the bot wrote (its local time extrapolated "
        f"from {args.sample} single-cell gspread writes measured in this run) and one "
        "marketplace call per pushed SKU (computed, at the published rates: Rakuten and Yahoo "
        "1/s, Amazon 5/s, Shopify 10/s)."
    )


if __name__ == "__main__":
    main()
