"""Alerts to staff (SPEC.md section 5): once when a problem starts, once when it ends.

A problem is an *incident* with a key and a text:

    oversold:<SKU>     a product's Stock is below 0 (ends when it is 0 or more again)
    channel:<name>     a marketplace failed, for any reason, credentials included
    expiry:<name>      a credential of that marketplace is about to expire
    stop               the bot stopped on a configuration or sheet-structure error
    state              the bot stopped because the state file does not belong to the sheet
    cycle              a cycle failed otherwise (the Sheets API down, an unexpected error)

Each observation says which kinds it covers (a stop says nothing about oversold products, so
their incidents stay open) and which incidents of those kinds are open now. Incidents it cannot
judge (an oversold product whose row is copied or whose Stock cell is unreadable this cycle) are
`held`: left as they are, neither started nor ended.

A marketplace or a cycle that fails, works, fails again... is one incident, not one alert per
cycle: it ends only after `CALM_CYCLES` observations in a row without it (three cycles, ten
minutes at the default interval); a failure before that continues the same incident, and the
count starts again. `compare` is the
pure part; `Incidents` keeps the open ones in a small JSON file next to the state file
(`<state file>.alerts.json`), not in the state file itself: a stop because the state file
does not belong to the sheet, is locked or cannot be opened must be remembered too. A disk
full before that file was ever made leaves it nothing to write over: the full disk, the one
incident open then, is kept as an empty file beside it (`<state file>.alerts.json.disk-full`),
which takes no room on the disk.

Senders post to a Slack-compatible webhook and send e-mail over SMTP (`smtp://` STARTTLS,
`smtps://` TLS, certificates checked against OpenSSL's default trust store, which honours
`SSL_CERT_FILE`). A sender that fails is logged, never raised: an alert never stops a cycle.
Socket timeouts bound each read, not a whole send (a server may trickle a byte at a time), so
every send runs in a worker thread given `DEADLINE` seconds in all (`within`), and is abandoned
after it.
Incidents are recorded as sent even when a sender failed, so a dead channel does not turn
into one alert per cycle once it comes back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from bot.i18n import _

__all__ = [
    "ABANDONED",
    "KINDS",
    "RESERVE",
    "Alerter",
    "Change",
    "Incidents",
    "Mail",
    "Webhook",
    "calm",
    "compare",
    "message",
    "within",
]

log = logging.getLogger("stockbot")

KINDS = ("oversold", "channel", "expiry", "stop", "state", "cycle", "disk")
# A stop for another reason is a new stop: staff must learn what to fix now. Other incidents
# keep their first text (a failing marketplace's message may vary from cycle to cycle).
RESTATED = ("stop", "state")
TIMEOUT = 10.0  # seconds; an alert server that hangs must not hold up the cycle for long
DEADLINE = 15.0  # seconds for a whole alert (all senders at once) or a health-check ping
# Bytes the incidents file is kept at, at least: room to write it over in place on a full disk.
RESERVE = 4096
# The text of the disk incident read back from its mark (`Incidents._marked`): never sent,
# since an incident read as open is not alerted again, and its end has a text of its own.
DISK_MARKED = "the state file's disk is full"
# Kinds that end only after this many observations in a row without them (hysteresis).
CALM_CYCLES = {"channel": 3, "cycle": 3}


@dataclass(frozen=True)
class Change:
    """Incidents that started and ended with one observation, each key with its text."""

    started: dict[str, str] = field(default_factory=dict)
    ended: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.started or self.ended)


def kind(key: str) -> str:
    """The kind of an incident key (`oversold:TEA-001` -> `oversold`)."""
    return key.split(":", 1)[0]


def compare(
    open_now: Mapping[str, str],
    current: Mapping[str, str],
    kinds: Iterable[str],
    held: Iterable[str] = (),
) -> Change:
    """What started and what ended, for the incident kinds this observation covers.

    A stop whose reason changed counts as started again. Keys in `held` do not end.
    """
    covered = set(kinds)
    keep = set(held)
    started = {
        k: v
        for k, v in current.items()
        if k not in open_now or (kind(k) in RESTATED and open_now[k] != v)
    }
    ended = {
        k: v
        for k, v in open_now.items()
        if kind(k) in covered and k not in current and k not in keep
    }
    return Change(started, ended)


def calm(
    open_now: Mapping[str, str],
    current: Mapping[str, str],
    kinds: Iterable[str],
    before: Mapping[str, int],
) -> dict[str, int]:
    """Observations in a row without each open incident of a kind in `CALM_CYCLES`.

    An incident seen again starts from nothing; one this observation does not cover keeps its
    count.
    """
    covered = set(kinds)
    counts: dict[str, int] = {}
    for key in open_now:
        if kind(key) not in CALM_CYCLES or key in current:
            continue
        counts[key] = before.get(key, 0) + (1 if kind(key) in covered else 0)
        if not counts[key]:
            del counts[key]
    return counts


def _started_text(key: str, text: str) -> str:
    what, _sep, name = key.partition(":")
    if what == "oversold":
        return _("Oversold: {sku} has Stock {stock}; check its orders and its count").format(
            sku=name, stock=text
        )
    if what == "channel":
        return _("{channel} is failing: {error}").format(channel=name, error=text)
    if what == "expiry":
        return _("{channel}: {notice}").format(channel=name, notice=text)
    if what == "state":
        return _("stockbot stopped: the state file does not belong to the sheet. {error}").format(
            error=text
        )
    if what == "stop":
        return _("stockbot stopped: {error}").format(error=text)
    return _("stockbot could not finish a cycle: {error}").format(error=text)


def _ended_text(key: str) -> str:
    what, _sep, name = key.partition(":")
    if what == "oversold":
        return _("No longer oversold: {sku} has Stock 0 or more again").format(sku=name)
    if what == "channel":
        return _("{channel} syncs again").format(channel=name)
    if what == "expiry":
        return _("{channel}: the credential warning is over").format(channel=name)
    if what in ("stop", "state"):
        return _("stockbot runs again: what stopped it is fixed")
    if what == "disk":
        return _("the state file can be written again: stockbot finishes its cycles again")
    return _("stockbot finishes its cycles again")


def message(change: Change) -> tuple[str, str]:
    """The subject and the body of the alert for one change."""
    subject = _("stockbot: {started} new problem(s), {ended} resolved").format(
        started=len(change.started), ended=len(change.ended)
    )
    lines = [f"- {_started_text(k, v)}" for k, v in sorted(change.started.items())]
    lines += [f"- {_ended_text(k)}" for k in sorted(change.ended)]
    return subject, "\n".join(lines)


class Incidents:
    """The open incidents, kept in a JSON file so that a restart does not alert again.

    Beside them, `calm`: how many observations in a row went without each open incident that
    ends only after several (`CALM_CYCLES`).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # An empty file whose being there says "the disk incident is open" (`_mark_disk`).
        self.disk_mark = path.with_name(path.name + ".disk-full")
        # What the last `save` could not write (a full disk): newer than the file, so it is
        # what `read` answers until a save succeeds. A long `run` then alerts once per
        # incident even while the file cannot be written.
        self._unsaved: tuple[dict[str, str], dict[str, int]] | None = None

    def load(self) -> dict[str, str]:
        """The open incidents; none when the file is missing or unreadable."""
        return self.read()[0]

    def read(self) -> tuple[dict[str, str], dict[str, int]]:
        """The open incidents and their calm counts; none when the file is missing or unreadable."""
        if self._unsaved is not None:
            return dict(self._unsaved[0]), dict(self._unsaved[1])
        return self._read_file()

    def _read_file(self) -> tuple[dict[str, str], dict[str, int]]:
        """What the file (and the disk incident's mark) say, whatever this process keeps."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return self._marked(), {}
        except (OSError, ValueError) as exc:
            log.warning("alert incidents file %s unreadable (%s); starting afresh", self.path, exc)
            return self._marked(), {}
        if not isinstance(data, dict):
            return self._marked(), {}
        incidents, counts = data.get("open"), data.get("calm")
        if not isinstance(incidents, dict):
            return self._marked(), {}
        # The mark adds the full disk to a file that could not be written over to say it.
        opened = {**self._marked(), **{str(k): str(v) for k, v in incidents.items()}}
        kept: dict[str, int] = {}
        if isinstance(counts, dict):
            kept = {
                str(k): v
                for k, v in counts.items()
                if str(k) in opened and isinstance(v, int) and v > 0
            }
        return opened, kept

    def save(self, incidents: Mapping[str, str], calm: Mapping[str, int] | None = None) -> None:
        """Replace the file at once (a crash leaves the old or the new one, never half).

        The file is kept at least `RESERVE` bytes long (JSON allows the trailing spaces), so
        that on a full disk, where the new file cannot be made, the text can still be written
        over the old one's own bytes, which takes no new space (review attacks 25: a `sync`
        from cron alerted at every run). A crash in the middle of that rewrite leaves a file
        `read` cannot parse: it then starts afresh, at worst alerting once more.
        Raises OSError when it cannot; what it was given is kept for `read` all the same.
        """
        self._unsaved = (dict(incidents), dict(calm or {}))
        data: dict[str, object] = {"open": dict(sorted(incidents.items()))}
        if calm:
            data["calm"] = dict(sorted(calm.items()))
        text = json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8")
        tmp = self.path.with_name(self.path.name + ".tmp")
        failed: OSError | None = None
        try:
            # Room for the text to grow by as much again (review attacks 32: 150 oversold).
            tmp.write_bytes(text.ljust(max(RESERVE, 2 * len(text))))
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            if not self._write_over(text):
                failed = exc
        if failed is None or "disk" not in incidents:
            self._unmark_disk()  # the file says it all, or the full disk is over
        if failed is not None and not self._mark_disk(incidents, calm):
            raise failed
        self._unsaved = None

    def _marked(self) -> dict[str, str]:
        """The disk incident when only its mark is left to say it is open, else nothing."""
        return {"disk": DISK_MARKED} if self.disk_mark.exists() else {}

    def _mark_disk(self, incidents: Mapping[str, str], calm: Mapping[str, int] | None) -> bool:
        """Keep the full disk as an empty file; whether that kept all of `incidents`.

        For a disk full when there are no bytes to write over: no incidents file yet (review
        attacks 32), or one too short for the new text (an earlier version's, review attacks
        37). An empty file takes no data blocks, so it can still be made, and `read` adds the
        full disk to whatever the file says: each `sync` from cron then alerts the full disk
        once, not at every run. The mark goes with the next save that writes the file.
        """
        if "disk" not in incidents:
            return False
        try:
            self.disk_mark.touch()
        except OSError:
            return False
        # The disk incident read back from the mark has the mark's text, not its own.
        return self._read_file() == ({**incidents, "disk": DISK_MARKED}, dict(calm or {}))

    def _unmark_disk(self) -> None:
        """Remove the disk incident's mark (a removal takes no room on a full disk)."""
        with contextlib.suppress(OSError):
            self.disk_mark.unlink(missing_ok=True)

    def saved(self) -> bool:
        """Whether the file is there with its room (so a full disk can still take a rewrite
        of it); an earlier version's file, without the room, is not."""
        if self._unsaved is not None:
            return False
        try:
            return self.path.stat().st_size >= RESERVE
        except OSError:
            return False

    def _write_over(self, text: bytes) -> bool:
        """Write `text` over the file's own bytes, when it is that long; whether it was."""
        try:
            size = self.path.stat().st_size
            if len(text) > size:
                return False
            with open(self.path, "r+b") as f:
                f.write(text.ljust(size))
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            return False
        return True


class Sender(Protocol):
    """Where alerts go."""

    name: str

    def send(self, subject: str, body: str) -> None:
        """Deliver one alert or raise."""


class Webhook:
    """A Slack-compatible incoming webhook: POST of JSON {"text": ...}."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        self._url = url
        self._timeout = timeout

    def send(self, subject: str, body: str) -> None:
        """Post the alert; raise on a transport error or a non-2xx answer."""
        answer = httpx.post(self._url, json={"text": f"{subject}\n{body}"}, timeout=self._timeout)
        if answer.status_code >= 300:
            raise AlertError(f"the webhook answered HTTP {answer.status_code}")


BAD_SMTP_URL = (
    "STOCKBOT_SMTP_URL cannot be read: write it as smtp://user:password@host:587 or "
    "smtps://user:password@host:465, with each @ : / ? # % in the user name or password "
    "percent-encoded (%40 %3A %2F %3F %23 %25; e.g. a password pa#ss as pa%23ss)"
)


class Mail:
    """E-mail through `smtp://user:password@host:587` (STARTTLS) or `smtps://…:465` (TLS).

    An optional `?from=address` sets the sender; otherwise the user name when it is an
    address, else `stockbot@<this host>`.
    """

    name = "e-mail"

    def __init__(self, url: str, to: Sequence[str], timeout: float = TIMEOUT) -> None:
        # Never urllib's own message: it quotes the part it could not read, which may be the
        # password ("Port could not be cast to integer value as '<password>'").
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            parts, port = None, None
        if (
            parts is None
            or parts.scheme not in ("smtp", "smtps")
            or not parts.hostname
            or parts.fragment
            or parts.path not in ("", "/")
        ):
            raise ValueError(BAD_SMTP_URL) from None
        self._tls = parts.scheme == "smtps"
        self._host = parts.hostname
        self._port = port or (465 if self._tls else 587)
        self._user = unquote(parts.username or "")
        self._password = unquote(parts.password or "")
        sender = parse_qs(parts.query).get("from", [""])[0]
        if not sender:
            sender = self._user if "@" in self._user else f"stockbot@{socket.getfqdn()}"
        self._from = sender
        self._to = list(to)
        self._timeout = timeout

    def send(self, subject: str, body: str) -> None:
        """Send the alert; raise on any SMTP, TLS or connection error."""
        mail = EmailMessage()
        mail["From"] = self._from
        mail["To"] = ", ".join(self._to)
        mail["Subject"] = subject
        mail.set_content(body)
        context = ssl.create_default_context()
        server: smtplib.SMTP
        if self._tls:
            server = smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout, context=context
            )
        else:
            server = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        with server:
            if not self._tls:
                server.starttls(context=context)
            if self._user:
                server.login(self._user, self._password)
            server.send_message(mail)


class AlertError(Exception):
    """An alert could not be delivered (logged, never raised out of `Alerter`)."""


def _reason(exc: BaseException) -> str:
    """Why a sender failed, without the URL (which holds secrets)."""
    if isinstance(exc, AlertError):
        return str(exc)
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.HTTPError):
        return f"connection failed ({type(exc).__name__})"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the mail server answered {exc.smtp_code}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc})"
    if isinstance(exc, OSError):
        return f"{type(exc).__name__} ({exc.strerror or exc})"
    return type(exc).__name__


class Abandoned:
    """What `within` gives for a job still running at its deadline."""

    def __repr__(self) -> str:
        return "Abandoned()"


ABANDONED = Abandoned()


def within(seconds: float, jobs: Sequence[Callable[[], object]]) -> list[object]:
    """Run `jobs` at once, each in a worker thread, and wait `seconds` in all.

    Returns per job what it returned, the exception it raised, or `ABANDONED` when it was still
    running at the deadline: it is left to a daemon thread (which ends when its socket times out
    or the process exits) and never holds the caller longer.
    """
    results: list[object] = [ABANDONED] * len(jobs)

    def work(index: int, job: Callable[[], object]) -> None:
        try:
            results[index] = job()
        except Exception as exc:  # handed to the caller, never raised in the thread
            results[index] = exc

    threads = [
        threading.Thread(target=work, args=(i, job), name="stockbot-send", daemon=True)
        for i, job in enumerate(jobs)
    ]
    end = time.monotonic() + seconds
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    # A thread that finishes after the deadline may still set its result: read them once, now.
    done = [not t.is_alive() for t in threads]
    return [result if ok else ABANDONED for result, ok in zip(list(results), done, strict=True)]


class Alerter:
    """Compares each observation with the open incidents and sends what started or ended."""

    def __init__(
        self, incidents: Incidents, senders: Sequence[Sender], deadline: float = DEADLINE
    ) -> None:
        self.incidents = incidents
        self.senders = list(senders)
        self.deadline = deadline
        self._reserved = False

    def observe(
        self,
        current: Mapping[str, str],
        kinds: Iterable[str],
        held: Callable[[str], bool] | None = None,
    ) -> Change:
        """Record the incidents open now (of `kinds`), alert on changes; return them.

        An open incident for which `held` says True is left as it is (it cannot be judged).
        """
        open_now, counts = self.incidents.read()
        kinds = tuple(kinds)
        counts_now = calm(open_now, current, kinds, counts)
        waiting = {
            k for k, n in counts_now.items() if n < CALM_CYCLES[kind(k)] and k not in current
        }
        waiting |= {k for k in open_now if held is not None and held(k)}
        change = compare(open_now, current, kinds, waiting)
        for key in change.ended:
            del open_now[key]
            counts_now.pop(key, None)
        open_now.update(change.started)
        # The file is made at the first observation even with nothing open, so that a disk
        # that fills later can still take the incident it causes (`Incidents.save`).
        reserve = not self._reserved and not self.incidents.saved()
        self._reserved = True
        if change or counts_now != counts or reserve:
            try:
                self.incidents.save(open_now, counts_now)
            except OSError as exc:
                # Kept in memory (`Incidents.read`): this process alerts once per incident
                # still; a new process (a restart, the next `sync`) has only the file.
                log.error("could not keep the alert incidents in %s: %s", self.incidents.path, exc)
        self.send(change)
        return change

    def send(self, change: Change) -> None:
        """Deliver one alert for `change` by every sender at once; failures are only logged."""
        if not change or not self.senders:
            return
        subject, body = message(change)
        outcome = within(
            self.deadline, [partial(sender.send, subject, body) for sender in self.senders]
        )
        for sender, result in zip(self.senders, outcome, strict=True):
            if result is ABANDONED:
                log.error(
                    "alert by %s not sent: no answer within %.0f s, abandoned (the incident is "
                    "recorded all the same)",
                    sender.name,
                    self.deadline,
                )
            elif isinstance(result, BaseException):
                log.error("alert by %s not sent: %s", sender.name, _reason(result))
            else:
                log.info("alert sent by %s: %s", sender.name, subject)
