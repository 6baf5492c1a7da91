"""The rough edges a new user hit (issue 10, item 5), each as the user met it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from setuptools import find_packages

from bot.cli import summarize
from bot.standins.amazon import AmazonStandIn
from tests.world import ROOT, World, world

PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"


def test_every_bot_subpackage_is_listed_for_packaging() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = set(find_packages(str(ROOT), include=["bot*"]))
    assert found <= listed, sorted(found - listed)


@pytest.mark.slow
def test_demo_works_from_a_non_editable_install_outside_the_repository(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    bin_dir = venv / "bin"
    # The dependencies (and `wheel`, to build) come from the test's own environment, added as a
    # plain path: its .pth files (the editable install of the checkout) are not processed.
    purelib = Path(
        subprocess.run(
            [str(bin_dir / "python"), "-c", PURELIB],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (purelib / "test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("STOCKBOT_")
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    install = subprocess.run(
        [str(bin_dir / "pip"), "install", "-q", "--no-deps", "--no-build-isolation", str(ROOT)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import bot; print(bot.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(venv) in where, where  # the installed copy, not the checkout
    demo = subprocess.run(
        [str(bin_dir / "stockbot"), "demo"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "Demo finished" in demo.stdout


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(
            [
                ["TEA-001", "Sencha", 30, "+20", "", "", "", "", "", ""],
                ["TEA-002", "Gyokuro", 5, "", "", "", "", "", "", ""],
            ]
        )
        for item in ("TEA-001", "TEA-002"):
            w.markets["rakuten"].add_item(item, 0)
        yield w


def _rename(w: World, tab: str, cell: str, text: str) -> None:
    w.sheets.set_value(w.sheet_id, tab, cell, text, raw=True)


def test_a_renamed_stock_header_names_it_and_warns_against_init_sheet(w: World) -> None:
    _rename(w, "Inventory", "C1", "在庫")
    done = w.run_cli("sync")
    assert done.returncode == 2
    assert "'Stock'" in done.stderr and "'在庫'" in done.stderr
    assert "rename it back" in done.stderr
    assert "Do not run `stockbot init-sheet`" in done.stderr


def test_a_renamed_inventory_tab_names_it_and_warns_against_init_sheet(w: World) -> None:
    tab = w.sheets.tab_ids(w.sheet_id)["Inventory"]
    w.sheets.batch_update(
        w.sheet_id,
        [
            {
                "updateSheetProperties": {
                    "properties": {"sheetId": tab, "title": "在庫一覧"},
                    "fields": "title",
                }
            }
        ],
    )
    done = w.run_cli("check")
    assert done.returncode == 2
    assert "'Inventory'" in done.stderr and "'在庫一覧'" in done.stderr
    assert "Do not run `stockbot init-sheet`" in done.stderr


def test_a_deleted_header_still_advises_init_sheet(w: World) -> None:
    _rename(w, "Inventory", "C1", "")
    done = w.run_cli("sync")
    assert done.returncode == 2
    assert "run `stockbot init-sheet`" in done.stderr and "rename it back" not in done.stderr


def test_check_fails_when_every_row_is_broken(w: World) -> None:
    w.set_stock("TEA-001", "thirty")
    w.set_stock("TEA-002", "five")
    done = w.run_cli("check")
    assert done.returncode == 1, done.stdout
    assert "every one of the 2 Inventory rows has a problem" in done.stdout


def test_check_fails_when_the_skus_the_state_knows_vanished(w: World) -> None:
    assert w.run_cli("sync").returncode == 0
    w.set_cell("TEA-001", "A", "X-1")
    w.set_cell("TEA-002", "A", "X-2")
    done = w.run_cli("check")
    assert done.returncode == 1, done.stdout
    assert "none of the 2 SKUs this state file knows" in done.stdout


def test_check_says_how_many_more_rows_have_problems_and_lists_them_with_all(
    tmp_path: Path,
) -> None:
    with world(tmp_path, ("rakuten",)) as w:
        rows = [
            [f"SKU-{i:03}", "", i, "+abc" if i < 25 else "", "", "", "", "", "", ""]
            for i in range(30)
        ]
        w.create_sheet(rows)
        done = w.run_cli("check")
        assert "25 with problems" in done.stdout
        assert "… and 5 more rows with problems: `stockbot check --all`" in done.stdout
        everything = w.run_cli("check", "--all")
        assert "SKU-024" in everything.stdout and "more rows" not in everything.stdout


def test_check_does_not_create_the_state_file(w: World) -> None:
    done = w.run_cli("check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not Path(w.env["STOCKBOT_STATE_PATH"]).exists()
    assert w.run_cli("sync").returncode == 0


def test_a_key_file_with_a_byte_order_mark_works(w: World) -> None:
    w.key_path.write_text(w.key_path.read_text(), encoding="utf-8-sig")
    done = w.run_cli("sync")
    assert done.returncode == 0, done.stderr


def test_a_damaged_private_key_is_named_as_such(w: World) -> None:
    key = json.loads(w.key_path.read_text())
    key["private_key"] = key["private_key"][:200]  # cut short when copied
    w.key_path.write_text(json.dumps(key))
    done = w.run_cli("check")
    assert done.returncode == 2
    assert "private key" in done.stderr and "damaged" in done.stderr
    assert "lacks" not in done.stderr


def test_sheets_api_not_enabled_says_enable_it_not_share_the_sheet(w: World) -> None:
    body = {
        "error": {
            "code": 403,
            "message": "Google Sheets API has not been used in project 123 before or it is "
            "disabled. Enable it by visiting https://console.developers.google.com/apis/api/"
            "sheets.googleapis.com/overview?project=123 then retry.",
            "status": "PERMISSION_DENIED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "SERVICE_DISABLED",
                    "domain": "googleapis.com",
                }
            ],
        }
    }
    w.sheets.fail(403, times=10, match="/v4/", body=json.dumps(body).encode())
    done = w.run_cli("sync")
    assert done.returncode == 2
    assert "Google Sheets API is not enabled" in done.stderr
    assert "share" not in done.stderr


def test_an_unreachable_marketplace_is_said_in_plain_words_and_named_once(w: World) -> None:
    w.env["STOCKBOT_RAKUTEN_API_URL"] = "http://127.0.0.1:9"  # nothing listens there
    report = w.sync()
    message = report.failed_channels["rakuten"]
    assert "could not connect" in message and "ConnectError" not in message
    assert "rakuten: rakuten:" not in summarize(report)
    assert "rakuten:" not in str(w.sheets.get_values(w.sheet_id, "Channels")[1][3])


def test_a_wrong_setting_is_explained_without_pydantic_words(w: World) -> None:
    w.env["STOCKBOT_CHANNELS"] = "rakuten,ebay"
    done = w.run_cli("sync")
    assert done.returncode == 2
    assert "unknown marketplace ebay" in done.stderr and "Value error" not in done.stderr


def test_the_summary_does_not_count_a_refused_item_as_pushed(tmp_path: Path) -> None:
    with world(tmp_path, ("amazon",)) as w:
        w.create_sheet(
            [
                ["TEA-001", "Sencha", 30, "", "", "", "TEA-001-AMZ", "", "", ""],
                ["TEA-002", "Gyokuro", 20, "", "", "", "TEA-002-AMZ", "", "", ""],
            ]
        )
        store = w.markets["amazon"]
        assert isinstance(store, AmazonStandIn)
        for item in ("TEA-001-AMZ", "TEA-002-AMZ"):
            store.add_item(item, 0)
        store.restrict_listing("TEA-002-AMZ")
        assert "pushed: amazon 1 (1 refused)" in summarize(w.sync())


def test_a_paused_channel_is_mentioned_by_sync_and_check(w: World) -> None:
    assert w.run_cli("sync").returncode == 0
    w.sheets.set_value(w.sheet_id, "Channels", "B2", False)
    for command in ("sync", "check"):
        done = w.run_cli(command)
        assert done.returncode == 0, done.stderr
        assert "rakuten: paused (Enabled is FALSE in the Channels tab)" in done.stdout


def test_a_second_ctrl_c_stops_run_at_once(w: World) -> None:
    w.sheets.latency = 2.0  # a long cycle
    proc = w.spawn("run", stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not w.sheets.requests_to(r"values:batchGet") and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 2.0
    assert "stopping now" in err


def test_the_bots_signed_token_request_is_checked_and_another_key_is_refused(w: World) -> None:
    """The key is loaded without cryptography's RSA self-check (issue 8, 40 ms a sync). The
    stand-in checks the JWT's signature against the service account's public key: the bot's
    own request passes, and a readable key that is not the account's gets no token."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = json.loads(w.key_path.read_text())
    w.sheets.trust_key(key)
    done = w.run_cli("sync")
    assert done.returncode == 0, done.stderr
    logged = len(w.log())

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key["private_key"] = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    w.key_path.write_text(json.dumps(key))
    w.markets["rakuten"].place_order([("TEA-001", 1)])
    done = w.run_cli("sync")
    assert done.returncode != 0
    assert "refused the service-account key" in done.stderr
    assert len(w.log()) == logged
