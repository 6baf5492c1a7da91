"""Marketplace adapters: one module per marketplace, sharing `http` and `base`."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from bot.channels.base import Channel
from bot.channels.yahoo_quota import DailyCalls
from bot.config import Settings

__all__ = ["ADAPTERS", "build_channels"]

ADAPTERS = {
    "rakuten": ("bot.channels.rakuten", "RakutenChannel"),
    "yahoo": ("bot.channels.yahoo", "YahooChannel"),
    "amazon": ("bot.channels.amazon", "AmazonChannel"),
    "shopify": ("bot.channels.shopify", "ShopifyChannel"),
}


def build_channels(
    settings: Settings,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], datetime] | None = None,
    transport: httpx.BaseTransport | None = None,
    read_only: bool = False,
) -> dict[str, Channel]:
    """An adapter for every marketplace in STOCKBOT_CHANNELS, in that order.

    `read_only` (`stockbot check`, which writes nothing): the adapters keep no file; Yahoo!'s
    call count, the only one, is read but kept in memory (`DailyCalls.read_only`).
    """
    channels: dict[str, Channel] = {}
    for name in settings.channels:
        module_name, class_name = ADAPTERS[name]
        cls: Any = getattr(importlib.import_module(module_name), class_name)
        channel = cls.from_settings(
            settings, sleep=sleep, clock=clock, wall_clock=wall_clock, transport=transport
        )
        if read_only and isinstance(calls := getattr(channel, "calls", None), DailyCalls):
            calls.read_only = True
        channels[name] = channel
    return channels
