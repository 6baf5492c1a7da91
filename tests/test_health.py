"""A stopped bot shows in the sheet: init-sheet's rule that turns an old Last sync red."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.world import World, world


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet([])
        yield w


def _rules(w: World) -> list[dict[str, Any]]:
    return w.sheets.conditional_formats(w.sheet_id, "Channels")


def test_init_sheet_turns_last_sync_red_after_three_intervals_and_adds_it_once(w: World) -> None:
    w.env["STOCKBOT_INTERVAL_SECONDS"] = "300"
    first = w.run_cli("init-sheet")
    assert first.returncode == 0, first.stderr
    assert "turns Last sync red" in first.stdout
    (rule,) = _rules(w)
    # Channels: Channel, Enabled, Last sync, Last error: Last sync is column C, rows 2 on.
    ((area),) = rule["ranges"]
    assert (area["startRowIndex"], area["startColumnIndex"], area["endColumnIndex"]) == (1, 2, 3)
    assert "endRowIndex" not in area
    formula = rule["booleanRule"]["condition"]["values"][0]["userEnteredValue"]
    assert rule["booleanRule"]["condition"]["type"] == "CUSTOM_FORMULA"
    assert "$C2" in formula and "NOW()" in formula
    assert f">{round(900 / 86400, 6)}+" in formula  # three intervals of 300 s, in days
    assert rule["booleanRule"]["format"]["backgroundColor"]

    second = w.run_cli("init-sheet")
    assert second.returncode == 0, second.stderr
    assert "Last sync" not in second.stdout
    assert len(_rules(w)) == 1

    w.env["STOCKBOT_INTERVAL_SECONDS"] = "600"
    third = w.run_cli("init-sheet")
    assert "updated the rule" in third.stdout
    (rule,) = _rules(w)
    formula = rule["booleanRule"]["condition"]["values"][0]["userEnteredValue"]
    assert f">{round(1800 / 86400, 6)}+" in formula


def test_the_rule_reads_last_sync_as_the_bot_writes_it(w: World) -> None:
    assert w.run_cli("init-sheet").returncode == 0
    assert w.run_cli("sync").returncode == 0
    written = str(w.sheets.get_values(w.sheet_id, "Channels")[1][2])
    (rule,) = _rules(w)
    formula = rule["booleanRule"]["condition"]["values"][0]["userEnteredValue"]
    # The formula takes the date from characters 1-10, the time from 12-19 and the offset
    # from 20-25: the text the bot writes must have them there.
    assert len(written) == 25, written
    assert written[4] == "-" and written[10] == "T" and written[19] in "+-"
    assert "LEFT($C2,10)" in formula and "MID($C2,12,8)" in formula
    assert "MID($C2,20,1)" in formula and "MID($C2,21,2)" in formula and "MID($C2,24,2)" in formula
