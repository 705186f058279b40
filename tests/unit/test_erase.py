"""The erasure command: the requests it builds for each store, its refusals, its audit log."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from roles.retention import RetentionPolicy
from roles.retention.erase import (
    ErasureRequest,
    LokiStore,
    Refused,
    VictoriaLogsStore,
    check_request,
    erase,
    logql_query,
    logsql_filter,
    main,
    parse_filter,
)
from roles.retention.selectors import parse_selector

pytestmark = pytest.mark.retention

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
END = datetime(2026, 12, 1, tzinfo=timezone.utc)


def request(selector='{service="sentinel-backend", stream="audit"}', filters=(("memberId", "m-0002"),), **kw) -> ErasureRequest:
    return ErasureRequest(parse_selector(selector), tuple(filters), kw.pop("start", START), kw.pop("end", END), "J. Doe (DPO)", "GDPR #123", **kw)


def test_loki_delete_request_is_a_selector_with_an_exact_json_line_filter():
    method, path, params = LokiStore("http://loki:3100").delete_request(request())
    assert (method, path) == ("POST", "/loki/api/v1/delete")
    assert params["query"] == '{service="sentinel-backend", stream="audit"} |= "\\"memberId\\":\\"m-0002\\""'
    assert params["start"] == "1767225600" and params["end"] == "1796083200"
    # The needle is what the backend's compact JSON line holds, closing quote included.
    line = json.dumps({"msg": "member checked in", "memberId": "m-0002"}, separators=(",", ":"))
    needle = json.loads(params["query"].split("|= ", 1)[1])
    assert needle in line and needle not in line.replace("m-0002", "m-00021")


def test_several_filters_are_anded():
    req = request(filters=(("memberId", "m-0002"), ("site", "hq")))
    assert logql_query(req).count("|=") == 2
    assert logsql_filter(req) == (
        '{service="sentinel-backend", stream="audit"} memberId:="m-0002" site:="hq" _time:[2026-01-01T00:00:00Z, 2026-12-01T00:00:00Z]'
    )


def test_loki_store_sends_the_request_it_builds():
    sent = []

    class Session(requests.Session):
        def request(self, method, url, **kwargs):
            sent.append((method, url, kwargs.get("params")))
            response = requests.Response()
            response.status_code = 204
            return response

    store = LokiStore("http://loki:3100/", session=Session())
    store.submit(request())
    [(method, url, params)] = sent
    assert method == "POST" and url == "http://loki:3100/loki/api/v1/delete"
    assert params == store.delete_request(request())[2]


@pytest.mark.parametrize(
    "req, words",
    [
        (request('{service="sentinel-backend"}'), ["spans every log stream", "--all-streams"]),
        (request('{stream=~"app|security|audit"}'), ["spans every log stream"]),
        (request('{service="sentinel-backend", stream=~".+"}'), ["spans every log stream"]),
        (request('{stream="audti"}'), ["can match no stream", "retention.streams"]),
        (request('{team="payments", stream="audit"}'), ["label 'team' is not a stream label"]),
        (request(filters=()), ["no line filter", "--filter"]),
        (request(start=END, end=START), ["is not before"]),
    ],
)
def test_refusals_name_the_fix(req, words):
    with pytest.raises(Refused) as err:
        check_request(req)
    assert all(w in str(err.value) for w in words), str(err.value)
    assert "Fix:" in str(err.value)


def test_all_streams_allows_a_broad_selector_and_records_the_minimums_it_touches():
    req = request('{service="sentinel-backend"}', all_streams=True)
    warnings = check_request(req, RetentionPolicy().minimums)
    assert any("PIPEDA audit logs" in w for w in warnings) and any("PIPEDA security logs" in w for w in warnings)
    assert check_request(request('{stream="app"}'), RetentionPolicy().minimums) == []
    assert check_request(request('{service="sentinel-backend", stream!="app"}')) == []  # security and audit: named


@pytest.mark.parametrize("text", ["memberId", "=m-1", "member id=1", "memberId=", "a.b=1"])
def test_bad_line_filters_are_refused(text):
    with pytest.raises(Refused):
        parse_filter(text)


def test_cli_refuses_before_touching_any_store(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(requests.Session, "request", lambda *a, **k: pytest.fail("a store was called"))
    audit = tmp_path / "audit.jsonl"
    common = ["--env", "prod", "--from", "2026-01-01T00:00:00Z", "--to", "2026-02-01T00:00:00Z",
              "--requested-by", "x", "--reason", "y", "--audit-log", str(audit), "--url", "http://127.0.0.1:1"]
    assert main(["--selector", '{stream="audit"', "--filter", "memberId=1", *common]) == 2
    assert "does not parse" in capsys.readouterr().err
    assert main(["--selector", "{}", "--filter", "memberId=1", *common]) == 2
    assert main(["--selector", '{service="sentinel-backend"}', "--filter", "memberId=1", *common]) == 2
    assert "--all-streams" in capsys.readouterr().err
    assert not audit.exists()


class FakeStore:
    kind = "victorialogs"

    def __init__(self, polls_until_gone: int):
        self.left, self.submitted, self.pushed = polls_until_gone, 0, []

    def any_left(self, req):
        self.left -= 1
        return self.left >= 0

    def submit(self, req):
        self.submitted += 1
        return "task 1"

    def push_audit(self, line):
        self.pushed.append(line)


def test_erase_waits_until_gone_and_appends_requested_then_completed(tmp_path):
    audit = tmp_path / "audit.jsonl"
    audit.write_text('{"earlier":"entry"}\n')
    store = FakeStore(polls_until_gone=3)
    code = erase(request(), store, audit, "lab", timeout=100, poll=0, sleep=lambda s: None, out=io.StringIO())
    assert code == 0 and store.submitted == 1
    entries = [json.loads(l) for l in audit.read_text().splitlines()]
    assert entries[0] == {"earlier": "entry"}  # never rewritten
    assert [e["status"] for e in entries[1:]] == ["requested", "completed"]
    done = entries[2]
    assert done["requestedBy"] == "J. Doe (DPO)" and done["reason"] == "GDPR #123"
    assert done["selector"] == '{service="sentinel-backend", stream="audit"}' and done["filters"] == ["memberId=m-0002"]
    assert done["from"] == "2026-01-01T00:00:00Z" and done["store"] == "victorialogs"
    assert store.pushed == [done]
    # A later erasure of the same member cannot match the audit line.
    assert json.loads(logql_query(request()).split("|= ", 1)[1]) not in json.dumps(done, separators=(",", ":"))


def test_erase_gives_up_after_the_timeout_and_says_so(tmp_path):
    audit = tmp_path / "audit.jsonl"
    now = iter(range(0, 10_000, 10))
    code = erase(request(), FakeStore(polls_until_gone=10_000), audit, "lab", timeout=30, poll=0,
                 clock=lambda: next(now), sleep=lambda s: None, out=io.StringIO())
    assert code == 1
    assert [json.loads(l)["status"] for l in audit.read_text().splitlines()] == ["requested", "timed_out"]


def test_victorialogs_store_urls():
    calls = []

    class Session(requests.Session):
        def request(self, method, url, **kwargs):
            calls.append((method, url, kwargs))
            response = requests.Response()
            response.status_code = 200
            response._content = b'{"task_id":"17"}' if "run_task" in url else b"[]"
            return response

    store = VictoriaLogsStore("http://127.0.0.1:9428", session=Session())
    assert "task 17" in store.submit(request())
    method, url, kwargs = calls[0]
    assert (method, urlsplit(url).path) == ("POST", "/delete/run_task")
    assert kwargs["data"]["filter"].startswith('{service="sentinel-backend", stream="audit"} memberId:="m-0002"')


def test_loki_checks_a_long_range_in_windows_its_query_limit_accepts():
    store = LokiStore("http://loki:3100")
    windows = store.query_windows(request())  # 2026-01-01 .. 2026-12-01: 334 days
    assert len(windows) == 12
    assert windows[0][0] == 1767225600 * 10**9 and windows[-1][1] == 1796083200 * 10**9
    assert all(b - a <= 30 * 86400 * 10**9 for a, b in windows)
    assert all(windows[i][1] == windows[i + 1][0] for i in range(len(windows) - 1))
