"""The Sentry stand-in receiver speaks enough of Sentry's ingestion API.

All servers bind to 127.0.0.1 on a free port.
"""

from __future__ import annotations

import gzip
import http.client
import json
import subprocess
import sys
import time
import uuid
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lab.receivers.sentry import EnvelopeError, decode_body, make_server, parse_envelope, start_in_thread  # noqa: E402

pytestmark = pytest.mark.sentry

KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def receiver(tmp_path):
    """A receiver on a free loopback port, with a factory for rate-limited ones."""
    servers = []

    def start(**options):
        server = make_server("127.0.0.1", 0, KEY, str(tmp_path / f"events-{len(servers)}.jsonl"), **options)
        start_in_thread(server)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def post(server, path, body: bytes, headers: dict[str, str]) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        conn.close()


def call(server, method, path) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def auth(key: str = KEY) -> dict[str, str]:
    return {"X-Sentry-Auth": f"Sentry sentry_key={key}, sentry_version=7, sentry_client=test/1"}


def envelope(event: dict, *, with_length: bool = True, extra_items: list[tuple[dict, bytes]] = ()) -> bytes:
    payload = json.dumps(event).encode()
    item_header = {"type": "event", **({"length": len(payload)} if with_length else {})}
    parts = [json.dumps({"event_id": event["event_id"]}).encode(), json.dumps(item_header).encode(), payload]
    for header, body in extra_items:
        parts += [json.dumps({**header, "length": len(body)}).encode(), body]
    return b"\n".join(parts) + b"\n"


def an_event(**fields) -> dict:
    return {"event_id": uuid.uuid4().hex, "message": "hello", "level": "error", **fields}


def test_gzip_envelope_is_recorded_listed_and_cleared(receiver):
    server = receiver()
    event = an_event(tags={"correlation_id": "c-1"})
    status, _, body = post(server, "/api/7/envelope/", gzip.compress(envelope(event)), {**auth(), "Content-Encoding": "gzip"})
    assert (status, body) == (200, {"id": event["event_id"]})

    status, listing = call(server, "GET", "/api/events")
    assert status == 200 and listing["count"] == 1
    [record] = listing["events"]
    assert record["project_id"] == "7" and record["type"] == "event"
    assert record["event"]["tags"] == {"correlation_id": "c-1"}

    assert call(server, "DELETE", "/api/events") == (200, {"deleted": 1})
    assert call(server, "GET", "/api/events")[1]["count"] == 0


def test_chunked_gzipped_envelope_then_a_second_request_on_the_same_connection(receiver):
    """As @sentry/node 11 sends: gzip, Transfer-Encoding: chunked, a kept-alive connection."""
    server = receiver()
    event = an_event(tags={"correlation_id": "c-2"})
    compressed = gzip.compress(envelope(event))
    chunks = [compressed[i : i + 100] for i in range(0, len(compressed), 100)]
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        conn.request("POST", "/api/7/envelope/", body=iter(chunks), encode_chunked=True,
                     headers={**auth(), "Content-Encoding": "gzip", "Content-Type": "application/x-sentry-envelope"})
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())) == (200, {"id": event["event_id"]})
        first_socket = conn.sock
        conn.request("GET", "/api/events?type=event")
        response = conn.getresponse()
        listing = json.loads(response.read())
        assert conn.sock is first_socket is not None  # the same connection: not closed, not reopened
    finally:
        conn.close()
    assert response.status == 200 and listing["count"] == 1
    assert listing["events"][0]["event"]["tags"] == {"correlation_id": "c-2"}


def test_a_body_over_the_limit_is_413_and_a_gzip_bomb_too(receiver):
    server = receiver()
    bomb = gzip.compress(b"\n" * (21 * 1024 * 1024))  # 21 MiB of newlines, a few kB compressed
    assert post(server, "/api/7/envelope/", bomb, {**auth(), "Content-Encoding": "gzip"})[0] == 413
    assert server.store.read_all() == []


def test_envelope_items_with_and_without_length_and_binary_attachments():
    event = an_event()
    attachment = b"line one\nline two\n\x00\xff"
    body = envelope(event, extra_items=[({"type": "attachment", "filename": "a.bin"}, attachment)])
    headers, items = parse_envelope(body)
    assert headers == {"event_id": event["event_id"]}
    assert [h["type"] for h, _ in items] == ["event", "attachment"]
    assert json.loads(items[0][1]) == event and items[1][1] == attachment

    _, items = parse_envelope(envelope(event, with_length=False))
    assert json.loads(items[0][1]) == event
    for broken in (b"not json\n", b"{}\n{\"length\": 3}\nabc", b'{}\n{"type":"event","length":99}\n{}'):
        with pytest.raises(EnvelopeError):
            parse_envelope(broken)


def test_deflate_store_endpoint_and_key_in_query(receiver):
    server = receiver()
    event = an_event()
    status, _, _ = post(server, f"/api/7/store/?sentry_key={KEY}&sentry_version=7", zlib.compress(json.dumps(event).encode()), {"Content-Encoding": "deflate"})
    assert status == 200
    assert [r["event_id"] for r in server.store.read_all()] == [event["event_id"]]
    assert decode_body(zlib.compress(b"x")[2:-4], "deflate") == b"x"  # raw deflate too


def test_wrong_or_missing_key_is_401(receiver):
    server = receiver()
    body = envelope(an_event())
    assert post(server, "/api/7/envelope/", body, auth("not-the-key"))[0] == 401
    assert post(server, "/api/7/envelope/", body, {})[0] == 401
    assert post(server, "/api/7/envelope/", b"garbage", auth("not-the-key"))[0] == 401
    assert server.store.read_all() == []


def test_rate_limit_mode_answers_429_with_retry_after(receiver):
    server = receiver(rate_limit=True, retry_after=42)
    status, headers, _ = post(server, "/api/7/envelope/", envelope(an_event()), auth())
    assert status == 429 and headers["Retry-After"] == "42"
    assert server.store.read_all() == []
    # The key is still checked first.
    assert post(server, "/api/7/envelope/", envelope(an_event()), auth("wrong"))[0] == 401


def test_bad_bodies_and_paths(receiver):
    server = receiver()
    assert post(server, "/api/7/envelope/", b"{}\nnot json\n", auth())[0] == 400
    assert post(server, "/api/7/envelope/", b"xx", {**auth(), "Content-Encoding": "zstd"})[0] == 415
    assert post(server, "/api/7/envelope/", b"xx", {**auth(), "Content-Encoding": "gzip"})[0] == 400
    assert post(server, "/api/abc/envelope/", b"{}", auth())[0] == 404
    assert call(server, "GET", "/health") == (200, {"status": "ok", "service": "sentry-standin"})


def test_the_official_sdk_delivers_to_it(receiver):
    import sentry_sdk

    server = receiver()
    client = sentry_sdk.Client(dsn=f"http://{KEY}@127.0.0.1:{server.server_address[1]}/7", default_integrations=False, release="r9", environment="lab")
    try:
        event_id = client.capture_event({"message": "from the sdk", "level": "error", "user": {"id": "u-1"}})
        client.flush(timeout=5)
    finally:
        client.close()
    [record] = server.store.read_all(lambda r: r["type"] == "event")
    assert record["event_id"] == event_id
    assert record["event"]["release"] == "r9" and record["event"]["user"] == {"id": "u-1"}


def test_cli_starts_and_serves(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab.receivers.sentry", "--host", "127.0.0.1", "--port", "0", "--key", KEY, "--store", str(tmp_path / "e.jsonl")],
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )
    try:
        banner = proc.stderr.readline()
        assert "sentry-standin: listening on http://127.0.0.1:" in banner
        port = int(banner.split("http://127.0.0.1:")[1].split()[0])
        deadline = time.monotonic() + 5
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/health")
                assert conn.getresponse().status == 200
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    missing = subprocess.run([sys.executable, "-m", "lab.receivers.sentry", "--port", "0"], cwd=REPO, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert missing.returncode == 2 and "--key and --store are required" in missing.stderr
