"""The collector agent reads both log line shapes the backend may write: the contract's
(traceId, spanId, msg, ts, level) and stock Winston's with the OpenTelemetry instrumentation
(trace_id, span_id, message, timestamp, level; no `fatal`), and ships both with the
contract's names. The rendered config is checked, then run by the real collector binary
(the lab mirror's otelcol-contrib) on a file holding one line of each shape."""

from __future__ import annotations

import gzip
import json
import subprocess
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from roles.otel_collector import WINSTON_FIELDS, config_text, rotated_log_files
from tests.ports import free_port
from tests.tracing_binaries import binary
from tests.unit.test_tracing import _by_role, collector_configs

pytestmark = pytest.mark.tracing

TRACE_ID, SPAN_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
CONTRACT_LINE = {
    "ts": "2026-12-05T19:00:00.123Z", "level": "error", "msg": "request failed", "service": "sentinel-backend",
    "env": "lab", "stream": "app", "correlationId": "c-contract", "traceId": TRACE_ID, "spanId": SPAN_ID,
}
WINSTON_LINE = {  # winston.format.json() with format.timestamp(), trace context from instrumentation-winston
    "level": "http", "message": "request completed", "timestamp": "2026-12-05T19:00:01.456Z", "service": "sentinel-backend",
    "env": "lab", "stream": "app", "correlationId": "c-winston", "trace_id": TRACE_ID, "span_id": SPAN_ID, "trace_flags": "01",
}


def unix_nanos(rfc3339: str) -> str:
    """OTLP/JSON's timeUnixNano of a line's time (milliseconds, UTC)."""
    millis = round(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000)
    return str(millis * 1_000_000)


def agent_receiver() -> dict:
    _, agent = _by_role(collector_configs("lab"))
    return agent["receivers"]["file_log"]


def test_the_parser_renames_winstons_fields_to_the_contracts_before_parsing_them():
    operators = agent_receiver()["operators"]
    kinds = [op["type"] for op in operators]
    renames = [op for op in operators if op["type"] == "move" and op["to"].startswith("attributes")]
    assert {(op["from"], op["to"]) for op in renames} == {
        ('attributes["trace_id"]', 'attributes["traceId"]'), ('attributes["span_id"]', 'attributes["spanId"]'),
        ('attributes["message"]', 'attributes["msg"]'), ('attributes["timestamp"]', 'attributes["ts"]'),
    }
    for op in renames:  # a line that has the contract's name keeps it
        assert op["if"].startswith(op["to"] + " == nil")
    # Renamed first, then parsed by the contract's names: one parser per field serves both shapes.
    last_rename = max(i for i, op in enumerate(operators) if op in renames)
    assert kinds.index("time_parser") > last_rename and kinds.index("trace_parser") > last_rename
    severity = next(op for op in operators if op["type"] == "severity_parser")
    assert set(severity["mapping"].values()) == {"http", "verbose", "silly"}  # Winston's levels the preset lacks
    assert set(WINSTON_FIELDS) == {"traceId", "spanId", "msg", "ts"}


class _OtlpJsonLogs(BaseHTTPRequestHandler):
    """Takes OTLP/HTTP JSON log exports, in place of the gateways, and keeps their records."""

    records: list[dict] = []

    def do_POST(self):  # noqa: N802
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        body = json.loads(gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw)
        for resource_logs in body.get("resourceLogs", []):
            resource = {a["key"]: a["value"].get("stringValue") for a in resource_logs["resource"].get("attributes", [])}
            for scope_logs in resource_logs.get("scopeLogs", []):
                for record in scope_logs.get("logRecords", []):
                    attributes = {a["key"]: a["value"].get("stringValue") for a in record.get("attributes", [])}
                    self.records.append({**record, "resource": resource, "attributes": attributes})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format, *args):  # noqa: A002
        pass


@pytest.fixture
def run_agent(tmp_path):
    """Runs the rendered agent config on a log file; exports go to a local OTLP/JSON capture."""
    otelcol = binary("otelcol", tmp_path / "bin")
    capture = ThreadingHTTPServer(("127.0.0.1", 0), _OtlpJsonLogs)
    _OtlpJsonLogs.records = []
    threading.Thread(target=capture.serve_forever, daemon=True).start()
    procs = []

    def run(lines: list[dict], rotated: dict[str, list[dict]] | None = None) -> list[dict]:
        """Ship `lines` from backend.log and each of `rotated` (file name -> lines) beside it."""
        log = tmp_path / "backend.log"
        log.write_text("".join(json.dumps(line) + "\n" for line in lines))
        for name, more in (rotated or {}).items():
            (tmp_path / name).write_text("".join(json.dumps(line) + "\n" for line in more))
            lines = [*lines, *more]
        _, agent = _by_role(collector_configs("lab"))
        text = yaml.safe_dump(agent, sort_keys=False).replace("/var/lib/otelcol", str(tmp_path))
        config = yaml.safe_load(text)
        (tmp_path / "file_storage").mkdir(exist_ok=True)
        # The role's patterns, for this directory.
        config["receivers"]["file_log"]["include"] = rotated_log_files(str(log))
        # The capture takes OTLP/HTTP JSON in place of the gateway pool's gRPC, with the role's queue and
        # retries, in both pipelines; plain, as the receiver for the backend (TLS: tests/e2e/test_tls_otlp_local.py).
        gateways = config["exporters"].pop("otlp/gateways")
        config["exporters"]["otlp_http/capture"] = {
            "endpoint": f"http://127.0.0.1:{capture.server_address[1]}", "encoding": "json",
            "sending_queue": {**gateways["sending_queue"], "batch": {**gateways["sending_queue"]["batch"], "min_size": 1}},
            "retry_on_failure": gateways["retry_on_failure"],
        }
        for pipeline in config["service"]["pipelines"].values():
            pipeline["exporters"] = ["otlp_http/capture" if e == "otlp/gateways" else e for e in pipeline["exporters"]]
        local = config["receivers"]["otlp/local"]["protocols"]["http"]
        local.pop("tls")
        local["endpoint"] = f"127.0.0.1:{free_port()}"
        config["extensions"]["health_check"]["endpoint"] = f"127.0.0.1:{free_port()}"
        config["service"]["telemetry"]["metrics"] = {"level": "none"}
        path = tmp_path / "agent.yaml"
        path.write_text(config_text(config))
        procs.append(subprocess.Popen([otelcol, f"--config={path}"], stdout=subprocess.DEVNULL, stderr=open(tmp_path / "otelcol.log", "w")))
        deadline = time.monotonic() + 60
        while len(_OtlpJsonLogs.records) < len(lines):
            if procs[-1].poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the collector shipped {len(_OtlpJsonLogs.records)} of {len(lines)} lines:\n"
                            + (tmp_path / "otelcol.log").read_text()[-3000:])
            time.sleep(0.2)
        return sorted(_OtlpJsonLogs.records, key=lambda r: r["attributes"]["correlationId"])

    yield run
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)
    capture.shutdown()
    capture.server_close()


def test_the_real_collector_ships_both_shapes_with_the_contracts_names(run_agent):
    contract, winston = run_agent([CONTRACT_LINE, WINSTON_LINE])
    for record in (contract, winston):
        assert (record["traceId"], record["spanId"]) == (TRACE_ID, SPAN_ID)  # the record's trace context
        assert (record["attributes"]["traceId"], record["attributes"]["spanId"]) == (TRACE_ID, SPAN_ID)
        assert not {"trace_id", "span_id", "message", "timestamp"} & set(record["attributes"])
        assert {k: record["resource"][k] for k in ("service", "env", "stream")} == {"service": "sentinel-backend", "env": "lab", "stream": "app"}
    assert (contract["attributes"]["msg"], winston["attributes"]["msg"]) == ("request failed", "request completed")
    assert contract["timeUnixNano"] == unix_nanos(CONTRACT_LINE["ts"])
    assert winston["timeUnixNano"] == unix_nanos(WINSTON_LINE["timestamp"])
    assert (contract["severityText"], contract["severityNumber"]) == ("error", 17)
    assert (winston["severityText"], winston["resource"]["level"]) == ("http", "http")
    assert 5 <= winston["severityNumber"] < 9  # Winston's http: below info, not unparsed (0)


def test_the_agent_reads_rotated_files_as_python_and_winston_name_them(run_agent, tmp_path):
    """Winston's File transport rotates backend.log to backend1.log; Python's handler to backend.log.1."""
    live = {**CONTRACT_LINE, "correlationId": "c-live"}
    winston = {**WINSTON_LINE, "correlationId": "c-winston-rotated"}
    python = {**CONTRACT_LINE, "correlationId": "c-python-rotated"}
    other = {**CONTRACT_LINE, "correlationId": "c-other-file"}
    (tmp_path / "other.log").write_text(json.dumps(other) + "\n")  # not the backend's: never read
    records = run_agent([live], rotated={"backend1.log": [winston], "backend.log.1": [python]})
    assert [r["attributes"]["correlationId"] for r in records] == ["c-live", "c-python-rotated", "c-winston-rotated"]
