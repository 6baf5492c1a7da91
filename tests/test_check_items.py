"""`stockbot check` asks each marketplace whether the sheet's item ids exist (a warning only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import cli
from tests.world import World, world

ROWS = [
    ["TEA-001", "Sencha", 30, "", "", "", "", "", "", ""],
    ["TEA-002", "Gyokuro", 5, "", "", "", "", "", "", ""],
    ["NEW-001", "Not on Rakuten yet", 3, "", "", "", "", "", "", ""],
    ["CUP-001", "Cup", 4, "", "cup-001:White", "", "", "", "", ""],
    ["OFF-001", "Not sold there", 4, "", "-", "", "", "", "", ""],
]


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(ROWS)
        for item in ("TEA-001", "TEA-002", "cup-001:White"):
            w.markets["rakuten"].add_item(item, 0)
        yield w


@pytest.mark.parametrize("not_found_404", [False, True], ids=["left out", "404 GE0014"])
def test_check_names_items_the_marketplace_lacks_as_a_warning(
    w: World, not_found_404: bool
) -> None:
    w.markets["rakuten"].unknown_items_not_found = not_found_404
    before = len(w.markets["rakuten"].requests_to("bulk-get"))
    done = w.run_cli("check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rakuten: WARNING: 1 of 4 item ids checked are not on rakuten: NEW-001." in done.stdout
    # One bulk-get for the items, beside the credential probe of `check`.
    assert len(w.markets["rakuten"].requests_to("bulk-get")) - before == 2


def test_check_says_all_found_when_every_item_exists(w: World) -> None:
    w.markets["rakuten"].add_item("NEW-001", 0)
    done = w.run_cli("check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rakuten: all 4 item ids found" in done.stdout


def test_check_caps_the_items_it_asks_about_and_says_so(
    w: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(w.tmp)
    for key, value in w.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(cli, "CHECK_ITEMS_MAX", 2)
    assert cli.main(["check"]) == 0
    out = capsys.readouterr().out
    assert "rakuten: all 2 item ids found (the first 2 of 4)" in out
