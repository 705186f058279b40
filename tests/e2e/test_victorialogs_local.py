"""The real VictoriaLogs binary on 127.0.0.1: its flag check, the enforcement job and the erasure command.

Marker `retention`, no lab needed: the binary comes from the lab mirror's release
tarball (skipped until `python -m lab.artifacts build victorialogs` made it). It
proves against the real store what the lab e2e tests prove through the whole path:
the flags file is refused when a value is bad, the LogsQL the toolkit writes parses,
the daily job deletes app lines older than 30 days and keeps security and audit lines
of the same age, and an erasure removes one member's lines and keeps the other's.
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import tarfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from lab import paths
from roles._service.artifacts import load_versions
from tests.ports import free_port
from roles._service.quoting import parse_env_file, sh_quote
from roles.retention import RetentionPolicy
from roles.retention.erase import main as erase_main
from roles.victorialogs import BINARY, check_flags_command, enforcement_script, flags_env
from roles.victorialogs.settings import VictoriaLogsSettings

pytestmark = pytest.mark.retention
POLICY = RetentionPolicy()


def _binary(directory: Path) -> Path:
    version = (load_versions().get("victorialogs") or {}).get("version", "*")
    pattern = f"VictoriaMetrics/VictoriaLogs/releases/download/v{version}/victoria-logs-linux-amd64-v{version}.tar.gz"
    tarball = next(iter(sorted(paths.MIRROR_DIR.glob(pattern))), None)
    if tarball is None:
        pytest.skip("no VictoriaLogs artifact in the lab mirror yet (python -m lab.artifacts build victorialogs)")
    with tarfile.open(tarball) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(BINARY))
        tar.extract(member, directory, filter="data")
    return directory / member.name


def _check(binary: Path, env_text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    flags = tmp_path / "flags.env"
    flags.write_text(env_text)
    # Substituted as the building block does: quoted shell words.
    command = check_flags_command().replace("{bin}", sh_quote(str(binary.parent))).replace("{path}", sh_quote(str(flags)))
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vl")
    binary = _binary(tmp)
    port = free_port(range(19400, 20000))  # 19000-19999: experiments on 127.0.0.1
    # model_construct: a store in a temp dir, which the settings refuse for a host (data dirs live under /var/lib...).
    settings = VictoriaLogsSettings.model_construct(**{**VictoriaLogsSettings().model_dump(), "port": port, "storage_path": str(tmp / "data")})
    env = parse_env_file(flags_env(settings, POLICY, f"127.0.0.1:{port}"))  # as systemd reads it
    process = subprocess.Popen(
        [str(binary), "-envflag.enable", "-envflag.prefix=VL_"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(f"{url}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            pytest.fail("VictoriaLogs did not answer /health")
        yield binary, settings, url, tmp
    finally:
        process.terminate()
        process.wait(timeout=30)


def count(url: str, logsql: str) -> int:
    response = requests.post(f"{url}/select/logsql/query", data={"query": f"{logsql} | stats count() rows"}, timeout=30)
    response.raise_for_status()
    rows = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    return int(rows[0]["rows"]) if rows else 0


def push(url: str, lines: list[dict]) -> None:
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    requests.post(
        f"{url}/insert/jsonline",
        params={"_stream_fields": "service,env,stream,level", "_msg_field": "msg", "_time_field": "ts"},
        data=body,
        timeout=30,
    ).raise_for_status()
    requests.get(f"{url}/internal/force_flush", timeout=30).raise_for_status()


def line(ts: datetime, stream: str, run: str, **fields) -> dict:
    return {"ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "level": "info", "msg": f"{stream} line",
            "service": "sentinel-backend", "env": "test", "stream": stream, "testRun": run, **fields}


def test_the_flags_file_is_checked_by_the_binary(store, tmp_path):
    binary, settings, _, _ = store
    good = _check(binary, flags_env(settings, POLICY), tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = _check(binary, flags_env(settings, POLICY).replace("VL_retentionPeriod=365d", "VL_retentionPeriod=forever"), tmp_path)
    assert bad.returncode != 0 and "retentionPeriod" in bad.stdout + bad.stderr


def test_the_running_store_reports_the_policys_retention(store):
    _, _, url, _ = store
    flags = requests.get(f"{url}/flags", timeout=10).text
    assert '-retentionPeriod="365d"' in flags and '-delete.enable="true"' in flags


def test_the_enforcement_job_deletes_old_app_lines_and_keeps_old_security_and_audit(store):
    _, settings, url, tmp = store
    run, now = uuid.uuid4().hex, datetime.now(timezone.utc)
    old = now - timedelta(days=40)
    push(url, [line(old, "app", run), line(old, "app", run), line(old, "security", run), line(old, "audit", run),
               line(now - timedelta(days=1), "app", run)])
    mine = f'testRun:="{run}"'
    assert count(url, mine) == 5
    script = tmp / "enforce-retention.sh"
    script.write_text(enforcement_script(settings, POLICY))
    result = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "retention class default" in result.stdout and "deletes finished" in result.stdout
    assert count(url, f'{{stream="app"}} {mine}') == 1  # the 1-day-old one
    assert count(url, f'{{stream="app"}} {mine} _time:>30d') == 0
    assert count(url, f'{{stream="security"}} {mine}') == 1
    assert count(url, f'{{stream="audit"}} {mine}') == 1


def test_erasure_removes_one_members_lines_and_keeps_the_others(store, tmp_path, capsys):
    _, _, url, _ = store
    run, now = uuid.uuid4().hex, datetime.now(timezone.utc)
    a, b = f"m-{run[:6]}-a", f"m-{run[:6]}-b"
    push(url, [line(now - timedelta(minutes=i), "audit", run, memberId=m) for m in (a, b) for i in range(4)])
    mine = f'testRun:="{run}"'
    assert count(url, mine) == 8
    audit = tmp_path / "audit.jsonl"
    code = erase_main([
        "--env", "lab", "--url", url, "--store", "victorialogs",
        "--selector", '{service="sentinel-backend", stream="audit"}', "--filter", f"memberId={a}",
        "--from", (now - timedelta(hours=1)).isoformat(), "--to", (now + timedelta(minutes=1)).isoformat(),
        "--requested-by", "unit test", "--reason", f"run {run}", "--audit-log", str(audit), "--timeout", "60",
    ])
    assert code == 0, capsys.readouterr()
    assert count(url, f'{mine} memberId:="{a}"') == 0
    assert count(url, f'{mine} memberId:="{b}"') == 4
    entries = [json.loads(l) for l in audit.read_text().splitlines()]
    assert [e["status"] for e in entries] == ["requested", "completed"] and entries[1]["foundBefore"] == 4
    assert "erased 4 lines" in capsys.readouterr().out
    requests.get(f"{url}/internal/force_flush", timeout=30)
    assert count(url, f'{{service="sentinel-toolkit", stream="audit"}} reason:="run {run}"') == 1


def _otlp_request(line: dict, labels_in_log_attributes_too: bool = False) -> bytes:
    """An OTLP logs request shaped as the collector gateway must send it (docs/contract.md section 4)."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    def kv(key, value):
        return KeyValue(key=key, value=AnyValue(string_value=str(value)))

    labels = ("service", "env", "stream", "level")
    record = LogRecord(
        time_unix_nano=time.time_ns(), severity_text=line["level"], body=AnyValue(string_value=json.dumps(line, separators=(",", ":"))),
        attributes=[kv(k, v) for k, v in line.items() if labels_in_log_attributes_too or k not in labels],
        trace_id=bytes.fromhex(line["traceId"]), span_id=bytes.fromhex(line["spanId"]),
    )
    resource = Resource(attributes=[kv(k, line[k]) for k in labels] + [kv("service.name", line["service"])])
    return ExportLogsServiceRequest(resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=[record])])]).SerializeToString()


def test_the_gateways_otlp_shape_gives_four_stream_labels_and_searchable_ids(store):
    _, _, url, _ = store
    trace_id, correlation = uuid.uuid4().hex, f"corr-{uuid.uuid4().hex[:10]}"
    line = {"ts": "2026-01-01T00:00:00.000Z", "level": "info", "msg": "request completed", "service": "sentinel-backend",
            "env": "test", "stream": "app", "correlationId": correlation, "traceId": trace_id, "spanId": uuid.uuid4().hex[:16]}
    requests.post(f"{url}/insert/opentelemetry/v1/logs", data=_otlp_request(line), timeout=30,
                  headers={"Content-Type": "application/x-protobuf", "VL-Stream-Fields": "service,env,stream,level"}).raise_for_status()
    requests.get(f"{url}/internal/force_flush", timeout=30).raise_for_status()
    response = requests.post(f"{url}/select/logsql/query", data={"query": f'traceId:="{trace_id}"'}, timeout=30)
    [found] = [json.loads(l) for l in response.text.splitlines() if l.strip()]
    assert found["_stream"] == '{env="test",level="info",service="sentinel-backend",stream="app"}'
    assert found["correlationId"] == correlation and found["trace_id"] == trace_id
    assert json.loads(found["_msg"]) == line  # the body is the raw line
    assert count(url, f'correlationId:="{correlation}" {{stream="app"}}') == 1


def test_the_class_filters_of_a_richer_policy_parse_in_logsql(store):
    """Priorities, regexes and raw strings: every filter the job could send is valid LogsQL for the real store."""
    from roles.retention import StreamRule
    from roles.retention.logsql import classes

    _, _, url, _ = store
    policy = RetentionPolicy(
        default_period="30d",
        streams=(
            StreamRule(name="errors", selector='{stream="app", level=~"error|fatal"}', period="90d", priority=2),
            StreamRule(name="backend", selector='{service=~`sentinel-.*`, stream!="security", stream!="audit"}', period="60d", priority=1),
            StreamRule(name="security", selector='{stream="security"}', period="365d", priority=3),
            StreamRule(name="audit", selector='{stream="audit"}', period="365d", priority=3),
        ),
    )
    policy = RetentionPolicy.model_validate(policy.model_dump())  # the model validators, as preflight runs them
    for retention_class in classes(policy):
        response = requests.post(f"{url}/select/logsql/query", data={"query": f"{retention_class.expired()} | stats count() rows"}, timeout=30)
        assert response.status_code == 200, (retention_class.expired(), response.text)


def test_the_clusters_flags_files_are_checked_by_the_binary(store, tmp_path):
    """stores.mode scalable: the storage node's and the access tier's flags (roles/victorialogs/cluster.py) are flags
    the pinned binary knows, with values it parses; a typo in one is refused."""
    from roles.victorialogs import cluster, env_file

    binary, settings, _, _ = store
    storage = _check(binary, flags_env(settings, POLICY, storage_node=True), tmp_path)
    assert storage.returncode == 0, storage.stdout + storage.stderr
    access_flags = cluster.access_flags(["10.0.0.12:9430", "10.0.0.15:9430"], "127.0.0.1:9431")
    access = _check(binary, env_file(access_flags, "access"), tmp_path)
    assert access.returncode == 0, access.stdout + access.stderr
    typo = _check(binary, env_file({**access_flags, "storageNode.tls": "yes please"[:3]}, "access"), tmp_path)
    assert typo.returncode != 0 and "storageNode.tls" in typo.stdout + typo.stderr
