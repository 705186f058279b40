"""Traces and logs pipelines: the collector, Jaeger and Tempo rendered for every environment,
bad input refused before any host is touched, and the rendered configs accepted by the real
binaries when the lab mirror has them."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from roles._environment import REPO, Environment, host_settings, load_environment
from roles._model import SettingsError
from roles.backend import otlp_endpoint, render_env
from roles.prometheus import scrape_jobs
from tests.environments import context_of, write_inventory
from roles.jaeger import config_text as jaeger_text, render_config as render_jaeger, service_spec as jaeger_spec
from roles.otel_collector import (
    collector_wiring,
    config_text as collector_text,
    render_wired,
    render_config as render_collector,
    service_spec as collector_spec,
)
from roles.otel_collector.settings import TracesSettings
from roles._service import unit_file
from tests.tracing_binaries import binary

pytestmark = pytest.mark.tracing

LAB_URL = "http://10.213.0.1:8080"


LAB_BODY = """
monitoring = [("mon1", {"address": "10.213.0.11"})]
telemetry = [("tel1", {"address": "10.213.0.12"})]
app = [("app1", {"address": "10.213.0.13"})]
"""


def _contexts(env: Environment):
    """Each host's HostContext, as deploy.py hands it to the roles."""
    return {h.name: context_of(env, h.name) for h in env.hosts}


def lab_environment(body: str = LAB_BODY):
    """The lab's three hosts with lab group data, as the generated inventory/lab.py gives them."""
    return _contexts(load_environment(write_inventory(Path(tempfile.mkdtemp()), "lab", body)))


def environment(env: str):
    if env == "lab":
        return lab_environment()
    return _contexts(load_environment(REPO / "inventory" / f"{env}.py"))


def collector_configs(env: str) -> dict[str, dict]:
    """The rendered collector config of every telemetry and app host of `env`."""
    configs = {}
    for name, ctx in environment(env).items():
        if "telemetry" in ctx.groups or "app" in ctx.groups:
            configs[name] = render_wired(ctx.settings.otel_collector, collector_wiring(ctx))
    return configs


def _by_role(configs: dict[str, dict]) -> tuple[dict, dict]:
    gateway = next(c for c in configs.values() if "otlp" in c["receivers"])
    agent = next(c for c in configs.values() if "file_log" in c["receivers"])
    return gateway, agent


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_production_environments_send_traces_to_tempo_and_logs_to_loki(env):
    gateway, _ = _by_role(collector_configs(env))
    tel = f"tel1.{env}.sentinel.internal"
    assert gateway["exporters"]["otlp_http/tempo"]["endpoint"] == f"https://{tel}:4418"
    assert gateway["exporters"]["otlp_http/loki"]["logs_endpoint"] == f"https://{tel}:3100/otlp/v1/logs"
    # The stores admit the gateway's own certificate (issue 22).
    for name in ("otlp_http/tempo", "otlp_http/loki"):
        assert gateway["exporters"][name]["tls"] == {"ca_file": "/etc/otelcol/tls/ca.crt", "cert_file": "/etc/otelcol/tls/otelcol.crt",
                                                      "key_file": "/etc/otelcol/tls/otelcol.key", "min_version": "1.2"}
    assert gateway["exporters"]["prometheus_remote_write"]["endpoint"] == f"https://mon1.{env}.sentinel.internal:9090/api/v1/write"
    assert gateway["exporters"]["prometheus_remote_write"]["tls"]["cert_file"] == "/etc/otelcol/tls/otelcol.crt"
    assert gateway["service"]["pipelines"]["traces"]["exporters"] == ["otlp_http/tempo", "span_metrics"]


def test_lab_sends_traces_to_jaeger_and_logs_to_victorialogs_with_stream_fields():
    gateway, agent = _by_role(collector_configs("lab"))
    assert gateway["exporters"]["otlp_http/jaeger"]["endpoint"] == "https://10.213.0.12:4418"
    assert gateway["exporters"]["otlp_http/jaeger"]["tls"]["cert_file"] == "/etc/otelcol/tls/otelcol.crt"
    logs = gateway["exporters"]["otlp_http/victorialogs"]
    # The lab's log store is a VictoriaLogs cluster: the gateway writes to its own host's storage node.
    assert logs["logs_endpoint"] == "https://10.213.0.12:9430/insert/opentelemetry/v1/logs"
    assert logs["tls"]["cert_file"] == "/etc/otelcol/tls/otelcol.crt"
    assert logs["headers"] == {"VL-Stream-Fields": "service,env,stream,level"}
    # The agent ships to the gateway pool by its name (tests below); the gateways, to the stores.
    assert agent["exporters"]["otlp/gateways"]["endpoint"] == "dns:///otel-gateways.sentinel.internal:4317"


@pytest.mark.parametrize("env", ["dev", "staging", "prod", "lab"])
def test_every_exporter_queues_on_disk_and_nothing_holds_data_in_front_of_the_queue(env):
    """Crash safety: data is on disk (fsync) before its source is told it was taken; batches form in the queue."""
    for config in collector_configs(env).values():
        assert config["extensions"]["file_storage"]["directory"] == "/var/lib/otelcol/file_storage"
        assert config["extensions"]["file_storage"]["fsync"] is True
        assert "batch" not in config["processors"]
        for name, exporter in config["exporters"].items():
            if name.startswith(("otlp_http/", "otlp/")):  # the stores' and the gateway pool's
                queue = exporter["sending_queue"]
                assert (queue["enabled"], queue["storage"], queue["queue_size"], queue["sizer"]) == (True, "file_storage", 10000, "requests"), name
                assert queue["batch"] == {"sizer": "items", "flush_timeout": "1s", "min_size": 2048}, name
                assert exporter["retry_on_failure"]["max_elapsed_time"] == "24h"
        for name, pipeline in config["service"]["pipelines"].items():
            assert pipeline["processors"][0] == "memory_limiter" and "batch" not in pipeline["processors"], name
        # Self-metrics not on 8888: Jaeger's on the telemetry host.
        assert config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]["port"] == 8889


def test_gateway_listens_on_4317_and_4318_and_makes_span_metrics_for_prometheus():
    gateway, _ = _by_role(collector_configs("lab"))
    protocols = gateway["receivers"]["otlp"]["protocols"]
    assert {name: p["endpoint"] for name, p in protocols.items()} == {"grpc": "10.213.0.12:4317", "http": "10.213.0.12:4318"}  # the host's IP
    assert gateway["extensions"]["health_check"]["endpoint"] == "127.0.0.1:13133"  # local only
    span_metrics = gateway["connectors"]["span_metrics"]
    assert span_metrics["namespace"] == "traces.span.metrics"
    assert {"name": "http.route"} in span_metrics["dimensions"]
    assert gateway["service"]["pipelines"]["metrics/span_metrics"]["receivers"] == ["span_metrics"]
    # Each gateway of the pool writes its own series (tests below).
    assert gateway["exporters"]["prometheus_remote_write"]["external_labels"] == {"environment": "lab", "gateway": "tel1"}


TWO_GATEWAYS = LAB_BODY.replace(
    'telemetry = [("tel1", {"address": "10.213.0.12"})]',
    'telemetry = [("tel1", {"address": "10.213.0.12"}), ("tel2", {"address": "10.213.0.15"})]',
)
POOL = "otel-gateways.sentinel.internal"  # otel_collector.gateway_pool_name's default


def test_the_agent_balances_spans_and_log_lines_over_the_gateway_pool():
    """One OTLP/gRPC exporter to the pool's name: every address it resolves to (each gateway's, from
    /etc/hosts), round robin, over TLS with the agent's own certificate, queued on disk."""
    contexts = lab_environment(TWO_GATEWAYS)
    app = contexts["app1"]
    agent = render_wired(app.settings.otel_collector, collector_wiring(app))
    exporter = agent["exporters"]["otlp/gateways"]
    assert exporter["endpoint"] == f"dns:///{POOL}:4317" and exporter["balancer_name"] == "round_robin"
    assert exporter["tls"] == {"ca_file": "/etc/otelcol/tls/ca.crt", "cert_file": "/etc/otelcol/tls/otelcol.crt",
                               "key_file": "/etc/otelcol/tls/otelcol.key", "min_version": "1.2"}
    assert exporter["sending_queue"]["storage"] == "file_storage"
    assert [name for name in agent["exporters"] if name.startswith("otlp")] == ["otlp/gateways"]  # no exporter to a single gateway
    pipelines = agent["service"]["pipelines"]
    assert pipelines["traces"]["receivers"] == ["otlp/local"] and pipelines["traces"]["exporters"] == ["otlp/gateways"]
    assert pipelines["logs"]["receivers"] == ["file_log"] and pipelines["logs"]["exporters"] == ["otlp/gateways"]
    # The pool's name gives every gateway's IP in the agent host's /etc/hosts.
    assert collector_wiring(app).gateway_pool == (POOL, ("10.213.0.12", "10.213.0.15"))


def test_the_agent_takes_the_backends_spans_on_the_loopback_over_tls():
    app = lab_environment()["app1"]
    agent = render_wired(app.settings.otel_collector, collector_wiring(app))
    assert set(agent["receivers"]["otlp/local"]["protocols"]) == {"http"}  # the backend's SDK speaks http/protobuf
    local = agent["receivers"]["otlp/local"]["protocols"]["http"]
    assert local["endpoint"] == "127.0.0.1:4319"
    assert local["tls"] == {"cert_file": "/etc/otelcol/tls/otelcol.crt", "key_file": "/etc/otelcol/tls/otelcol.key",
                            "client_ca_file": "/etc/otelcol/tls/ca.crt", "min_version": "1.2"}
    assert "otlp" not in agent["receivers"]  # no listener on the host's IP


def test_each_gateway_of_the_pool_labels_its_span_metrics_with_its_name():
    """Two gateways writing one series would have Prometheus refuse half their samples."""
    contexts = lab_environment(TWO_GATEWAYS)
    labels = {}
    for name in ("tel1", "tel2"):
        config = render_wired(contexts[name].settings.otel_collector, collector_wiring(contexts[name]))
        labels[name] = config["exporters"]["prometheus_remote_write"]["external_labels"]
    assert labels == {"tel1": {"environment": "lab", "gateway": "tel1"}, "tel2": {"environment": "lab", "gateway": "tel2"}}
    # Without a label (a gateway rendered alone), no `gateway` label: the wiring's name is what sets it.
    from dataclasses import replace

    unlabelled = replace(collector_wiring(contexts["tel1"]), gateway_label="")
    config = render_wired(contexts["tel1"].settings.otel_collector, unlabelled)
    assert config["exporters"]["prometheus_remote_write"]["external_labels"] == {"environment": "lab"}


def test_agent_tails_the_backend_log_keeping_offsets_and_trace_context():
    _, agent = _by_role(collector_configs("lab"))
    receiver = agent["receivers"]["file_log"]
    # The live file and its rotated copies, as Python (backend.log.1) and Winston (backend1.log) name them.
    assert receiver["include"] == ["/var/log/sentinel/backend.log", "/var/log/sentinel/backend.log.[0-9]*", "/var/log/sentinel/backend[0-9]*.log"]
    assert receiver["storage"] == "file_storage"
    operators = receiver["operators"]
    assert operators[0] == {"type": "json_parser"}
    [trace] = [op for op in operators if op["type"] == "trace_parser"]
    assert trace == {"type": "trace_parser", "trace_id": {"parse_from": 'attributes["traceId"]'}, "span_id": {"parse_from": 'attributes["spanId"]'}}
    to_resource = {op["to"] for op in operators if op["type"] == "move" and op["to"].startswith("resource")}
    assert to_resource == {'resource["service"]', 'resource["env"]', 'resource["stream"]', 'resource["level"]'}
    # traceId, spanId, correlationId never reach the resource: they stay attributes (high cardinality, never labels).
    assert not any(op["type"] == "move" and op["to"].startswith("resource") and ("traceId" in op["from"] or "correlationId" in op["from"])
                   for op in operators)
    # Both line shapes (the contract's and stock Winston's): tests/unit/test_agent_log_shapes.py.
    semconv = {a["key"] for a in agent["processors"]["resource/semconv"]["attributes"]}
    assert semconv == {"service.name", "deployment.environment"}


def test_a_host_in_both_groups_runs_one_collector_with_the_file_in_the_gateways_logs_pipeline():
    both = LAB_BODY.replace('app = [("app1", {"address": "10.213.0.13"})]', 'app = ["tel1"]')
    tel = lab_environment(both)["tel1"]
    config = render_wired(tel.settings.otel_collector, collector_wiring(tel))
    assert config["service"]["pipelines"]["logs"]["receivers"] == ["otlp", "file_log"]
    assert config["service"]["pipelines"]["traces"]["receivers"] == ["otlp", "otlp/local"]  # the backend's spans
    assert "otlp/gateways" not in config["exporters"]


def test_collector_unit_validates_the_config_with_the_binary_before_the_swap():
    tel = lab_environment()["tel1"]
    spec = collector_spec(tel.settings.otel_collector, "config", tel.bind("otelcol.health"))
    assert spec.configs[0].validate == "{bin}/otelcol-contrib validate --config={path}"
    unit = unit_file(spec)
    assert "ExecStart=/opt/otelcol/current/otelcol-contrib \\\n    --config=/etc/otelcol/config.yaml \\\n    --feature-gates=stanza.synchronousLogEmitter" in unit
    assert "ReadWritePaths=/var/lib/otelcol" in unit and "ProtectSystem=strict" in unit
    assert spec.ready_url == "http://127.0.0.1:13133/"


def test_jaeger_keeps_spans_for_the_traces_retention_and_receives_otlp_beside_the_gateway():
    tel = lab_environment()["tel1"]
    traces = tel.settings.traces
    binds = {l.name: l.bind for l in tel.topology.on("tel1") if l.component == "jaeger"}
    config = render_jaeger(traces, binds)
    badger = config["extensions"]["jaeger_storage"]["backends"]["badger_main"]["badger"]
    assert badger["ttl"] == {"spans": "72h"}
    assert badger["consistency"] is True  # SyncWrites: what Jaeger acknowledged survives a power cut
    # Nothing between the receiver and the synchronous storage exporter answers before the write.
    assert config["service"]["pipelines"]["traces"] == {"receivers": ["otlp"], "exporters": ["jaeger_storage_exporter"]}
    assert "processors" not in config
    assert badger["directories"] == {"keys": "/var/lib/jaeger/keys", "values": "/var/lib/jaeger/values"}
    # Every listener of Jaeger's own on the loopback: its front holds 4418, 16686 and 8888 on the host's IP.
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "127.0.0.1:14418"
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "127.0.0.1:4417"  # no flow uses it
    assert config["extensions"]["jaeger_query"]["http"]["endpoint"] == "127.0.0.1:16687"
    assert config["extensions"]["jaeger_query"]["grpc"]["endpoint"] == "127.0.0.1:16685"
    prometheus = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    assert (prometheus["host"], prometheus["port"]) == ("127.0.0.1", 18888)
    assert tel.bind("jaeger.otlp_http") == "10.213.0.12:4418" and tel.bind("jaeger.query") == "10.213.0.12:16686"
    spec = jaeger_spec(traces, "config", binds["jaeger.health"])
    assert spec.configs[0].validate == "{bin}/jaeger validate --config={path}"
    assert spec.ready_url == "http://127.0.0.1:13134/status"
    assert TracesSettings(store="jaeger", retention="14d").retention == "14d"
    assert render_jaeger(TracesSettings(store="jaeger", retention="14d"))["extensions"]["jaeger_storage"]["backends"]["badger_main"]["badger"]["ttl"] == {"spans": "336h"}


PIPELINE_JOBS = ("otelcol", "jaeger", "tempo", "victorialogs", "loki")


def _pipeline_jobs(contexts) -> dict[str, list[str]]:
    mon = next(c for c in contexts.values() if "monitoring" in c.groups)
    return {job.name: [t.address for t in job.targets] for job in scrape_jobs(mon.topology, mon.settings) if job.name in PIPELINE_JOBS}


def test_prometheus_scrapes_the_collectors_and_the_chosen_store():
    jobs = _pipeline_jobs(lab_environment())
    assert jobs == {
        "otelcol": ["10.213.0.13:8889", "10.213.0.12:8889"], "jaeger": ["10.213.0.12:8888"], "victorialogs": ["10.213.0.12:9428"],
    }
    prod_jobs = _pipeline_jobs(environment("prod"))
    assert prod_jobs["tempo"] == ["tel1.prod.sentinel.internal:3200"] and "jaeger" not in prod_jobs
    assert prod_jobs["loki"] == ["tel1.prod.sentinel.internal:3100"] and "victorialogs" not in prod_jobs


def test_backend_exports_otlp_to_its_hosts_agent():
    from roles._tls import otlp_sdk_env
    from roles.backend import agent_endpoints
    from roles.backend.tls import TLS

    app = lab_environment()["app1"]
    [endpoint] = agent_endpoints(app)
    assert endpoint == "https://127.0.0.1:4319"  # the agent hands the spans on to the gateway pool
    env = render_env(app.settings, endpoint, "", app.bind_ip("backend.http"), otlp_sdk_env(TLS))
    assert "HOST=10.213.0.13\n" in env  # the backend binds the host's IP
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=https://127.0.0.1:4319" in env
    assert "OTEL_RESOURCE_ATTRIBUTES=deployment.environment=lab,service.version=0.0.0-lab" in env


@pytest.mark.parametrize("env", ["dev", "staging", "prod", "lab"])
def test_the_env_file_exports_over_otlp_only_what_the_agent_takes_from_the_backend(env):
    """Traces go to the agent's OTLP pipeline; the SDK's default metrics and logs exporters are off.

    The agent's receiver for the backend feeds its traces pipeline only (a Node SDK left at its
    default would get 404 on /v1/metrics or /v1/logs), and the backend's logs reach it through the
    file it tails, so an OTLP copy would be a duplicate of every line."""
    from roles.backend import agent_endpoints

    app_name, app = next((name, c) for name, c in environment(env).items() if "app" in c.groups)
    configs = collector_configs(env)
    _, agent = _by_role(configs)
    [endpoint] = agent_endpoints(app)
    assert endpoint == f"https://127.0.0.1:{app.settings.otel_collector.agent_http_port}"
    values = dict(line.split("=", 1) for line in render_env(app.settings, endpoint, "").splitlines() if "=" in line and not line.startswith("#"))
    otlp_in = {name.split("/")[0] for name, p in agent["service"]["pipelines"].items() if "otlp/local" in p["receivers"]}
    assert otlp_in == {"traces"} and "OTEL_TRACES_EXPORTER" not in values  # the SDK's default: OTLP
    assert values["OTEL_METRICS_EXPORTER"] == "none"
    assert values["OTEL_LOGS_EXPORTER"] == "none" and "file_log" in configs[app_name]["receivers"]


# --- bad input, refused before any host is touched -----------------------------------------


def test_an_otlp_base_url_with_a_path_of_its_own_is_kept():
    """Only a trailing signal path is refused (tests/unit/test_preflight.py): a proxy's prefix is a base URL."""
    settings = host_settings("app1", ["app", "lab"], {"artifact_base_url": LAB_URL, "backend": {"otlp_endpoint": "http://tel1:4318/otlp/"}})
    assert otlp_endpoint(settings, ["http://10.213.0.12:4318"]) == "http://tel1:4318/otlp/"


def refusal(data: dict) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        host_settings("tel1", ["telemetry", "lab"], {"artifact_base_url": LAB_URL, **data})
    return caught.value


@pytest.mark.parametrize(
    "data, key, fix",
    [
        ({"traces": {"store": "zipkin"}}, "traces.store", "'tempo' or 'jaeger'"),
        ({"logs": {"store": "elasticsearch"}}, "logs.store", "'loki' or 'victorialogs'"),
        ({"traces": {"retention": "30m"}}, "traces.retention", "1h or more"),
        ({"traces": {"endpoint": "tel1:4418"}}, "traces.endpoint", "full URL"),
        ({"logs": {"endpoint": "not a url"}}, "logs.endpoint", "full URL"),
        ({"otel_collector": {"queue_size": 0}}, "otel_collector.queue_size", "positive size"),
        ({"traces": {"store": ["tempo", "jaeger"]}}, "traces.store", "exactly one"),
        ({"traces": {"store": "tempo,jaeger"}}, "traces.store", "exactly one"),
        ({"logs": {"store": ["loki", "victorialogs"]}}, "logs.store", "exactly one"),
        ({"traces": {"store": "jaeger", "tempo": {"backend": "local"}}}, "traces", "remove traces.tempo"),
        ({"otel_collector": {"memory_limit_mib": 128, "memory_spike_limit_mib": 128}}, "otel_collector", "quarter"),
        # Binds come from the topology now: the old key is unknown, with the close key named.
        ({"traces": {"listen_address": "localhost"}}, "traces.listen_address", "known keys"),
    ],
)
def test_bad_input_is_refused_with_the_key_and_the_fix(data, key, fix):
    err = refusal(data)
    assert err.key == f"host tel1.{key}"
    assert fix in err.fix


# --- the real binaries accept the rendered configs -----------------------------------------


@pytest.fixture(scope="module")
def otelcol(tmp_path_factory):
    return binary("otelcol", tmp_path_factory.mktemp("otelcol"))


@pytest.fixture(scope="module")
def jaeger_bin(tmp_path_factory):
    return binary("jaeger", tmp_path_factory.mktemp("jaeger"))


def _rehome(config: dict, tmp_path) -> dict:
    """The same config with its data directory in tmp_path (validate checks that it exists)."""
    text = yaml.safe_dump(config, sort_keys=False).replace("/var/lib/otelcol", str(tmp_path))
    (tmp_path / "file_storage").mkdir(exist_ok=True)  # the building block creates it before validating
    return yaml.safe_load(text)


@pytest.mark.parametrize("env", ["dev", "staging", "prod", "lab"])
def test_otelcol_validate_accepts_every_rendered_config(env, otelcol, tmp_path):
    for host, config in collector_configs(env).items():
        path = tmp_path / f"{host}.yaml"
        path.write_text(collector_text(_rehome(config, tmp_path)))
        result = subprocess.run([otelcol, "validate", f"--config={path}"], capture_output=True, text=True)
        assert result.returncode == 0, f"{env} {host}: {result.stderr}"


def test_otelcol_validate_refuses_a_typo(otelcol, tmp_path):
    config = next(iter(collector_configs("lab").values()))
    config["processors"]["memory_limiter"]["check_intervall"] = "1s"
    path = tmp_path / "typo.yaml"
    path.write_text(collector_text(config))
    result = subprocess.run([otelcol, "validate", f"--config={path}"], capture_output=True, text=True)
    assert result.returncode != 0 and "check_intervall" in result.stderr


def test_jaeger_validate_accepts_the_rendered_config_and_refuses_a_typo(jaeger_bin, tmp_path):
    config = render_jaeger(lab_environment()["tel1"].settings.traces)
    path = tmp_path / "jaeger.yaml"
    path.write_text(jaeger_text(config))
    result = subprocess.run([jaeger_bin, "validate", f"--config={path}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    config["extensions"]["jaeger_storage"]["backends"]["badger_main"]["badger"]["tll"] = {"spans": "1h"}
    path.write_text(jaeger_text(config))
    result = subprocess.run([jaeger_bin, "validate", f"--config={path}"], capture_output=True, text=True)
    assert result.returncode != 0 and "tll" in result.stderr


def test_prometheus_config_with_the_pipeline_jobs_passes_promtool(tmp_path):
    from roles.prometheus import render_config as render_prometheus, scrape_jobs
    from tests.mirror_binaries import extract

    promtool = extract("prometheus", "promtool", tmp_path)
    mon = lab_environment()["mon1"]
    from tests.tls_files import tls_on_disk

    config = render_prometheus(mon.settings, scrape_jobs(mon.topology, mon.settings), tls=tls_on_disk(tmp_path, "prometheus"))
    assert "job_name: otelcol" in config and "job_name: jaeger" in config
    path = tmp_path / "prometheus.yml"
    path.write_text(config)
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the pool's name in the agent host's /etc/hosts ----------------------------------------


def _pool_hosts_ops(monkeypatch, current: list[str] | None) -> tuple[list, dict]:
    """gateway_pool_hosts with /etc/hosts's pool lines as `current` (the fact); (operations, the fact's arguments)."""
    import pyinfra

    import roles.otel_collector as role
    from tests.unit.op_recorder import Recorder

    calls: list = []
    asked: dict = {}

    def get_fact(fact, **kwargs):
        asked.update(kwargs, fact=fact.__name__)
        return current

    monkeypatch.setattr(role, "server", Recorder(calls, "server", set()))
    monkeypatch.setattr(pyinfra, "host", type("H", (), {"get_fact": staticmethod(get_fact)})())
    role.gateway_pool_hosts(POOL, ("10.213.0.12", "10.213.0.15"))
    return calls, asked


def test_the_pool_lines_are_left_alone_when_etc_hosts_has_them(monkeypatch):
    calls, asked = _pool_hosts_ops(monkeypatch, [f"10.213.0.12 {POOL}", f"10.213.0.15 {POOL}"])
    assert calls == [] and asked["fact"] == "FindInFile" and asked["path"] == "/etc/hosts" and asked["extended_regex"] is True


@pytest.mark.parametrize("current", [[], None, [f"10.213.0.12 {POOL}"], [f"10.213.0.99 {POOL}", f"10.213.0.12 {POOL}"]],
                         ids=["none", "no-file", "a-gateway-missing", "a-gateway-gone"])
def test_the_pool_lines_are_rewritten_and_nothing_else_in_etc_hosts(monkeypatch, tmp_path, current):
    """The operation's commands, run on a copy: the stale pool lines go, every gateway's comes, the rest stays;
    the fact's pattern then finds exactly the wanted lines (the next run changes nothing)."""
    calls, asked = _pool_hosts_ops(monkeypatch, current)
    [(operation, kwargs)] = calls
    assert operation == "server.shell"
    etc_hosts = tmp_path / "hosts"
    others = ["127.0.0.1 localhost", f"10.0.0.7 not-{POOL}", f"10.0.0.8 {POOL}.example.org", f"# 10.0.0.9 {POOL}"]
    etc_hosts.write_text("\n".join([others[0], *(current or []), *others[1:]]) + "\n")
    for command in kwargs["commands"]:
        subprocess.run(["sh", "-c", command.replace("/etc/hosts", str(etc_hosts))], check=True)
    lines = etc_hosts.read_text().splitlines()
    assert lines == [*others, f"10.213.0.12 {POOL}", f"10.213.0.15 {POOL}"]
    found = subprocess.run(["grep", "-E", "-e", asked["pattern"], str(etc_hosts)], capture_output=True, text=True).stdout.splitlines()
    assert found == [f"10.213.0.12 {POOL}", f"10.213.0.15 {POOL}"]
