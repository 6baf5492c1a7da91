"""Review attacks 14: commits 1ce9fbe, 4d45a22 and a23e336 (and f427863's `PushPlan.typed`).

1. The pushes table without its rowid (`Ledger._migrate_pushes`): a state file of the
   version before, copied over once at open. Opened by `check` or a refused `sync` while an
   older bot holds the file and is mid-commit; a kill -9 in the middle of the copy; a commit
   the older version left pending, completed after the copy; an older bot opening a copied
   file (downgrade).
2. `Channel.push_calls` and the collector rule: counted against the adapters' real calls.
3. `plan_pushes`/`own_events` with the row properties inlined, and `PushPlan.typed`/`sku()`
   against `PushPlan.skus` (differential against f427863^ on random sheets); Amazon's PATCH
   with its query encoded once (differential against httpx's own `params=`, and a story with
   SKUs needing percent-encoding against the Amazon stand-in).

Broke, fixed in `Ledger`: 1, the copy at open. `check` (and a `sync` the lock refuses) opened a
file of the version before and copied its pushes table under the older bot that held it: with
that bot mid-commit, they waited SQLite's 5 s for the write lock and died with a traceback
(`database is locked`) instead of checking, or of exit status 3. The copy is now made by the
process that took the state file's lock (`Ledger.lock`); a rowid table serves every query the
same until then. Held: a kill -9 inside the copy, a commit the older version left pending,
the older version on a copied file, `push_calls` as a floor of the real calls, the plans, SKUs
and events against f427863^ (300 random sheets), the PATCH URL against httpx's `params=`.
"""

from __future__ import annotations

import fcntl
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.inventory import parse_inventory
from bot.ledger import Changes, Ledger, LineState
from bot.pushing import own_events, plan_pushes
from tests.history import load_at
from tests.test_review_attacks_13 import COLUMNS, HEAD, LINE_ITEMS, ROW, STATE
from tests.world import World, world

ROOT = Path(__file__).resolve().parents[1]
BEFORE_ROWID = "64ad382"  # the last version whose pushes table has a rowid
BEFORE_TYPED = "f427863^"  # the last version with `PushPlan.skus`
NOW = datetime(2026, 11, 30, tzinfo=UTC)


def _load(commit: str, path: str, name: str) -> ModuleType:
    """A module as it was at `commit`, loaded beside the current one."""
    return load_at(commit, path, name)


@pytest.fixture(scope="module")
def old_ledger() -> ModuleType:
    return _load(BEFORE_ROWID, "bot/ledger.py", "ledger_64ad382")


def _has_rowid(path: Path) -> bool:
    with sqlite3.connect(path) as db:
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name='pushes'").fetchone()
    return "WITHOUT ROWID" not in str(sql).upper()


def _pushes(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute("SELECT * FROM pushes"), key=repr)


def _as_earlier_version(path: Path) -> None:
    """Rebuild the state file's pushes table as the version before a23e336 made it."""
    with sqlite3.connect(path) as db:
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name='pushes'").fetchone()
        if "WITHOUT ROWID" not in sql.upper():
            return
        old = sql.replace("CREATE TABLE pushes", "CREATE TABLE pushes_old")
        old = old[: old.upper().rindex("WITHOUT ROWID")]
        db.execute(old)
        db.execute("INSERT INTO pushes_old SELECT * FROM pushes")
        db.execute("DROP TABLE pushes")
        db.execute("ALTER TABLE pushes_old RENAME TO pushes")
    assert _has_rowid(path)


@contextmanager
def _older_bot_mid_commit(path: Path) -> Iterator[None]:
    """An older `stockbot run` holds the state file's lock and is inside a write transaction
    (a first push's 800,000 pushes writes take seconds)."""
    lock = open(path.with_name(path.name + ".lock"), "a+")  # noqa: SIM115
    fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE meta SET value=value WHERE key='spreadsheet'")
    try:
        yield
    finally:
        db.execute("COMMIT")
        db.close()
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
        lock.close()


def _shop(w: World, count: int) -> None:
    w.create_sheet([[f"SKU-{i:03d}", "", 5, "", "", "", "", "", "", ""] for i in range(count)])
    for market in w.markets.values():
        for i in range(count):
            market.add_item(f"SKU-{i:03d}", 0)


# -- 1. the pushes table copied over ------------------------------------------------------------


@contextmanager
def _upgraded_beside_an_older_bot(
    tmp_path: Path,
) -> Iterator[tuple[World, Path, list[tuple[Any, ...]]]]:
    """A shop synced once, its state file put back in the earlier version's form (as the older
    bot still running keeps it): the world, the state file and its push entries."""
    with world(tmp_path, ("rakuten",)) as w:
        _shop(w, 3)
        assert w.sync().ok
        state = tmp_path / "state.sqlite3"
        _as_earlier_version(state)
        yield w, state, _pushes(state)


def test_check_beside_an_older_bot_mid_commit_neither_waits_for_nor_rewrites_its_file(
    tmp_path: Path,
) -> None:
    """The shop upgrades stockbot while the old `run` still works, and tries `stockbot check`
    (which writes nothing) at once. The old bot is in the middle of a commit. `check` opened
    the state file, tried to copy the pushes table under the running bot, waited SQLite's 5 s
    for its write lock and died with a traceback (`database is locked`)."""
    with _upgraded_beside_an_older_bot(tmp_path) as (w, state, before):
        with _older_bot_mid_commit(state):
            started = time.monotonic()
            done = w.run_cli("check")
            took = time.monotonic() - started
        assert done.returncode == 0, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        assert took < 4.5  # it waited for no write lock
        assert _has_rowid(state) and _pushes(state) == before  # it wrote nothing


def test_a_sync_refused_by_the_running_older_bot_leaves_its_state_file_alone(
    tmp_path: Path,
) -> None:
    """`stockbot sync` of the new version beside an older `run`: exit status 3, "nothing is
    done" (SPEC.md 6). It copied the pushes table under the running bot before it asked for the
    lock, and with the old bot mid-commit it crashed instead of saying who holds the file."""
    with _upgraded_beside_an_older_bot(tmp_path) as (w, state, before):
        with _older_bot_mid_commit(state):
            done = w.run_cli("sync")
        assert done.returncode == 3, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        assert _has_rowid(state) and _pushes(state) == before
        # The older bot stops; the upgraded one takes over and copies the table once.
        assert w.sync().ok
        assert not _has_rowid(state)
        assert len(_pushes(state)) == len(before)


def test_a_kill_in_the_middle_of_the_copy_loses_no_push_entry(
    tmp_path: Path, old_ledger: ModuleType
) -> None:
    """kill -9 after the entries were copied into the new table and before the old one was
    dropped: the copy is one transaction, so the next start finds the earlier file whole and
    copies it again."""
    state = tmp_path / "state.sqlite3"
    ledger = old_ledger.Ledger(state)
    ledger.record_pushes("amazon", {f"A-{i}": i for i in range(50)}, {"BAD": "refused"})
    ledger.record_pushes("rakuten", {f"r-{i}:R-{i}": i for i in range(50)}, {})
    ledger.forget_quantities("amazon", ["A-3"])
    ledger.close()
    before = _pushes(state)
    script = textwrap.dedent(
        f"""
        import os, sqlite3, bot.ledger
        real = sqlite3.connect
        def connect(*args, **kwargs):
            db = real(*args, **kwargs)
            def trace(sql):
                if sql.startswith("DROP TABLE pushes_with_rowid"):
                    os._exit(9)
            db.set_trace_callback(trace)
            return db
        bot.ledger.sqlite3.connect = connect
        ledger = bot.ledger.Ledger(bot.ledger.Path({str(state)!r}))
        ledger.lock()
        raise SystemExit("the copy never reached its end")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 9, done.stderr
    assert _has_rowid(state) and _pushes(state) == before
    ledger = Ledger(state)
    ledger.lock()
    assert ledger.settled_quantities("amazon") == {f"A-{i}": i for i in range(50) if i != 3}
    ledger.close()
    assert not _has_rowid(state) and _pushes(state) == before
    with sqlite3.connect(state) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "pushes_with_rowid" not in tables


def _a_commit(module: ModuleType) -> Any:
    return module.Changes(
        lines=[module.LineState("amazon", "o1", "l1", "A-1", "A-1", 2, 2)],
        orders=[("amazon", "o1", "2026-11-30T00:00:00+00:00", False)],
        cursors={"amazon": ("c1", "2026-11-30T00:00:00+00:00")},
        stock={"A-1": 3},
        adjust=[("amazon", "A-1", -2), ("amazon", "NEW", -1), ("rakuten", "a-1:A-1", -2)],
        refusals_logged=[["amazon", "BAD"]],
    )


def test_a_commit_left_pending_by_the_older_version_completes_the_same_after_the_copy(
    tmp_path: Path, old_ledger: ModuleType
) -> None:
    """The older bot prepared a commit and was killed before it knew whether it landed; the
    upgraded bot copies the table and then completes it: the entries are those the older
    version would have made."""
    old, new = tmp_path / "old.sqlite3", tmp_path / "new.sqlite3"
    for path in (old, new):
        ledger = old_ledger.Ledger(path)
        ledger.record_pushes("amazon", {"A-1": 5, "A-2": 1}, {"BAD": "refused"}, refused={"BAD": 9})
        ledger.record_pushes("rakuten", {"a-1:A-1": 5}, {})
        assert ledger.prepare("c1", "cycle", _a_commit(old_ledger))
        ledger.close()
    ledger = old_ledger.Ledger(old)
    ledger.complete("c1")
    ledger.close()
    ledger = Ledger(new)
    ledger.lock()
    pending = ledger.pending()
    assert pending is not None and pending.id == "c1"
    ledger.complete("c1")
    assert ledger.settled_quantities("amazon") == {"A-2": 1}
    ledger.close()
    assert not _has_rowid(new)
    assert _pushes(new) == _pushes(old)


def test_an_older_bot_works_on_a_copied_state_file_as_on_its_own(
    tmp_path: Path, old_ledger: ModuleType
) -> None:
    """Downgrade: the shop goes back to the version before. It opens the copied file (its
    `CREATE TABLE IF NOT EXISTS` leaves the table as it is) and reads and writes the same
    entries as on a file it made itself."""
    mine, copied = tmp_path / "mine.sqlite3", tmp_path / "copied.sqlite3"
    ledger = Ledger(copied)
    ledger.lock()
    ledger.close()
    assert not _has_rowid(copied)
    seen = []
    for path in (mine, copied):
        ledger = old_ledger.Ledger(path)
        ledger.lock()
        ledger.forget_quantities("amazon", ["A-1", "A-2", "A-3"])
        ledger.record_pushes("amazon", {"A-1": 5, "A-2": 2}, {"A-3": "no"}, ["A-2"], at="t")
        assert ledger.prepare("c1", "cycle", _a_commit(old_ledger))
        ledger.complete("c1")
        seen.append(
            (
                dict(ledger.settled_quantities("amazon")),
                ledger.unsettled_pushes("amazon"),
                ledger.push_errors(),
                ledger.prune_pushes({"amazon": {"A-1"}, "rakuten": set()}),
                dict(ledger.settled_quantities("amazon")),
            )
        )
        ledger.close()
    assert seen[0] == seen[1]
    assert _pushes(mine) == _pushes(copied)
    assert not _has_rowid(copied)


# -- 2. push_calls against the real calls -------------------------------------------------------


@pytest.mark.parametrize("count", [1, 3])
def test_each_marketplace_makes_at_least_the_calls_it_names(tmp_path: Path, count: int) -> None:
    """`push_calls` is the floor the collector rule counts: a first push of `count` items
    against the stand-ins never makes fewer calls than it says."""
    names = ("rakuten", "yahoo", "amazon", "shopify")
    with world(tmp_path, names) as w:
        _shop(w, count)
        with w.bot() as cycle:
            report = cycle.run()
            assert report.ok
            assert {p.channel: len(p.updates) for p in report.pushes} == dict.fromkeys(names, count)
            for name in names:
                pushes = [e for e in report.events if e.event == "push" and e.channel == name]
                assert len(pushes) == 1
                calls = int(pushes[0].detail.split(" in ")[1].split(" call")[0])
                assert calls >= cycle.channels[name].push_calls(count), name


# -- 3. plans, events and the SKUs they name --------------------------------------------------


@pytest.fixture(scope="module")
def old_pushing() -> ModuleType:
    return _load(BEFORE_TYPED, "bot/pushing.py", "pushing_before_f427863")


class _Market:
    def __init__(self, cap: int) -> None:
        self.max_quantity = cap


OWN = st.sampled_from(["", "", "", "", "-", "+1", "50%", "0", "x", "=1"])
PUSHED = st.lists(
    st.tuples(
        st.sampled_from(["rakuten", "yahoo", "amazon", "shopify"]),
        st.sampled_from([*LINE_ITEMS, "a:A", "item:Item:1", "b:B", "c:C"]),
        st.sampled_from(["ok", "ok", "forget", "refused", "stale"]),
        st.integers(0, 9),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    rows=st.lists(st.tuples(ROW, OWN, OWN, st.sampled_from(["", "", "2", "+1", "x"])), max_size=7),
    final=st.dictionaries(st.sampled_from(["A", "a", "B", "C", "Z"]), st.integers(-2, 9)),
    pushed=PUSHED,
    caps=st.tuples(st.sampled_from([3, 5, 99_999]), st.sampled_from([2, 99_999])),
    names=st.sets(st.sampled_from(["rakuten", "yahoo", "amazon", "shopify"]), min_size=1),
    lines=st.lists(STATE, max_size=6),
    known=st.lists(STATE, max_size=4),
)
def test_plans_and_events_name_the_items_and_skus_they_named_before(
    old_pushing: ModuleType,
    rows: list[tuple[Any, ...]],
    final: dict[str, int],
    pushed: list[tuple[str, str, str, int]],
    caps: tuple[int, int],
    names: set[str],
    lines: list[LineState],
    known: list[LineState],
) -> None:
    """Random sheets (items typed in any case, '-', sets, broken cells, own display settings
    and caps), random push histories: the plan pushes the same items with the same quantities
    and expectations, and every consumer's SKU (`PushPlan.sku`) is the one `PushPlan.skus`
    gave; `own_events` finds the same events."""
    head = [*HEAD, "Rakuten display", "Amazon display", "Display"]
    columns = {**COLUMNS, "rakuten_display": 10, "amazon_display": 11, "display": 12}
    grid = [head] + [
        [s, n, "", "", "", r, y, a, sh, set_, own_r, own_a, disp]
        for (s, n, r, y, a, sh, set_), own_r, own_a, disp in rows
    ]
    ledger = Ledger(Path(":memory:"))
    for channel, item, what, quantity in pushed:
        if what == "forget":
            ledger.forget_quantities(channel, [item])
        elif what == "refused":
            ledger.record_pushes(channel, {}, {item: "no"}, refused={item: quantity}, at="t")
        elif what == "stale":
            ledger.record_pushes(channel, {}, {}, [item])
        else:
            ledger.record_pushes(channel, {item: quantity}, {})
    markets = {
        "rakuten": _Market(caps[0]),
        "yahoo": _Market(999_999_999),
        "amazon": _Market(caps[1]),
        "shopify": _Market(1_000_000_000),
    }
    order = sorted(names)
    parsed = parse_inventory(grid, columns)
    before = old_pushing.plan_pushes(parsed, final, markets, order, ledger, NOW)
    after = plan_pushes(parse_inventory(grid, columns), final, markets, order, ledger, NOW)
    assert [(p.channel, p.updates, p.resync, p.repeated) for p in before] == [
        (p.channel, p.updates, p.resync, p.repeated) for p in after
    ]
    for old, new in zip(before, after, strict=True):
        for update in new.updates:
            assert new.sku(update.item) == old.skus[update.item]
        assert {new.sku(u.item) for u in new.updates} == set(old.skus.values())

    def lookup(channel: str, order_id: str) -> dict[str, LineState]:
        return {s.line_id: s for s in known if (s.channel, s.order_id) == (channel, order_id)}

    assert own_events(parsed, lines, lookup) == old_pushing.own_events(parsed, lines, lookup)


SELLERS = st.one_of(
    st.sampled_from(["A2EUQ1WTGCTBG2", "A/B", "a b", "x%2F", "ü", "?#&=+"]),
    st.text(min_size=1, max_size=8),
)
SKUS = st.one_of(
    st.sampled_from(["TEA-001", "TEA/001", "tea 001", "100%", "a+b", "?x=1#y", "茶-01", "."]),
    st.text(min_size=1, max_size=10),
)


@settings(max_examples=400, deadline=None)
@given(
    seller=SELLERS,
    sku=SKUS,
    marketplace=st.one_of(st.just("A1VC38T7YXB528"), st.text(min_size=1, max_size=6)),
    base=st.sampled_from(["http://h", "http://h/", "http://h/sp", "http://h/sp/"]),
)
def test_a_patch_goes_to_the_url_httpx_made_of_its_parameters(
    seller: str, sku: str, marketplace: str, base: str
) -> None:
    """The query encoded once (`_patch_query`) and put after the path: the same request line
    as httpx's own `params=`, for any seller id, SKU and marketplace id, under any API root."""
    from bot.channels.amazon import ISSUE_LOCALE, LISTINGS_PATH

    seen: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path)
        return httpx.Response(200)

    client = httpx.Client(base_url=base, transport=httpx.MockTransport(answer))
    path = f"{LISTINGS_PATH}/{quote(seller, safe='')}/{quote(sku, safe='')}"
    query = {"marketplaceIds": marketplace, "issueLocale": ISSUE_LOCALE}
    client.request("PATCH", path, params=query)
    client.request("PATCH", f"{path}?{urlencode(query)}")
    assert seen[0] == seen[1]


def test_skus_needing_percent_encoding_are_set_on_amazon_one_patch_each(tmp_path: Path) -> None:
    """SKUs with '/', spaces, '%', '+', '?', '#' and kana, pushed one PATCH each: the stand-in
    (which reads the raw path and the query's marketplaceIds) sets each listing."""
    skus = ["TEA/001", "tea 002", "100%", "a+b", "q?x=1", "h#1", "茶-01"]
    with world(tmp_path, ("amazon",)) as w:
        w.create_sheet([[sku, "", 4 + i, "", "", "", "", "", "", ""] for i, sku in enumerate(skus)])
        amazon = w.markets["amazon"]
        for sku in skus:
            amazon.add_item(sku, 0)
        report = w.sync()
        assert report.ok, report.failed_channels
        assert report.refused.get("amazon", 0) == 0
        assert {sku: amazon.quantity(sku) for sku in skus} == {
            sku: 4 + i for i, sku in enumerate(skus)
        }
        patches = [r for r in amazon.requests if r.method == "PATCH"]
        assert len(patches) == len(skus)
        assert all(r.query.get("issueLocale") == ["ja_JP"] for r in patches)


def test_a_push_with_refusals_names_the_sku_of_an_item_typed_in_a_marketplace_column(
    tmp_path: Path,
) -> None:
    """Log rows of a push name the row's SKU, also for an item typed in the Amazon column
    (`PushPlan.sku` of a typed item) and for a plain one."""
    with world(tmp_path, ("amazon",)) as w:
        w.create_sheet(
            [
                ["TEA-001", "", 5, "", "", "", "ASIN-TEA", "", "", ""],
                ["TEA-002", "", 6, "", "", "", "", "", "", ""],
            ]
        )
        amazon = w.markets["amazon"]
        amazon.add_item("ASIN-TEA", 0)
        amazon.add_item("TEA-002", 0)
        amazon.restrict_listing("ASIN-TEA")
        amazon.restrict_listing("TEA-002")
        assert w.sync().ok
        errors = {r["SKU"] for r in w.log("error") if "refused the quantity" in r["Detail"]}
        assert errors == {"TEA-001", "TEA-002"}
        amazon.lift_restriction("ASIN-TEA")
        assert w.sync().ok
        pushes = [r for r in w.log("push") if "ASIN-TEA=5" in r["Detail"]]
        assert [r["SKU"] for r in pushes] == ["TEA-001"]


def test_the_settled_quantities_handed_out_are_not_changed_under_a_plan(tmp_path: Path) -> None:
    """`settled_quantities` hands out the dict it keeps: the ledger's own recorded pushes and
    the next cycle's catch-up change it in place, but only on the cycle's thread and after the
    plan that read it is done (a cycle records its pushes after making its plans). Since
    539a33d a recorded push is taken in at once; before, only when asked again."""
    path = tmp_path / "state.sqlite3"
    ledger = Ledger(path)
    ledger.record_pushes("amazon", {"A": 1, "B": 2}, {})
    first = ledger.settled_quantities("amazon")
    with sqlite3.connect(path) as db:  # another program's write: nothing changes until asked
        db.execute("UPDATE pushes SET quantity=7 WHERE item='A'")
    assert dict(first) == {"A": 1, "B": 2}
    assert ledger.settled_quantities("amazon") == {"A": 7, "B": 2}
    ledger.record_pushes("amazon", {"A": 3}, {})
    again = ledger.settled_quantities("amazon")
    assert again == {"A": 3, "B": 2}
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            other = Ledger(tmp_path / "state.sqlite3")
            assert other.settled_quantities("amazon") == {"A": 3, "B": 2}
            other.close()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    thread.join()
    assert not errors
    ledger.close()


def test_changes_json_of_the_older_version_reads_back(old_ledger: ModuleType) -> None:
    """A pending commit's text written by the version before reads back unchanged."""
    text = _a_commit(old_ledger).to_json()
    assert Changes.from_json(text).to_json() == text
