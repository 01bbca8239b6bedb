"""The local mail outbox: SES sends kept as .eml before moto answers, relayed to real SMTP."""

from __future__ import annotations

import base64
import email
import io
import json
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from framework import local
from framework.local.mail import MailMiddleware, Outbox, Relay, extract
from tests.ports import free_port
from tests.smtp import smtp_server

from .support import REGION


def message(subject: str = "[DRIFT] m: 3 of 30 features drifted") -> bytes:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = "ops@example.com"
    msg["To"] = "risk@example.com, oncall@example.com"
    msg.set_content("text part\n.a line starting with a dot\n")
    msg.add_alternative("<p>html part</p>", subtype="html")
    msg.add_attachment(b'{"status": "drift"}', maintype="application", subtype="json",
                       filename="report.json")
    return msg.as_bytes()


def v1_environ(raw: bytes, **extra: str) -> tuple[dict[str, Any], bytes]:
    form = {"Action": "SendRawEmail", "Version": "2010-12-01", "Source": "ops@example.com",
            "Destinations.member.1": "risk@example.com",
            "Destinations.member.2": "oncall@example.com",
            "RawMessage.Data": base64.b64encode(raw).decode(), **extra}
    body = urlencode(form).encode()
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "QUERY_STRING": "",
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}, body


def test_extract_ses_v1_and_v2_and_nothing_else() -> None:
    raw = message()
    environ, body = v1_environ(raw)
    got = extract(environ, body)
    assert got is not None and got.raw == raw and got.api == "ses:SendRawEmail"
    assert got.source == "ops@example.com"
    assert got.destinations == ("risk@example.com", "oncall@example.com")
    v2 = json.dumps({"Content": {"Raw": {"Data": base64.b64encode(raw).decode()}}}).encode()
    got2 = extract({"REQUEST_METHOD": "POST", "PATH_INFO": "/v2/email/outbound-emails"}, v2)
    assert got2 is not None and got2.raw == raw and got2.api == "sesv2:SendEmail"
    assert got2.source == "ops@example.com"  # from the headers when the call names none
    assert got2.destinations == ("risk@example.com", "oncall@example.com")
    other = urlencode({"Action": "VerifyEmailIdentity", "EmailAddress": "a@b.c"}).encode()
    assert extract({"REQUEST_METHOD": "POST", "PATH_INFO": "/",
                    "CONTENT_TYPE": "application/x-www-form-urlencoded"}, other) is None
    assert extract({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, b"") is None


def test_kept_before_the_app_answers_and_answer_recorded(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox")
    raw = message()
    seen: list[list[Path]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(outbox.messages())  # the .eml exists while moto is still working
        assert environ["wsgi.input"].read() == body  # and the body is intact for moto
        start_response("200 OK", [("Content-Type", "text/xml")])
        return [b"<SendRawEmailResponse><SendRawEmailResult><MessageId>abc-123</MessageId>"
                b"</SendRawEmailResult></SendRawEmailResponse>"]

    def rejecting(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("400 Bad Request", [])
        return [b"<Error><Code>MessageRejected</Code></Error>"]

    environ, body = v1_environ(raw)
    answer = MailMiddleware(app, outbox)(environ, lambda *a: None)
    assert b"abc-123" in b"".join(answer)
    (eml,) = outbox.messages()
    assert seen == [[eml]] and eml.read_bytes() == raw
    meta = outbox.meta(eml)
    assert meta["status"] == 200 and meta["message_id"] == "abc-123"
    assert meta["destinations"] == ["risk@example.com", "oncall@example.com"]

    environ, body = v1_environ(message("second"))
    MailMiddleware(rejecting, outbox)(environ, lambda *a: None)
    first, second = outbox.messages()  # names sort by time: oldest first
    assert first == eml and outbox.meta(second)["status"] == 400
    assert "MessageRejected" in outbox.meta(second)["rejected"]
    assert not list((tmp_path / "outbox").glob(".*"))  # no temporary files left


def test_relay_to_a_real_smtp_server(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox")
    raw = message()
    with smtp_server() as smtp:
        relay = Relay(outbox, "127.0.0.1", smtp.port, attempts=2, backoff_s=0.05)
        relay.start()
        environ, _ = v1_environ(raw)

        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            start_response("200 OK", [])
            return [b"<MessageId>m-1</MessageId>"]

        MailMiddleware(app, outbox, relay)(environ, lambda *a: None)
        (got,) = smtp.wait(1)
        relay.close()
    assert got.mail_from == "ops@example.com"
    assert got.rcpt_tos == ["risk@example.com", "oncall@example.com"]
    assert got.data.replace(b"\r\n", b"\n") == raw  # same bytes, in SMTP's CRLF form
    received = email.message_from_bytes(got.data, policy=policy.default)
    kept = email.message_from_bytes(raw, policy=policy.default)
    assert [p.get_content_type() for p in received.walk()] == \
        [p.get_content_type() for p in kept.walk()]
    text = received.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text == kept.get_body(("plain",)).get_content()  # dot-stuffing undone
    (eml,) = outbox.messages()
    deadline = time.monotonic() + 5
    while outbox.meta(eml).get("relay", {}).get("state") != "sent":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert "relayed to 127.0.0.1" in (outbox.dir / "relay.log").read_text()


def test_unreachable_relay_keeps_the_message_and_logs(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox")
    port = free_port()  # nothing listens there
    relay = Relay.from_env(outbox, {"MLOPS_SMTP_RELAY": f"127.0.0.1:{port}",
                                    "MLOPS_SMTP_RELAY_ATTEMPTS": "3",
                                    "MLOPS_SMTP_RELAY_BACKOFF_S": "0.01"})
    assert relay is not None and relay.attempts == 3
    from framework.local.mail import OutgoingMessage

    raw = message()
    eml = outbox.keep(OutgoingMessage(raw, "ops@example.com", ("risk@example.com",),
                                      "ses:SendRawEmail"))
    assert relay.deliver(eml) is False
    log = (outbox.dir / "relay.log").read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in log if "failed" in line] == [
        f"attempt {i}/3 to 127.0.0.1:{port} failed: ConnectionRefusedError: "
        "[Errno 111] Connection refused" for i in (1, 2, 3)]
    assert "NOT relayed after 3 attempt(s)" in log[-1]
    assert outbox.meta(eml)["relay"]["state"] == "failed"
    assert eml.read_bytes() == raw  # never lost


def test_daemon_keeps_ses_raw_sends_in_its_outbox(aws: local.LocalAWS) -> None:
    conn = local.connection(aws, REGION)
    ses = conn.client("ses")
    ses.verify_email_identity(EmailAddress="ops@example.com")
    before = set(Outbox(aws.home / "outbox").messages())
    raw = message("[OK] daemon test")
    sent = ses.send_raw_email(Source="ops@example.com", Destinations=["risk@example.com"],
                              RawMessage={"Data": raw})
    (eml,) = set(Outbox(aws.home / "outbox").messages()) - before
    assert eml.read_bytes() == raw
    meta = json.loads(eml.with_suffix(".json").read_text())
    assert meta["message_id"] == sent["MessageId"] and meta["status"] == 200
    assert meta["destinations"] == ["risk@example.com"]
