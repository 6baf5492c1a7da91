"""Alerts (SPEC.md section 5): once when a problem starts, once when it ends, never per cycle.

Against real servers on loopback: a small HTTP server as the Slack-compatible webhook and the
health-check service, and aiosmtpd as the mail server (plain, STARTTLS and TLS, with a
throwaway certificate trusted through SSL_CERT_FILE). smtplib and httpx are not mocked.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bot.alerts import (
    KINDS,
    RESERVE,
    Alerter,
    Change,
    Incidents,
    Mail,
    Webhook,
    calm,
    compare,
    message,
)
from bot.config import Settings
from bot.health import Watch, incidents_path
from bot.sync import CycleReport
from tests.world import HEADER, LOG_HEADER, World, world

ROWS = [
    ["TEA-001", "Sencha", 30, "", "", "", "", "", "", ""],
    ["CUP-001", "Cup", 1, "", "", "", "", "", "", ""],
]
SMTP_PASSWORD = "smtp-SECRET-pw-4711"
HOOK_TOKEN = "T000-SECRET-hook-token"


# -- a webhook / health-check receiver ---------------------------------------------------------
class Receiver:
    """An HTTP server on loopback that records requests and answers with `status`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.status = 200
        self.delay = 0.0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                owner.requests.append((self.command, self.path, body))
                time.sleep(owner.delay)
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        """The `text` of every JSON post."""
        return [json.loads(body)["text"] for method, _, body in self.requests if method == "POST"]

    def paths(self) -> list[str]:
        """The path of every GET."""
        return [path for method, path, _ in self.requests if method == "GET"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# -- a mail server -----------------------------------------------------------------------------
class Inbox:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = data.login == b"alerts@shop.example" and data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for localhost / 127.0.0.1 and its key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _server_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert[0]), str(cert[1]))
    return context


@pytest.fixture
def starttls(cert: tuple[Path, Path]) -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), _free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=_server_context(cert),
        require_starttls=True,
        authenticator=_authenticate,
    )
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def smtps(cert: tuple[Path, Path]) -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), _free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        ssl_context=_server_context(cert),
        authenticator=_authenticate,
        auth_require_tls=False,  # the whole connection is TLS already
    )
    controller.start()
    yield inbox, port
    controller.stop()


def _smtp_url(scheme: str, port: int) -> str:
    return f"{scheme}://alerts%40shop.example:{SMTP_PASSWORD}@localhost:{port}"


# -- the pure part -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("open_now", "current", "kinds", "started", "ended"),
    [
        ({}, {"oversold:A": "-1"}, ["oversold"], {"oversold:A": "-1"}, {}),
        ({"oversold:A": "-1"}, {"oversold:A": "-2"}, ["oversold"], {}, {}),
        ({"oversold:A": "-1"}, {}, ["oversold"], {}, {"oversold:A": "-1"}),
        ({"oversold:A": "-1"}, {"stop": "x"}, ["stop"], {"stop": "x"}, {}),
        ({"channel:yahoo": "503"}, {"channel:yahoo": "401"}, ["channel"], {}, {}),
        ({"stop": "no tab Log"}, {"stop": "no Stock"}, ["stop"], {"stop": "no Stock"}, {}),
        ({"stop": "x"}, {}, ["oversold", "stop"], {}, {"stop": "x"}),
    ],
    ids=[
        "new oversold starts",
        "still oversold is not sent again",
        "oversold back to 0 ends",
        "a stop leaves oversold products open",
        "a marketplace's changing message is not a new incident",
        "a stop for another reason is a new stop",
        "a cycle that ran ends the stop",
    ],
)
def test_incidents_start_and_end_only_on_change(
    open_now: dict[str, str],
    current: dict[str, str],
    kinds: list[str],
    started: dict[str, str],
    ended: dict[str, str],
) -> None:
    assert compare(open_now, current, kinds) == Change(started, ended)


def test_a_failing_channel_ends_only_after_three_calm_cycles_and_a_relapse_continues_it() -> None:
    failing = {"channel:yahoo": "503"}
    counts: dict[str, int] = {}
    for cycle in range(1, 3):
        counts = calm(failing, {}, KINDS, counts)
        assert counts == {"channel:yahoo": cycle}
    # A relapse inside the window continues the incident: the count starts again.
    assert calm(failing, failing, KINDS, counts) == {}
    # Observations that do not cover channels (a stop) leave the count as it is.
    assert calm(failing, {"stop": "x"}, ["stop"], {"channel:yahoo": 2}) == {"channel:yahoo": 2}
    # Oversold products end at once: no count.
    assert calm({"oversold:A": "-1"}, {}, KINDS, {}) == {}


def test_alerter_keeps_a_flapping_channel_as_one_incident(tmp_path: Path, hook: Receiver) -> None:
    alerter = Alerter(Incidents(tmp_path / "a.json"), [Webhook(hook.url)])
    for _ in range(4):
        alerter.observe({"channel:yahoo": "503"}, KINDS)
        alerter.observe({}, KINDS)
    assert len(hook.texts()) == 1
    alerter.observe({}, KINDS)
    assert len(hook.texts()) == 1
    ended = alerter.observe({}, KINDS)
    assert ended.ended == {"channel:yahoo": "503"}
    assert "yahoo syncs again" in hook.texts()[1]
    assert json.loads((tmp_path / "a.json").read_text()) == {"open": {}}


def test_an_oversold_product_that_cannot_be_judged_keeps_its_incident(
    tmp_path: Path, hook: Receiver
) -> None:
    alerter = Alerter(Incidents(tmp_path / "a.json"), [Webhook(hook.url)])
    alerter.observe({"oversold:CUP-001": "-1"}, KINDS)
    assert alerter.observe({}, KINDS, held=lambda key: key == "oversold:CUP-001") == Change()
    assert alerter.observe({}, KINDS).ended == {"oversold:CUP-001": "-1"}


def test_a_bad_smtp_url_is_refused_without_quoting_it() -> None:
    for url, secret in (
        ("smtp://alerts%40shop.example:Qz7Kx9#mT2@127.0.0.1:587", "Qz7Kx9"),
        ("smtp://u:123#x9@127.0.0.1:587", "x9@"),  # the '#' hides the host: 'u', port 123
        ("smtp://u:p9/ss@127.0.0.1:587", "p9"),
        ("smtp://u:p9?ss@127.0.0.1", "p9"),
    ):
        with pytest.raises(ValueError) as raised:
            Mail(url, ["staff@shop.example"])
        assert "%23" in str(raised.value)  # it says how to write the URL
        assert secret not in str(raised.value)
    assert Mail("smtp://u:pa%23ss@127.0.0.1:587", ["a@b.example"])._password == "pa#ss"


def test_every_sender_gets_one_deadline_in_all(tmp_path: Path) -> None:
    class Stuck:
        name = "stuck"

        def send(self, subject: str, body: str) -> None:
            time.sleep(5)

    alerter = Alerter(Incidents(tmp_path / "a.json"), [Stuck(), Stuck()], deadline=0.5)
    started = time.monotonic()
    change = alerter.observe({"channel:yahoo": "503"}, KINDS)
    assert time.monotonic() - started < 2
    assert change.started == {"channel:yahoo": "503"}
    assert Incidents(tmp_path / "a.json").load() == {"channel:yahoo": "503"}


# -- webhook and e-mail ------------------------------------------------------------------------
def test_webhook_gets_slack_compatible_json_text(hook: Receiver, tmp_path: Path) -> None:
    alerter = Alerter(Incidents(tmp_path / "a.json"), [Webhook(hook.url + "/services/x")])
    alerter.observe({"oversold:CUP-001": "-1"}, ["oversold"])
    (method, path, body), *_ = hook.requests
    assert (method, path) == ("POST", "/services/x")
    assert set(json.loads(body)) == {"text"}
    assert "CUP-001" in json.loads(body)["text"] and "-1" in json.loads(body)["text"]


def test_email_goes_through_starttls_with_the_certificate_verified(
    starttls: tuple[Inbox, int], cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, port = starttls
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    Mail(_smtp_url("smtp", port), ["staff@shop.example", "boss@shop.example"]).send(
        "subject line", "body line"
    )
    (mail,) = inbox.messages
    assert mail["Subject"] == "subject line"
    assert mail["To"] == "staff@shop.example, boss@shop.example"
    assert mail["From"] == "alerts@shop.example"
    assert "body line" in mail.get_payload()


def test_email_goes_through_smtps(
    smtps: tuple[Inbox, int], cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, port = smtps
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    Mail(_smtp_url("smtps", port), ["staff@shop.example"]).send("s", "b")
    assert [m["Subject"] for m in inbox.messages] == ["s"]


def test_email_refuses_a_server_whose_certificate_is_not_trusted(
    starttls: tuple[Inbox, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, port = starttls
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-bundle.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    with pytest.raises(ssl.SSLCertVerificationError):
        Mail(_smtp_url("smtp", port), ["staff@shop.example"]).send("s", "b")
    assert inbox.messages == []


def test_failing_alert_channels_are_logged_and_never_raise(
    hook: Receiver, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slow = Receiver()
    slow.delay = 2.0
    hook.status = 500
    down = _free_port()  # nothing listens there
    alerter = Alerter(
        Incidents(tmp_path / "a.json"),
        [
            Webhook(hook.url + "/" + HOOK_TOKEN),
            Webhook(slow.url + "/" + HOOK_TOKEN, timeout=0.5),
            Mail(f"smtp://u:{SMTP_PASSWORD}@127.0.0.1:{down}", ["staff@shop.example"]),
        ],
    )
    try:
        with caplog.at_level(logging.INFO, logger="stockbot"):
            change = alerter.observe({"channel:yahoo": "HTTP 503"}, ["channel"])
    finally:
        slow.close()
    assert change.started == {"channel:yahoo": "HTTP 503"}
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "alert by webhook not sent: the webhook answered HTTP 500" in errors
    assert "alert by webhook not sent: timed out" in errors
    assert any(e.startswith("alert by e-mail not sent: ConnectionRefusedError") for e in errors)
    assert HOOK_TOKEN not in caplog.text and SMTP_PASSWORD not in caplog.text
    # Recorded all the same: the next cycle does not alert again.
    assert alerter.observe({"channel:yahoo": "HTTP 503"}, ["channel"]) == Change()


def test_many_problems_at_once_make_one_alert(tmp_path: Path, hook: Receiver) -> None:
    alerter = Alerter(Incidents(tmp_path / "a.json"), [Webhook(hook.url)])
    alerter.observe({f"oversold:SKU-{i}": "-1" for i in range(30)}, ["oversold"])
    assert len(hook.texts()) == 1
    subject, body = message(Change({f"oversold:SKU-{i}": "-1" for i in range(30)}, {}))
    assert "30 new problem(s)" in subject and body.count("\n") == 29


# -- whole cycles --------------------------------------------------------------------------------
@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path, ("rakuten",)) as w:
        w.create_sheet(ROWS)
        for item in ("TEA-001", "CUP-001"):
            w.markets["rakuten"].add_item(item, 0)
        yield w


def test_oversold_alert_once_when_it_starts_and_once_when_back_to_zero(
    w: World, hook: Receiver
) -> None:
    w.env["STOCKBOT_ALERT_WEBHOOK_URL"] = hook.url
    watch = Watch(w.settings())
    watch.synced(w.sync(), {})
    w.markets["rakuten"].place_order([("CUP-001", 2)], force=True)
    for _ in range(3):
        watch.synced(w.sync(), {})
    assert w.row("CUP-001")["Stock"] == -1
    (started,) = hook.texts()
    assert "Oversold: CUP-001 has Stock -1" in started
    # A restart (a new process: a new Watch) remembers the incident.
    w.set_stock("CUP-001", 0)
    Watch(w.settings()).synced(w.sync(), {})
    watch.synced(w.sync(), {})
    assert len(hook.texts()) == 2
    assert "No longer oversold: CUP-001" in hook.texts()[1]
    assert json.loads(incidents_path(w.settings().state_path).read_text()) == {"open": {}}


def test_a_failing_marketplace_alerts_once_pings_fail_and_alerts_its_recovery(
    w: World, hook: Receiver
) -> None:
    health = Receiver()
    w.env["STOCKBOT_ALERT_WEBHOOK_URL"] = hook.url + "/hook"
    w.env["STOCKBOT_HEALTHCHECK_URL"] = health.url + "/ping/abc"
    try:
        assert w.run_cli("sync").returncode == 0
        w.markets["rakuten"].fail(503, times=1000, match="searchOrder")
        assert w.run_cli("sync").returncode == 1
        assert w.run_cli("sync").returncode == 1
        assert len(hook.texts()) == 1
        assert "rakuten is failing" in hook.texts()[0] and "503" in hook.texts()[0]
        with w.markets["rakuten"].lock:
            w.markets["rakuten"].faults.clear()
        # Recovered after three good cycles in a row (a flapping marketplace is one incident).
        for _ in range(2):
            assert w.run_cli("sync").returncode == 0
            assert len(hook.texts()) == 1
        assert w.run_cli("sync").returncode == 0
        assert health.paths() == [
            "/ping/abc",
            "/ping/abc/fail",
            "/ping/abc/fail",
            "/ping/abc",
            "/ping/abc",
            "/ping/abc",
        ]
    finally:
        health.close()
    assert len(hook.texts()) == 2
    assert "rakuten syncs again" in hook.texts()[1]


def test_no_secret_reaches_an_alert(
    w: World,
    hook: Receiver,
    starttls: tuple[Inbox, int],
    cert: tuple[Path, Path],
) -> None:
    inbox, port = starttls
    w.env["STOCKBOT_RAKUTEN_LICENSE_KEY"] = "SECRET-licence-0123456789"
    w.env["STOCKBOT_ALERT_WEBHOOK_URL"] = f"{hook.url}/services/{HOOK_TOKEN}"
    w.env["STOCKBOT_ALERT_EMAIL_TO"] = "staff@shop.example"
    w.env["STOCKBOT_SMTP_URL"] = _smtp_url("smtp", port)
    w.env["SSL_CERT_FILE"] = str(cert[0])
    done = w.run_cli("sync")
    assert done.returncode == 1
    (mail,) = inbox.messages
    (text,) = hook.texts()
    assert "rakuten is failing" in text
    everything = text + mail.as_string() + done.stdout + done.stderr
    for secret in ("SECRET-licence-0123456789", HOOK_TOKEN, SMTP_PASSWORD):
        assert secret not in everything
    service_secret = w.env["STOCKBOT_RAKUTEN_SERVICE_SECRET"]
    assert service_secret not in everything


def test_a_dead_health_check_or_alert_server_never_fails_the_sync(w: World, hook: Receiver) -> None:
    hook.status = 500
    w.env["STOCKBOT_ALERT_WEBHOOK_URL"] = hook.url
    w.env["STOCKBOT_HEALTHCHECK_URL"] = f"http://127.0.0.1:{_free_port()}/ping"
    # Placed seconds before the first cycle: counted in Stock already (SPEC.md 4, a clean
    # start). An order in the first fetch's own second would count as new, and a sync started
    # at once can fetch within the same second as the order.
    store = w.markets["rakuten"]
    store.place_order([("CUP-001", 2)], placed_at=store.now() - dt.timedelta(seconds=5), force=True)
    assert w.run_cli("sync").returncode == 0
    done = w.run_cli("sync")
    assert done.returncode == 0, done.stderr
    assert w.row("CUP-001")["Stock"] == 1  # nothing applied twice, nothing lost


def test_a_stop_on_a_broken_sheet_is_shown_once_in_the_sheet_and_alerted_once(
    w: World, hook: Receiver
) -> None:
    health = Receiver()
    broken = [h for h in HEADER if h != "Stock"]
    w.sheet_id = w.sheets.create_spreadsheet(
        "broken",
        {
            "Inventory": [broken, ["TEA-001", "Sencha", "", "", "", "", "", "", ""]],
            "Log": [LOG_HEADER],
            "Channels": [["Channel", "Enabled", "Last sync", "Last error"], ["rakuten", True]],
        },
    )
    w.env["STOCKBOT_SHEET_ID"] = w.sheet_id
    w.env["STOCKBOT_ALERT_WEBHOOK_URL"] = hook.url
    w.env["STOCKBOT_HEALTHCHECK_URL"] = health.url
    try:
        for _ in range(2):
            done = w.run_cli("sync")
            assert done.returncode == 2
            assert "'Stock'" in done.stderr
        assert health.paths() == ["/fail", "/fail"]
    finally:
        health.close()
    (error,) = w.log("error")
    assert "'Stock'" in error["Detail"] and error["Time"]
    channels = w.sheets.get_values(w.sheet_id, "Channels")
    assert "'Stock'" in str(channels[1][3])
    (text,) = hook.texts()
    assert "stockbot stopped" in text and "'Stock'" in text
    assert w.markets["rakuten"].requests_to("bulk-upsert") == []
    # Staff put the header back: the next sync runs and says so.
    w.sheets.set_value(w.sheet_id, "Inventory", "J1", "Stock")
    w.sheets.set_value(w.sheet_id, "Inventory", "J2", 3)
    assert w.run_cli("sync").returncode == 0
    assert len(hook.texts()) == 2 and "stockbot runs again" in hook.texts()[1]
    row = w.sheets.get_values(w.sheet_id, "Channels")[1]
    assert [*row, "", "", "", ""][3] in ("", None)  # the stop's text is gone


def test_a_configuration_stop_is_alerted_and_shown_in_the_sheet(w: World, hook: Receiver) -> None:
    w.env["STOCKBOT_CHANNELS"] = ""
    w.env["STOCKBOT_ALERT_WEBHOOK_URL"] = hook.url
    w.sheets.set_value(w.sheet_id, "Channels", "A2", "rakuten")
    assert w.run_cli("sync").returncode == 2
    (text,) = hook.texts()
    assert "STOCKBOT_CHANNELS is empty" in text
    (error,) = w.log("error")
    assert "STOCKBOT_CHANNELS is empty" in error["Detail"]


def test_a_settings_file_without_alerts_sends_nothing(w: World) -> None:
    watch = Watch(Settings.from_env(w.env))
    assert watch.alerter.senders == [] and watch.health_url == ""
    watch.synced(CycleReport(failed_channels={"rakuten": "down"}), {})
    assert json.loads(incidents_path(w.settings().state_path).read_text()) == {
        "open": {"channel:rakuten": "down"}
    }


def test_the_incidents_file_is_made_at_the_first_observation_with_room_to_be_written_over(
    tmp_path: Path,
) -> None:
    """Nothing open yet: the file is made all the same, 4 KB long, so that a disk that fills
    later can still take the incident it causes, written over in place (review attacks 25).
    Its trailing spaces do not stop it being read, and a later save keeps the room."""
    incidents = Incidents(tmp_path / "state.sqlite3.alerts.json")
    alerter = Alerter(incidents, [])
    alerter.observe({}, ("oversold",))
    assert incidents.path.stat().st_size >= RESERVE and incidents.read() == ({}, {})
    alerter.observe({"oversold:TEA-001": "-2"}, ("oversold",))
    assert incidents.path.stat().st_size >= RESERVE
    assert Incidents(incidents.path).load() == {"oversold:TEA-001": "-2"}
