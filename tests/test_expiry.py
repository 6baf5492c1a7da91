"""Credentials about to expire: RMS's word on the licence key, the bot's count for Yahoo!'s token.

Rakuten cycles run as a shop owner runs them (`python -m bot sync` in a subprocess) against the
RMS stand-in, whose LicenseManagementAPI keeps an expiry per licence key; alerts go to a real
webhook receiver on loopback. The Yahoo! refresh token's first sighting is counted on the
world's fake clock, through the real adapters and the Yahoo! stand-in.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from bot.channels import build_channels
from bot.channels.rakuten import JST
from bot.expiry import META_KEY, Credentials, expiry_path, notices
from bot.ledger import Ledger
from tests.test_alerts import Receiver
from tests.world import World, world

ROWS = [["TEA-001", "Sencha", 30, "", "", "", "", "", "", ""]]
LICENCE = "SL-SECRET-licence-0001"
RENEWED = "SL-SECRET-licence-0002"


def _kept(w: World) -> str:
    """The expiry facts the state file keeps (its meta table), as text."""
    ledger = Ledger(w.settings().state_path)
    try:
        return ledger.get_meta(META_KEY) or ""
    finally:
        ledger.close()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture
def w(tmp_path: Path, hook: Receiver) -> Iterator[World]:
    with world(tmp_path, ("rakuten",)) as w:
        rakuten = w.markets["rakuten"]
        rakuten.license_key = LICENCE  # type: ignore[attr-defined]
        w.create_sheet(ROWS)
        rakuten.add_item("TEA-001", 0)  # type: ignore[attr-defined]
        w.env["STOCKBOT_ALERT_WEBHOOK_URL"] = hook.url
        yield w


def _expires_in(w: World, days: int, key: str | None = None) -> None:
    """Make the stand-in's key expire at 23:59:59 JST, `days` days from today in Japan."""
    jst = w.markets["rakuten"].now().astimezone(JST)  # type: ignore[attr-defined]
    end = jst.replace(hour=23, minute=59, second=59, microsecond=0) + timedelta(days=days)
    w.markets["rakuten"].set_license_expiry(end, key)  # type: ignore[attr-defined]


def _licence_asks(w: World) -> int:
    return sum(1 for r in w.markets["rakuten"].requests if "license-management" in r.path)


def _last_error(w: World) -> str:
    row = w.sheets.get_values(w.sheet_id, "Channels")[1]
    return str([*row, "", "", "", ""][3])


def test_rms_expiry_alerts_once_at_14_days_and_ends_with_a_renewed_key(
    w: World, hook: Receiver
) -> None:
    _expires_in(w, 14)
    assert w.run_cli("sync").returncode == 0
    (started,) = hook.texts()
    assert "rakuten: the RMS licence key expires in 14 day(s)" in started
    assert "as RMS tells" in started
    assert "expires in 14 day(s)" in _last_error(w)
    # The next cycle: no second alert, and RMS is not asked again the same day.
    assert w.run_cli("sync").returncode == 0
    assert len(hook.texts()) == 1
    assert _licence_asks(w) == 1
    # Staff issue a new key in RMS and configure it: asked at once, the incident ends.
    w.markets["rakuten"].renew_license_key(RENEWED)  # type: ignore[attr-defined]
    w.env["STOCKBOT_RAKUTEN_LICENSE_KEY"] = RENEWED
    assert w.run_cli("sync").returncode == 0
    assert _licence_asks(w) == 2
    assert len(hook.texts()) == 2
    assert "rakuten: the credential warning is over" in hook.texts()[1]
    assert _last_error(w) == ""
    # No secret in the alerts, the sheet or the remembered facts.
    sheet = json.dumps(
        [w.sheets.get_values(w.sheet_id, tab) for tab in ("Inventory", "Log", "Channels")]
    )
    kept = _kept(w)
    assert '"rakuten"' in kept and not expiry_path(w.settings().state_path).exists()
    secret = w.env["STOCKBOT_RAKUTEN_SERVICE_SECRET"]
    for text in (*hook.texts(), sheet, kept):
        for value in (LICENCE, RENEWED, secret):
            assert value not in text


def test_fifteen_days_left_is_no_warning_yet(w: World, hook: Receiver) -> None:
    _expires_in(w, 15)
    assert w.run_cli("sync").returncode == 0
    assert hook.texts() == []
    assert _last_error(w) == ""


def test_check_prints_the_expiry_date_and_writes_nothing(w: World) -> None:
    _expires_in(w, 40)
    done = w.run_cli("check")
    assert done.returncode == 0, done.stderr
    rakuten = w.markets["rakuten"]
    day = (rakuten.now().astimezone(JST) + timedelta(days=40)).date()  # type: ignore[attr-defined]
    assert f"rakuten: licence key expires {day.isoformat()} 23:59 JST" in done.stdout
    assert "RMS LicenseManagementAPI" in done.stdout
    assert not expiry_path(w.settings().state_path).exists()


def test_a_wrong_key_is_still_an_auth_failure_and_no_expiry_warning(
    w: World, hook: Receiver
) -> None:
    w.env["STOCKBOT_RAKUTEN_LICENSE_KEY"] = "SL-SECRET-wrong"
    done = w.run_cli("sync")
    assert done.returncode == 1
    (alert,) = hook.texts()
    assert "rakuten is failing" in alert and "ES01-01" in alert
    assert "licence key expires" not in alert
    assert "ES01-01" in _last_error(w)
    assert "SL-SECRET-wrong" not in alert + done.stderr + _last_error(w)


@pytest.mark.parametrize("outage", ["down", "not allowed"])
def test_rms_unable_to_tell_does_not_fail_the_cycle_and_the_setting_decides(
    w: World, hook: Receiver, outage: str
) -> None:
    rakuten = w.markets["rakuten"]
    if outage == "down":
        rakuten.fail(503, times=1000, match="license-management")
    else:
        rakuten.license_api_allowed = False  # type: ignore[attr-defined]
    typed = (rakuten.now().astimezone(JST) + timedelta(days=3)).date()  # type: ignore[attr-defined]
    w.env["STOCKBOT_RAKUTEN_LICENSE_EXPIRES"] = typed.isoformat()
    done = w.run_cli("sync")
    assert done.returncode == 0, done.stderr
    assert w.markets["rakuten"].quantity("TEA-001") == 30  # type: ignore[attr-defined]
    (alert,) = hook.texts()
    assert f"expires in 3 day(s) ({typed.isoformat()})" in alert
    assert "STOCKBOT_RAKUTEN_LICENSE_EXPIRES" in alert
    assert "the licence key's expiry is taken from" in done.stderr  # logged
    # Asked once a day even while it fails: the next cycle does not try again.
    asked = _licence_asks(w)
    assert w.run_cli("sync").returncode == 0
    assert _licence_asks(w) == asked


# -- Yahoo! --------------------------------------------------------------------------------
@pytest.fixture
def y(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("yahoo",)) as y:
        y.create_sheet(ROWS)
        yield y


def _review(y: World) -> dict[str, str]:
    settings = y.settings()
    channels = build_channels(settings, sleep=y.time.sleep, wall_clock=y.time.now)
    try:
        return notices(Credentials(settings, channels, now=y.time.now).review())
    finally:
        for channel in channels.values():
            channel.close()


def test_yahoo_token_warned_5_days_before_first_sight_plus_28_days_and_reset_by_a_new_token(
    y: World,
) -> None:
    assert "STOCKBOT_YAHOO_PUBLIC_KEY_FILE" in y.env  # signed calls: the token lives 28 days
    assert _review(y) == {}  # first sight: the count starts now
    y.time.offset += timedelta(days=22, hours=23)
    assert _review(y) == {}
    y.time.offset += timedelta(hours=2)  # 23 days and 1 hour: less than 5 days left
    (notice,) = _review(y).values()
    assert "refresh token expires by" in notice and "at the latest" in notice
    assert "earlier if it was issued before" in notice
    kept = _kept(y)
    assert '"first_seen"' in kept
    assert y.env["STOCKBOT_YAHOO_REFRESH_TOKEN"] not in kept + notice
    # Staff re-authorise and configure the new token: counted afresh from now.
    y.env["STOCKBOT_YAHOO_REFRESH_TOKEN"] = "a-brand-new-refresh-token"
    assert _review(y) == {}


def test_a_yahoo_token_still_working_past_its_latest_end_was_renewed(y: World) -> None:
    settings = y.settings()
    assert _review(y) == {}
    y.time.offset += timedelta(days=29)
    assert "yahoo" in _review(y)
    # A cycle that synced Yahoo! proves the token still works: re-authorised, same text.
    with y.bot() as cycle:
        report = cycle.run()
    assert "yahoo" not in report.failed_channels
    channels = build_channels(settings, wall_clock=y.time.now)
    Credentials(settings, channels, now=y.time.now).settle(report.failed_channels)
    channels["yahoo"].close()
    assert _review(y) == {}


def test_an_expiry_file_of_an_earlier_version_moves_into_the_state_file_once(y: World) -> None:
    # Earlier versions kept the facts in <state>.expiry.json: its first sighting still counts.
    assert _review(y) == {}  # first sight, kept in the state file
    facts = json.loads(_kept(y))
    first = y.time.now() - timedelta(days=24)
    facts["yahoo"]["first_seen"] = first.isoformat()
    old = expiry_path(y.settings().state_path)
    old.write_text(json.dumps(facts), encoding="utf-8")
    with closing(sqlite3.connect(y.settings().state_path)) as db, db:
        db.execute("DELETE FROM meta WHERE key=?", (META_KEY,))  # an earlier version's file
    assert "yahoo" in _review(y)  # 24 days after the first sighting the file told
    assert not old.exists()
    assert json.loads(_kept(y))["yahoo"]["first_seen"] == first.isoformat()
    assert "yahoo" in _review(y)  # from the state file alone now
