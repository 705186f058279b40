"""OTLP over TLS to the collector gateways and the agents, as rendered: the gateway's receivers, the agents'
exporter to the gateway pool and their receiver for the backend, the backend's env file, and the certificates behind them (roles/_tls.py, roles/otel_collector,
roles/backend). The live checks are tests/e2e/test_tls_otlp.py (the lab) and test_tls_otlp_local.py."""

from __future__ import annotations

import pytest
from cryptography import x509

from roles._pki import identity_uri
from roles._tls import OTLP_TLS_LISTENERS, is_tls
from roles.backend import agent_endpoints, env_values, uses_agent_tls
from roles.otel_collector import TLS, collector_certificate, collector_wiring, render_wired, service_spec, config_text
from tests.environments import context_of, environment, three_hosts
from tests.unit.test_tracing import collector_configs, lab_environment

pytestmark = [pytest.mark.tls, pytest.mark.tracing]

SDK_VARIABLES = ("OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_KEY")


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    return environment(tmp_path_factory.mktemp("inv"), "dev", three_hosts("dev"))


@pytest.mark.parametrize("env", ["dev", "staging", "prod", "lab"])
def test_every_gateway_receiver_serves_tls_1_2_and_requires_a_client_certificate_of_the_ca(env):
    gateways = [c for c in collector_configs(env).values() if "otlp" in c["receivers"]]
    assert gateways
    for config in gateways:
        protocols = config["receivers"]["otlp"]["protocols"]
        assert set(protocols) == {"grpc", "http"}
        for name, protocol in protocols.items():
            assert protocol["tls"] == {
                "cert_file": "/etc/otelcol/tls/otelcol.crt", "key_file": "/etc/otelcol/tls/otelcol.key",
                "client_ca_file": "/etc/otelcol/tls/ca.crt", "min_version": "1.2",
            }, (env, name)


@pytest.mark.parametrize("env", ["dev", "staging", "prod", "lab"])
def test_every_agent_sends_to_the_gateway_pool_over_tls_with_its_own_certificate(env):
    agents = [c for c in collector_configs(env).values() if "file_log" in c["receivers"]]
    assert agents
    for config in agents:
        exporter = config["exporters"]["otlp/gateways"]
        # gRPC over TLS to the pool's name (the gateways' certificates carry it); no plaintext scheme.
        assert exporter["endpoint"] == "dns:///otel-gateways.sentinel.internal:4317"
        assert exporter["tls"] == {"ca_file": TLS.ca, "cert_file": TLS.cert, "key_file": TLS.key, "min_version": "1.2"}
        assert "insecure" not in exporter["tls"] and "insecure_skip_verify" not in exporter["tls"]


@pytest.mark.parametrize("env", ["dev", "staging", "prod", "lab"])
def test_every_agent_serves_the_backend_tls_1_2_on_the_loopback_and_requires_a_client_certificate(env):
    agents = [c for c in collector_configs(env).values() if "file_log" in c["receivers"]]
    assert agents
    for config in agents:
        local = config["receivers"]["otlp/local"]["protocols"]["http"]
        assert local["endpoint"] == "127.0.0.1:4319"
        assert local["tls"] == {"cert_file": TLS.cert, "key_file": TLS.key, "client_ca_file": TLS.ca, "min_version": "1.2"}, env


def test_the_gateway_and_agent_listeners_are_tls_listeners():
    assert set(OTLP_TLS_LISTENERS) == {"gateway.otlp_grpc", "gateway.otlp_http", "agent.otlp_http"}
    assert all(is_tls(name) for name in OTLP_TLS_LISTENERS)
    assert not is_tls("otelcol.health") and not is_tls("otelcol.metrics")


def _names(leaf):
    cert = x509.load_pem_x509_certificate(leaf.cert_pem.encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)), {str(i) for i in san.get_values_for_type(x509.IPAddress)}, \
        set(san.get_values_for_type(x509.UniformResourceIdentifier))


def test_the_gateways_certificate_names_its_host_and_the_pool_and_the_agents_names_the_loopback(dev):
    tel, app = context_of(dev, "tel1.dev"), context_of(dev, "app1.dev")
    dns, ips, uris = _names(collector_certificate(tel, collector_wiring(tel)))
    listener = dev.topology.listener("tel1.dev", "gateway.otlp_http")
    pool = tel.settings.otel_collector.gateway_pool_name
    # The agents connect by the pool's name (dns:///<pool>:4317); an operator's tool by the host's.
    assert dns == {listener.address, pool} and pool == "otel-gateways.sentinel.internal"
    assert {listener.ip, "127.0.0.1"} <= ips
    assert uris == {identity_uri("dev", "tel1.dev", "gateway")}  # also its remote-write identity towards Prometheus
    # The agent's: a server for the backend on the loopback (agent.otlp_http), and the agent's identity
    # towards the gateways; no pool name (only gateways answer to it).
    dns, ips, uris = _names(collector_certificate(app, collector_wiring(app)))
    local = dev.topology.listener("app1.dev", "agent.otlp_http")
    assert local.bind == "127.0.0.1:4319"
    assert (dns, ips, uris) == ({"app1.dev"}, {"10.9.0.13", "127.0.0.1"}, {identity_uri("dev", "app1.dev", "agent")})


def test_a_changed_pool_name_reaches_the_gateways_certificate_and_the_agents_exporter(tmp_path):
    pool = "collectors.example.internal"
    body = three_hosts("dev").replace('{"ip": "10.9.0.12"}', f'{{"ip": "10.9.0.12", "otel_collector": {{"gateway_pool_name": {pool!r}}}}}')
    changed = environment(tmp_path, "dev", body)
    tel, app = context_of(changed, "tel1.dev"), context_of(changed, "app1.dev")
    dns, _, _ = _names(collector_certificate(tel, collector_wiring(tel)))
    assert pool in dns and "otel-gateways.sentinel.internal" not in dns
    wiring = collector_wiring(app)
    assert wiring.gateway_endpoint == f"dns:///{pool}:4317" and wiring.gateway_pool == (pool, ("10.9.0.12",))


def test_the_collectors_key_is_0640_and_checked_against_its_certificate_before_the_swap(dev):
    from roles._tls import tls_files
    from roles.otel_collector import NAME

    for host in ("tel1.dev", "app1.dev"):
        ctx = context_of(dev, host)
        wiring = collector_wiring(ctx)
        settings = ctx.settings.otel_collector
        files = tls_files(NAME, collector_certificate(ctx, wiring))
        spec = service_spec(settings, config_text(render_wired(settings, wiring)), ctx.bind("otelcol.health"), files)
        by_dest = {c.dest: c for c in spec.configs}
        assert by_dest[TLS.key].mode == "0640" and "openssl pkey" in by_dest[TLS.key].validate
        assert "openssl verify" in by_dest[TLS.cert].validate
        assert "validate --config" in by_dest["/etc/otelcol/config.yaml"].validate  # the binary's own check stays
        assert TLS.dir in spec.config_dirs
        # The files land before the config that names them.
        dests = [c.dest for c in spec.configs]
        assert dests.index(TLS.key) < dests.index("/etc/otelcol/config.yaml")


def test_the_backends_env_file_names_its_certificate_as_the_sdk_reads_it():
    from roles.backend.tls import TLS as BACKEND_TLS, credential_path
    from roles._tls import otlp_sdk_env

    app = lab_environment()["app1"]
    endpoints = agent_endpoints(app)
    assert endpoints == ["https://127.0.0.1:4319"] and uses_agent_tls(app.settings, endpoints)  # its host's agent
    values = env_values(app.settings, endpoints[0], "", tls_env=otlp_sdk_env(BACKEND_TLS, key=credential_path(app.settings.backend.unit)))
    assert values["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://127.0.0.1:4319"
    # The key as systemd hands it to the backend (a credential): on disk it is root's alone (test_backend_key_credential.py).
    assert [values[v] for v in SDK_VARIABLES] == ["/etc/sentinel/tls/ca.crt", "/etc/sentinel/tls/sentinel.crt",
                                                  "/run/credentials/sentinel-backend.service/otlp-client.key"]


def test_an_operators_own_endpoint_gets_no_certificate_of_ours():
    from roles._environment import host_settings

    settings = host_settings("app1", ["app", "lab"], {"artifact_base_url": "http://10.213.0.1:8080",
                                                      "backend": {"otlp_endpoint": "https://otlp.example.org"}})
    assert not uses_agent_tls(settings, ["https://127.0.0.1:4319"])
    assert not set(SDK_VARIABLES) & set(env_values(settings, "https://otlp.example.org", ""))
