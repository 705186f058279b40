"""SMTP stand-in: a real SMTP server for the lab's alert emails (NOT a mail system).

The lab cannot reach a mail relay. This is a real SMTP server (aiosmtpd) that
accepts mail as a smarthost would, optionally only after AUTH (PLAIN or LOGIN,
without TLS since it listens on the lab bridge), and records every message
instead of delivering it. A small HTTP side port lets tests read the records:
``GET /api/received``, ``DELETE /api/received``, ``GET /health``.

    python -m lab.receivers.smtp --host 127.0.0.1 --port 2525 --http-port 9103 \
        --store /tmp/smtp.jsonl [--username U --password-file FILE]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import sys
import warnings
from datetime import datetime, timezone

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from .recording import RecordingHandler, RecordingServer, Reply, read_secret_file, serve
from .store import JsonLinesStore


class RecordingMailHandler:
    """aiosmtpd handler: every accepted message becomes one record."""

    def __init__(self, store: JsonLinesStore) -> None:
        self.store = store

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd naming)
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        parts = {}
        for part in message.walk():
            if part.get_content_maintype() == "text" and part.get_content_subtype() in ("plain", "html"):
                parts.setdefault(part.get_content_subtype(), part.get_content())
        self.store.append({
            "received_at": datetime.now(timezone.utc).isoformat(),
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "authenticated_as": _login_of(session),
            "subject": str(message.get("Subject", "")),
            "headers": {k: str(v) for k, v in message.items()},
            "text": parts.get("plain", ""),
            "html": parts.get("html", ""),
        })
        return "250 Message accepted for delivery"


def _login_of(session) -> str | None:
    auth = getattr(session, "auth_data", None)
    return auth.login.decode() if isinstance(auth, LoginPassword) else None


class PasswordAuthenticator:
    """Accepts one username and password, as a smarthost account would."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (self.username, self.password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


class SmarthostSMTP(SMTP):
    """aiosmtpd's SMTP with the AUTH LOGIN prompts mail servers send ("Username:", "Password:").

    aiosmtpd's own prompts ("User Name", "Password" with a NUL) are refused by
    Go's clients, Alertmanager's included ("unexpected server challenge").
    """

    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"


class SmarthostController(Controller):
    def factory(self):
        return SmarthostSMTP(self.handler, **self.SMTP_kwargs)


class SmtpRecordsHandler(RecordingHandler):
    """The HTTP side port: records only, no POST."""

    service = "smtp-standin"

    def receive(self, path, body):
        return Reply(405, {"error": "send mail over SMTP"}), None


def make_smtp(host: str, port: int, store: JsonLinesStore, username: str | None = None, password: str | None = None) -> Controller:
    """An SMTP server (not started); with a username and password, AUTH is required."""
    auth = {}
    if username and password:
        # Plain AUTH without TLS: the stand-in only listens on the lab bridge or loopback.
        auth = {"authenticator": PasswordAuthenticator(username, password), "auth_required": True, "auth_require_tls": False}
        warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")  # on purpose, said above
    return SmarthostController(RecordingMailHandler(store), hostname=host, port=port, ident="smtp-standin (lab, not a mail system)", **auth)


def make_http(host: str, port: int, store: JsonLinesStore) -> RecordingServer:
    return RecordingServer((host, port), SmtpRecordsHandler, store)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.receivers.smtp", description="SMTP stand-in (records mail, delivers none).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--http-port", type=int, default=9103)
    parser.add_argument("--store", required=True, help="JSON lines file for received messages")
    parser.add_argument("--username", help="require AUTH with this username")
    parser.add_argument("--password-file", help="file holding the password for --username")
    args = parser.parse_args(argv)
    store = JsonLinesStore(args.store)
    smtp = make_smtp(args.host, args.port, store, args.username, read_secret_file(args.password_file))
    smtp.start()
    try:
        http = make_http(args.host, args.http_port, store)
        return serve(http, f"smtp-standin: SMTP on {args.host}:{args.port}"
                           f"{' (AUTH required)' if args.username else ''}, records on http://{args.host}:{args.http_port}/api/received")
    finally:
        smtp.stop()


if __name__ == "__main__":
    sys.exit(main())
