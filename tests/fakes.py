"""A fake monotonic clock for adapter tests: time moves only when something sleeps."""

from __future__ import annotations


class FakeTime:
    """Hand `clock` and `sleep` to an adapter (and a stand-in) so rate limits never wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        """Seconds on the fake clock."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Record the pause and move the clock on by it (at least a microsecond)."""
        self.sleeps.append(seconds)
        self.now += max(seconds, 1e-6)
