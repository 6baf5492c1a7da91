"""A long push says how far it got in the process log (issue 10, item 5)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot import pushing
from bot.pushing import Progress
from tests.world import world

SKUS = [f"TEA-{n:04d}" for n in range(1, 1_001)]


def test_a_first_push_of_a_thousand_items_shows_its_progress(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pushes to the stand-in take well under the 10 s between lines: say it at every batch.
    monkeypatch.setattr(pushing, "PROGRESS_EVERY", 0.0)
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet([[sku, "", 5, "", "", "", "", "", "", ""] for sku in SKUS])
        for sku in SKUS:
            w.markets["rakuten"].add_item(sku, 0)
        with caplog.at_level(logging.INFO, logger="stockbot"):
            w.sync()
        said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rakuten:")]
        assert said == [
            "rakuten: pushing 1,000 items",
            "rakuten: 400/1,000 pushed",
            "rakuten: 800/1,000 pushed",
            "rakuten: pushed 1000 items in 3 calls",
        ]
        # Saying it costs no call: 400 items per bulk-upsert, as before.
        assert len(w.markets["rakuten"].requests_to("bulk-upsert")) == 3
        assert w.markets["rakuten"].quantity(SKUS[-1]) == 5


def test_progress_is_said_at_most_every_ten_seconds_and_not_for_the_last_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t = [100.0]
    with caplog.at_level(logging.INFO, logger="stockbot"):
        progress = Progress("amazon", 1_200, lambda: t[0])
        for after, done in [(5, 100), (10, 300), (12, 400), (25, 900), (40, 1_200)]:
            t[0] = 100.0 + after
            progress(done)
    assert [r.getMessage() for r in caplog.records] == [
        "amazon: pushing 1,200 items",
        "amazon: 300/1,200 pushed",
        "amazon: 900/1,200 pushed",
    ]


def test_a_small_push_says_nothing_before_its_result(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="stockbot"):
        progress = Progress("yahoo", 3, lambda: 0.0)
        progress(3)
    assert caplog.records == []
