"""What `check`, `sync` and `run` tell the operator about settings that do nothing.

The alert and health-check settings (`bot.health.alert_setup`) and STOCKBOT_ names no setting
reads (`bot.config.unknown_variables`); tests/test_newuser_review.py holds the reviewer's cases.
Real CLI processes against the stand-ins; the URLs are never answered (the check makes no ping).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import unknown_variables
from tests.world import World, world

ROWS = [["TEA-001", "Sencha", 30, "", "", "", "", "", "", ""]]
SECRETS = ("HOOKSECRET", "MAILPASSWORD", "PINGSECRET")


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(ROWS)
        w.markets["rakuten"].add_item("TEA-001", 0)
        yield w


def test_check_names_how_alerts_reach_staff_and_shows_none_of_their_secrets(w: World) -> None:
    w.env["STOCKBOT_ALERT_WEBHOOK_URL"] = "https://hooks.example.jp/services/HOOKSECRET"
    w.env["STOCKBOT_ALERT_EMAIL_TO"] = "owner@example.jp"
    w.env["STOCKBOT_SMTP_URL"] = "smtp://bot:MAILPASSWORD@mail.example.jp:587"
    w.env["STOCKBOT_HEALTHCHECK_URL"] = "https://hc-ping.com/PINGSECRET"
    done = w.run_cli("check")
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "alerts: webhook, e-mail; a health-check ping after every cycle" in done.stdout
    assert "FAILED alerts" not in said
    for secret in SECRETS:
        assert secret not in said


def test_check_with_no_alerts_set_says_so_and_passes(w: World) -> None:
    done = w.run_cli("check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "alerts: none set (STOCKBOT_ALERT_WEBHOOK_URL" in done.stdout
    assert "no ping" in done.stdout


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STOCKBOT_HEALTHCHECK_URL", "hc-ping.com/PINGSECRET"),
        ("STOCKBOT_HEALTHCHECK_URL", "ftp://hc-ping.com/PINGSECRET"),
        ("STOCKBOT_SMTP_URL", "http://bot:MAILPASSWORD@mail.example.jp"),
    ],
)
def test_check_fails_on_an_alert_setting_that_cannot_work_without_showing_it(
    w: World, variable: str, value: str
) -> None:
    w.env["STOCKBOT_ALERT_EMAIL_TO"] = "owner@example.jp"
    w.env["STOCKBOT_SMTP_URL"] = "smtp://bot:MAILPASSWORD@mail.example.jp:587"
    w.env[variable] = value
    done = w.run_cli("check")
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "FAILED alerts:" in done.stdout and variable in done.stdout, said
    for secret in SECRETS:
        assert secret not in said


def test_sync_with_an_unpingable_health_url_says_so_once_and_syncs(w: World) -> None:
    w.env["STOCKBOT_HEALTHCHECK_URL"] = "hc-ping.com/PINGSECRET"
    done = w.run_cli("sync")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("the health check is off: STOCKBOT_HEALTHCHECK_URL") == 1
    assert "ping failed" not in done.stderr
    assert "PINGSECRET" not in done.stderr


def test_sync_warns_of_a_misspelled_variable_in_env_and_in_the_environment(w: World) -> None:
    (w.tmp / ".env").write_text("export STOCKBOT_HEALTHCHEK_URL=https://hc-ping.com/x\n")
    w.env["STOCKBOT_INTERVAL_SECOND"] = "600"
    done = w.run_cli("sync")
    assert done.returncode == 0, done.stderr
    assert (
        "STOCKBOT_HEALTHCHEK_URL is set but is not a stockbot setting; did you mean "
        "STOCKBOT_HEALTHCHECK_URL?" in done.stderr
    )
    assert "did you mean STOCKBOT_INTERVAL_SECONDS?" in done.stderr


def test_unknown_variables_reads_names_in_any_case_and_skips_comments(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# STOCKBOT_COMMENTED=1\n"
        "stockbot_sheet_id=abc\n"
        "  export STOCKBOT_CHANNELS = rakuten\n"
        "STOCKBOT_SHEET_ID_OLD=xyz\n"
        "OTHER_THING=1\n"
        "not a line at all\n",
        encoding="utf-8",
    )
    said = unknown_variables({"Stockbot_Language": "ja", "STOCKBOT_ZZZ": "1"}, env_file)
    assert [line.split()[0] for line in said] == ["STOCKBOT_SHEET_ID_OLD", "STOCKBOT_ZZZ"]
    assert said[0].endswith("did you mean STOCKBOT_SHEET_ID?")
    assert said[1].endswith("(see .env.example)")


def test_unknown_variables_with_no_env_file_reads_the_environment_only(tmp_path: Path) -> None:
    assert unknown_variables({"STOCKBOT_SHEET_ID": "x"}, tmp_path / "missing.env") == []
    assert unknown_variables({}, tmp_path) == []  # a folder where .env should be: nothing read
