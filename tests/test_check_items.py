"""`stockbot check` asks each marketplace whether the sheet's item ids exist (a warning only).

The lookups run through the real adapters against the stand-ins, and through `python -m bot
check` as staff run it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bot import cli
from bot.channels import build_channels
from bot.channels.amazon import AmazonChannel
from bot.channels.base import ItemLookup
from bot.errors import AuthError
from tests.test_amazon_models import MODELS, SWAGGER, Models, Recorder, _check_all
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


# -- Yahoo!, Amazon and Shopify ---------------------------------------------------------------
# Each sheet below names two items the marketplace has and one it lacks, in that channel's column.
COLUMN = {"yahoo": 5, "amazon": 6, "shopify": 7}
KNOWN = {
    "yahoo": ("tea-001", "cup-001:white"),
    "amazon": ("TEA-001", "茶/緑 100g"),
    "shopify": ("TEA-001", "CUP-001-W"),
}
LACKING = {"yahoo": "new-001", "amazon": "NEW-001", "shopify": "NEW-001"}
# The call each lookup makes, as the stand-in records its path.
LOOKUP_PATH = {
    "yahoo": r".*/getStock",
    "amazon": r"/listings/2021-08-01/items/[^/]+",
    "shopify": r".*/graphql\.json",
}


def _rows(channel: str) -> list[list[object]]:
    ids = [*KNOWN[channel], LACKING[channel], "-"]
    rows: list[list[object]] = []
    for number, item in enumerate(ids, 1):
        row: list[object] = [f"SKU-{number:03}", "Item", 3, "", "", "", "", "", "", ""]
        row[COLUMN[channel]] = item
        rows.append(row)
    return rows


@contextmanager
def other_world(tmp_path: Path, channel: str) -> Iterator[World]:
    with world(tmp_path, (channel,)) as w:
        w.create_sheet(_rows(channel))
        for item in KNOWN[channel]:
            w.markets[channel].add_item(item, 3)
        yield w


@contextmanager
def adapter(w: World, channel: str) -> Iterator[Any]:
    """The real adapter of `channel`, on the world's fake clocks, stand-in rates off."""
    built = build_channels(
        w.settings(), sleep=w.time.sleep, clock=w.time.monotonic, wall_clock=w.time.now
    )[channel]
    market = w.markets[channel]
    market.enforce_rate_limits = False  # type: ignore[attr-defined]
    try:
        yield built
    finally:
        built.close()
        market.enforce_rate_limits = True  # type: ignore[attr-defined]


@pytest.mark.parametrize("channel", ["yahoo", "amazon", "shopify"])
def test_check_names_the_item_ids_yahoo_amazon_and_shopify_lack(
    tmp_path: Path, channel: str
) -> None:
    with other_world(tmp_path, channel) as w:
        done = w.run_cli("check")
        assert done.returncode == 0, done.stdout + done.stderr
        lacking = LACKING[channel]
        expected = f"{channel}: WARNING: 1 of 3 item ids checked are not on {channel}: {lacking}."
        assert expected in done.stdout, done.stdout


@pytest.mark.parametrize("channel", ["yahoo", "amazon", "shopify"])
def test_known_items_are_not_reported_and_one_call_asks_for_them_all(
    tmp_path: Path, channel: str
) -> None:
    with other_world(tmp_path, channel) as w, adapter(w, channel) as lookup:
        assert isinstance(lookup, ItemLookup)
        market = w.markets[channel]
        before = len(market.requests_to(LOOKUP_PATH[channel]))
        asked = [*KNOWN[channel], LACKING[channel]]
        assert lookup.missing(asked) == [LACKING[channel]]
        assert lookup.missing(list(KNOWN[channel])) == []
        assert len(market.requests_to(LOOKUP_PATH[channel])) - before == 2


@pytest.mark.parametrize(("channel", "batch"), [("yahoo", 1000), ("amazon", 20), ("shopify", 100)])
def test_lookups_are_asked_in_the_largest_batches_the_api_allows(
    tmp_path: Path, channel: str, batch: int
) -> None:
    with other_world(tmp_path, channel) as w, adapter(w, channel) as lookup:
        market = w.markets[channel]
        many = [f"bulk-{n:05}" for n in range(batch + 1)]
        for item in many[::2]:
            market.add_item(item, 1)
        before = len(market.requests_to(LOOKUP_PATH[channel]))
        assert lookup.missing(many) == many[1::2]
        assert len(market.requests_to(LOOKUP_PATH[channel])) - before == 2


def _refuse_credentials(w: World, channel: str) -> None:
    market: Any = w.markets[channel]
    if channel == "shopify":
        market.access_token = "shpat_revoked"
    else:
        market.refresh_token = "revoked"


@pytest.mark.parametrize("channel", ["yahoo", "amazon", "shopify"])
def test_refused_credentials_stay_an_auth_error_and_check_fails(
    tmp_path: Path, channel: str
) -> None:
    with other_world(tmp_path, channel) as w:
        with adapter(w, channel) as lookup:
            _refuse_credentials(w, channel)
            with pytest.raises(AuthError):
                lookup.missing([LACKING[channel]])
        done = w.run_cli("check")
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"{channel}: FAILED" in done.stdout


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("channel", ["yahoo", "amazon", "shopify"])
def test_a_throttled_or_failing_lookup_is_retried(
    tmp_path: Path, channel: str, status: int
) -> None:
    with other_world(tmp_path, channel) as w, adapter(w, channel) as lookup:
        market = w.markets[channel]
        lookup.check()  # the token first, so the fault meets the lookup itself
        match = {"yahoo": "getStock", "amazon": "/listings/", "shopify": "graphql"}[channel]
        market.fail(status, times=2, match=match)
        before = len(market.requests_to(LOOKUP_PATH[channel]))
        assert lookup.missing([*KNOWN[channel], LACKING[channel]]) == [LACKING[channel]]
        assert len(market.requests_to(LOOKUP_PATH[channel])) - before == 3


def test_amazon_reads_a_sku_with_a_comma_alone_and_takes_404_as_missing(tmp_path: Path) -> None:
    with other_world(tmp_path, "amazon") as w, adapter(w, "amazon") as lookup:
        w.markets["amazon"].add_item("TEA,100g", 1)
        asked = ["TEA-001", "TEA,100g", "CUP,200g"]
        assert lookup.missing(asked) == ["CUP,200g"]
        single = w.markets["amazon"].requests_to(r"/listings/2021-08-01/items/[^/]+/.+", "GET")
        assert len(single) == 2


def test_amazon_lookups_follow_the_official_models(tmp_path: Path) -> None:
    if not all((MODELS / n).exists() for n in SWAGGER):
        pytest.skip(f"Amazon's official models are absent ({MODELS})")
    models = Models(MODELS)
    with other_world(tmp_path, "amazon") as w:
        market = w.markets["amazon"]
        market.enforce_rate_limits = False  # type: ignore[attr-defined]
        market.add_item("TEA,100g", 1)
        recorder = Recorder()
        channel = AmazonChannel.from_settings(
            w.settings(), sleep=w.time.sleep, clock=w.time.monotonic, transport=recorder
        )
        try:
            skus = [f"bulk-{n:03}" for n in range(25)] + ["TEA-001", "TEA,100g", "NO,PE"]
            assert channel.missing(skus) == [*skus[:25], "NO,PE"]
        finally:
            channel.close()
        seen = _check_all(models, recorder)
    assert seen == {"token": 1, "searchListingsItems": 2, "getListingsItem": 2}


def test_yahoo_asks_getstock_as_its_page_shows(tmp_path: Path) -> None:
    with other_world(tmp_path, "yahoo") as w, adapter(w, "yahoo") as lookup:
        assert lookup.missing(["tea-001", "cup-001:white", "bad code!"]) == ["bad code!"]
        (request,) = w.markets["yahoo"].requests_to(r".*/getStock")
        form = request.form()
        assert form["seller_id"] == [w.markets["yahoo"].seller_id]  # type: ignore[attr-defined]
        assert form["item_code"] == ["tea-001,cup-001:white"]
