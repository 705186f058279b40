"""The lab's alert-receiver stand-ins answer like the real services and record what they get."""

import gzip
import http.client
import json
import smtplib

import pytest
import requests

from lab.receivers import pagerduty, slack, smtp
from lab.receivers.recording import start_in_thread
from lab.receivers.store import JsonLinesStore
from tests.ports import free_port

pytestmark = pytest.mark.alerting
KEY = "0123456789abcdef0123456789abcdef"


def serve(server):
    start_in_thread(server)
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


@pytest.fixture
def slack_url(tmp_path):
    server = slack.make_server("127.0.0.1", 0, str(tmp_path / "s.jsonl"), ["http://x/services/T1/BCRIT/tok"])
    yield serve(server)
    server.shutdown()


def test_slack_accepts_a_known_webhook_and_records_it(slack_url):
    reply = requests.post(f"{slack_url}/services/T1/BCRIT/tok", json={"channel": "#critical-alerts", "text": "hi"}, timeout=5)
    assert (reply.status_code, reply.text) == (200, "ok")
    got = requests.get(f"{slack_url}/api/received?channel=%23critical-alerts", timeout=5).json()
    assert got["count"] == 1
    assert got["received"][0]["webhook"] == "BCRIT"
    assert "tok" not in json.dumps(got)  # the token is a secret
    assert requests.delete(f"{slack_url}/api/received", timeout=5).json() == {"deleted": 1}


def test_slack_takes_a_chunked_gzipped_post_and_keeps_the_connection(slack_url):
    host, port = slack_url.removeprefix("http://").split(":")
    message = json.dumps({"channel": "#critical-alerts", "text": "chunked"}).encode()
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("POST", "/services/T1/BCRIT/tok", body=iter([message[:10], message[10:]]), encode_chunked=True,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"ok")
        first_socket = conn.sock
        conn.request("POST", "/services/T1/BCRIT/tok", body=gzip.compress(message),
                     headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"ok")
        assert conn.sock is first_socket is not None  # one kept-alive connection for both
    finally:
        conn.close()
    got = requests.get(f"{slack_url}/api/received", timeout=5).json()
    assert [r["message"]["text"] for r in got["received"]] == ["chunked", "chunked"]


def test_a_body_in_an_unknown_encoding_is_415(slack_url):
    reply = requests.post(f"{slack_url}/services/T1/BCRIT/tok", data=b"xx", headers={"Content-Encoding": "zstd"}, timeout=5)
    assert reply.status_code == 415
    assert requests.get(f"{slack_url}/api/received", timeout=5).json()["count"] == 0


def test_slack_refuses_unknown_webhooks_and_empty_messages(slack_url):
    assert requests.post(f"{slack_url}/services/T1/BCRIT/wrong", json={"text": "x"}, timeout=5).status_code == 404
    assert requests.post(f"{slack_url}/services/T1/BCRIT/tok", json={"channel": "#a"}, timeout=5).text == "no_text"
    assert requests.get(f"{slack_url}/api/received", timeout=5).json()["count"] == 0


@pytest.fixture
def pagerduty_url(tmp_path):
    server = pagerduty.make_server("127.0.0.1", 0, str(tmp_path / "p.jsonl"), KEY)
    yield serve(server)
    server.shutdown()


def trigger(**changes):
    event = {"routing_key": KEY, "event_action": "trigger", "dedup_key": "g1",
             "payload": {"summary": "backend down", "source": "Alertmanager", "severity": "critical"}}
    event.update(changes)
    return event


def test_pagerduty_accepts_a_valid_event_with_202(pagerduty_url):
    reply = requests.post(f"{pagerduty_url}/v2/enqueue", json=trigger(), timeout=5)
    assert reply.status_code == 202
    assert reply.json() == {"status": "success", "message": "Event processed", "dedup_key": "g1"}
    record = requests.get(f"{pagerduty_url}/api/received", timeout=5).json()["received"][0]
    assert record["event_action"] == "trigger" and "routing_key" not in record["event"]


@pytest.mark.parametrize(
    "event, error",
    [
        (trigger(routing_key="f" * 32), "Invalid routing key"),
        (trigger(event_action="explode"), "event_action"),
        (trigger(payload={"summary": "x", "source": "y", "severity": "urgent"}), "payload.severity"),
        (trigger(event_action="resolve", dedup_key=None), "dedup_key"),
    ],
)
def test_pagerduty_refuses_invalid_events_with_400(pagerduty_url, event, error):
    reply = requests.post(f"{pagerduty_url}/v2/enqueue", json=event, timeout=5)
    assert reply.status_code == 400
    assert reply.json()["status"] == "invalid event"
    assert any(error in e for e in reply.json()["errors"])
    assert requests.get(f"{pagerduty_url}/api/received", timeout=5).json()["count"] == 0


def test_smtp_requires_auth_and_records_mail(tmp_path):
    store = JsonLinesStore(str(tmp_path / "m.jsonl"))
    server = smtp.make_smtp("127.0.0.1", 0, store, "alertmanager", "s3cret")
    server.port = free_port()
    server.start()
    http = smtp.make_http("127.0.0.1", 0, store)
    url = serve(http)
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPSenderRefused):
                client.sendmail("a@x", ["ops@x"], "Subject: no auth\n\nbody")
        with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as client:
            client.login("alertmanager", "s3cret")
            client.sendmail("alertmanager@x", ["ops@x"], "Subject: [Sentinel lab] daily digest\n\nall good")
        got = requests.get(f"{url}/api/received", timeout=5).json()["received"]
        assert [(m["subject"], m["rcpt_tos"], m["authenticated_as"]) for m in got] == [("[Sentinel lab] daily digest", ["ops@x"], "alertmanager")]
        assert got[0]["text"].strip() == "all good"
    finally:
        server.stop()
        http.shutdown()
