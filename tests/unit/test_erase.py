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

    def __init__(self, polls_until_gone: int, matching: int = 7):
        self.left, self.submitted, self.pushed, self.lines = polls_until_gone, 0, [], matching

    def matching(self, req):
        return self.lines

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


def test_nothing_matched_is_said_and_nothing_is_sent(tmp_path):
    audit, out = tmp_path / "audit.jsonl", io.StringIO()
    store = FakeStore(polls_until_gone=0, matching=0)
    assert erase(request(), store, audit, "lab", timeout=100, poll=0, sleep=lambda s: None, out=out) == 0
    assert store.submitted == 0 and "nothing matched" in out.getvalue() and "erased" not in out.getvalue()
    assert [json.loads(l)["status"] for l in audit.read_text().splitlines()] == ["requested", "nothing_matched"]


def test_the_erased_count_is_the_one_read_back(tmp_path):
    out = io.StringIO()
    assert erase(request(), FakeStore(polls_until_gone=1, matching=42), tmp_path / "a.jsonl", "lab", timeout=100, poll=0,
                 sleep=lambda s: None, out=out) == 0
    assert "erased 42 lines" in out.getvalue()


@pytest.mark.parametrize(
    "filters, all_streams, words",
    [
        ((("memberId", "m-0002"), ("memberId", "m-0003")), False, "given twice"),
        ((("level", "info"),), False, "stream label"),
        ((("stream", "audit"),), False, "stream label"),
        ((("service", "sentinel-backend"), ("memberId", "m-0002")), False, "stream label"),
        ((("memberId", "m-0002"), ("correlationId", "c-1"), ("memberId", "m-0002")), False, "given twice"),
    ],
)
def test_a_filter_that_could_never_match_or_matches_too_much_is_refused(filters, all_streams, words):
    from roles.retention.erase import Refused, check_request

    with pytest.raises(Refused, match=words):
        check_request(request(filters=filters, all_streams=all_streams))


def test_a_broad_filter_passes_with_all_streams_on_purpose():
    from roles.retention.erase import check_request

    check_request(request(filters=(("level", "debug"), ("memberId", "m-0002")), all_streams=True))


def test_loki_matches_non_ascii_as_the_node_backend_writes_it():
    req = request(filters=(("memberId", "m-éàü-0002"),))
    needle = json.loads(logql_query(req).split("|= ", 1)[1])
    # JSON.stringify({memberId: "m-éàü-0002"}) keeps the letters as they are.
    assert needle == '"memberId":"m-éàü-0002"' and needle in '{"msg":"x","memberId":"m-éàü-0002"}'


@pytest.mark.parametrize("argv_tail, words", [(["--env", "../../x/prod"], "invalid choice"), (["--env", "prdo"], "invalid choice"),
                                              (["--env", "lab", "--timeout", "nan"], "between 1 and 86400"),
                                              (["--env", "lab", "--timeout", "inf"], "between 1 and 86400"),
                                              (["--env", "/work/main/inventory/prod.py"], "invalid choice"),
                                              (["--env", "lab", "--timeout", "0"], "between 1 and 86400"),
                                              (["--env", "lab", "--timeout", "-5"], "between 1 and 86400")])
def test_cli_refuses_a_path_for_env_and_a_timeout_that_never_ends(argv_tail, words, capsys):
    from roles.retention.erase import main

    base = ["--selector", '{stream="audit"}', "--filter", "memberId=m-1", "--from", "2026-01-01T00:00:00Z",
            "--to", "2026-02-01T00:00:00Z", "--requested-by", "x", "--reason", "y"]
    with pytest.raises(SystemExit) as caught:
        main(base + argv_tail)
    assert caught.value.code == 2 and words in capsys.readouterr().err
