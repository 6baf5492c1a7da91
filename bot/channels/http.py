"""The one HTTP policy every marketplace adapter shares: retries and rate limits.

Which answers are worth retrying is decided here and only here: 429, 5xx, timeouts and
connection errors are retried with exponential backoff and full jitter, a bounded number of
times, honouring `Retry-After`; any other 4xx goes straight back to the adapter, which turns
the marketplace's own error code into a `RejectedError` or `AuthError`. Sleeping and the clock
are injected so tests never wait.
"""

from __future__ import annotations

import functools
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from bot.errors import TemporaryError
from bot.i18n import _

__all__ = [
    "ApiClient",
    "Clock",
    "RateLimiter",
    "RetryPolicy",
    "Sleep",
    "is_retriable",
    "network_trouble",
    "plain_client",
    "retry_after_seconds",
]

Sleep = Callable[[float], None]
Clock = Callable[[], float]

EPSILON = 1e-9  # float rounding must not leave a bucket a hair short of a token forever
RETRIABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def is_retriable(status: int) -> bool:
    """Whether an HTTP status is worth sending again after a pause."""
    return status in RETRIABLE_STATUS or status >= 500


def network_trouble(exc: httpx.TransportError) -> str:
    """What went wrong on the network, in words staff can act on (not `ConnectError`)."""
    if isinstance(exc, httpx.ConnectError):
        return _("could not connect (is the network up and the API address right?)")
    if isinstance(exc, httpx.TimeoutException):
        return _("no answer in time")
    return _("the connection broke off")


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The pause a `Retry-After` header asks for, in seconds, or None."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


@dataclass
class RetryPolicy:
    """Bounded exponential backoff with full jitter; `Retry-After` wins when it is longer."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    sleep: Sleep = time.sleep
    rand: Callable[[], float] = random.random

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """How long to wait before try number `attempt + 1` (attempt counts from 1)."""
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1)) * self.rand()
        asked = retry_after
        if asked is not None:
            return min(max(asked, backoff), self.max_delay * 4)
        return backoff


@dataclass
class RateLimiter:
    """A token bucket: `rate` tokens a second, at most `burst` saved up."""

    rate: float
    burst: float = 1.0
    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep
    _tokens: float = field(init=False)
    _stamp: float = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._tokens = self.burst
        self._stamp = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_acquire(self, tokens: float = 1.0) -> bool:
        """Take tokens if they are there now; never waits."""
        with self._lock:
            self._refill()
            if self._tokens >= tokens - EPSILON:
                self._tokens -= tokens
                return True
            return False

    def acquire(self, tokens: float = 1.0) -> None:
        """Take tokens, waiting as long as the rate requires."""
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= tokens - EPSILON:
                    self._tokens -= tokens
                    return
                wait = (tokens - self._tokens) / self.rate
            self.sleep(max(wait, 0.001))  # a float clock cannot move by 1e-15 s

    def drain(self) -> None:
        """Empty the bucket after the server said we were too fast."""
        with self._lock:
            self._refill()
            self._tokens = min(self._tokens, 0.0)


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every marketplace client and transport, as httpx makes it by default.

    Each context loads the whole CA bundle (25-70 ms of CPU); a cycle builds five clients.
    """
    return httpx.create_ssl_context()


def plain_client(timeout: float = 60.0) -> httpx.Client:
    """A client with no base URL and no headers: for signed download URLs, which must never
    see a marketplace credential (the signature in the URL is the whole authorisation).
    Redirects are followed: with no credential on board, none can leak to another host."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=10.0), verify=_tls(), follow_redirects=True
    )


def _untied(response: httpx.Response) -> httpx.Response:
    """The answer, read, without the reference cycle httpx ties it into.

    httpx wraps each answer's stream in one that points back at the answer, so an answer,
    its request and the request's body are freed only by Python's cycle collector, which a
    cycle keeps off outside the pushes (bot.sync `_collector_paused`): at 100,000 SKUs the
    four 4.7 MB Amazon feed uploads and 100 setStock answers could stay until after the
    pushes, and the cycle's peak memory depended on when the collector last ran (issue 8).
    The answer is read whole (`request` never streams) and, once closed, its connection is
    back in the pool, so its body can serve as its stream.
    """
    if response.is_closed:
        response.stream = httpx.ByteStream(response.content)
    return response


class ApiClient:
    """An httpx client with the shared retry policy; one per marketplace."""

    def __init__(
        self,
        channel: str,
        base_url: str,
        *,
        policy: RetryPolicy | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        wrap: Callable[[httpx.BaseTransport], httpx.BaseTransport] | None = None,
    ) -> None:
        """`wrap`: a transport of the adapter's own around the one calls go through (the
        default one, with the shared TLS context, unless `transport` is given)."""
        self.channel = channel
        self.policy = policy or RetryPolicy()
        self.calls = 0
        if wrap is not None:
            transport = wrap(transport or httpx.HTTPTransport(verify=_tls()))
        self._http = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
            headers=dict(headers or {}),
            verify=_tls(),
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        limiter: RateLimiter | None = None,
        auth_headers: Callable[[], Mapping[str, str]] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; return the final answer (2xx or a non-retriable 4xx).

        `auth_headers` is called before every try, so a refreshed token or a fresh
        signature goes out with each retry. Raises `TemporaryError` when the retries
        run out.
        """
        last = "no answer"
        for attempt in range(1, self.policy.attempts + 1):
            if limiter is not None:
                limiter.acquire()
            headers = dict(kwargs.pop("headers", None) or {})
            if auth_headers is not None:
                headers.update(auth_headers())
            self.calls += 1
            response: httpx.Response | None = None
            try:
                response = self._http.request(method, url, headers=headers, **kwargs)
            except httpx.TransportError as exc:  # timeouts included
                last = f"{network_trouble(exc)} ({method} {httpx.URL(url).path})"
            else:
                if not is_retriable(response.status_code):
                    return _untied(response)
                last = _("{error} on {method} {path}").format(
                    error=f"HTTP {response.status_code}",
                    method=method,
                    path=response.request.url.path,
                )
                if response.status_code == 429 and limiter is not None:
                    limiter.drain()
            kwargs["headers"] = headers
            if attempt < self.policy.attempts:
                asked = retry_after_seconds(response.headers) if response is not None else None
                self.policy.sleep(self.policy.delay(attempt, asked))
        raise TemporaryError(
            self.channel,
            _("{problem}, still failing after {tries} tries; the next cycle tries again").format(
                problem=last, tries=self.policy.attempts
            ),
        )
