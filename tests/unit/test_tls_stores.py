"""The stores behind TLS and client certificates (issue 22), as rendered: the authenticating fronts (nginx) of
VictoriaLogs and Jaeger, the retention job and the erasure command's identity, Loki and Tempo."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess

import pytest

from tests.mirror_binaries import MISSING_TOOL

from roles._pki import CertificateAuthority
from roles._placement import component
from roles._tls import ERASURE, TlsPaths, common_name, is_tls
from roles.jaeger import render_config as jaeger_config
from roles.victorialogs import enforcement_script, flags
from roles.victorialogs.front import ACCESS, FRONT, RETENTION, SELF, identities, render_config, service_spec
from roles._front import render_config as front_render
from roles.jaeger.front import FRONT as JAEGER_FRONT
from roles.loki.front import FRONT as LOKI_FRONT
from roles.tempo.front import FRONT as TEMPO_FRONT
from roles.victorialogs.settings import VictoriaLogsSettings
from tests.environments import context_of, environment

pytestmark = pytest.mark.tls

LAB = """
monitoring = [("mon1", {"address": "10.213.0.11"}), ("mon2", {"address": "10.213.0.14"})]
telemetry = [("tel1", {"address": "10.213.0.12"})]
app = [("app1", {"address": "10.213.0.13"})]
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    env = environment(tmp_path_factory.mktemp("inv"), "lab", LAB)
    return env, context_of(env, "tel1")


def front_config(ctx) -> str:
    return render_config(ctx.topology, ctx.name, ctx.bind("victorialogs.http"), ctx.bind("victorialogs.local"))


def allowed(config: str) -> dict[str, list[str]]:
    """component -> the path patterns the front's second map admits it to."""
    found: dict[str, list[str]] = {}
    for who, pattern in re.findall(r'"~\^([a-z_-]+) ([^"]+)" 1;', config):
        found.setdefault(who, []).append(pattern)
    return found


def test_victorialogs_listens_on_the_loopback_and_its_front_on_the_host(lab):
    _, tel = lab
    assert tel.bind("victorialogs.http") == "10.213.0.12:9428"
    assert tel.bind("victorialogs.local") == "127.0.0.1:9429"
    assert flags(VictoriaLogsSettings(), tel.settings.retention, tel.bind("victorialogs.local"))["httpListenAddr"] == "127.0.0.1:9429"
    assert is_tls("victorialogs.http") and not is_tls("victorialogs.local")
    assert "victorialogs-front" in component("victorialogs").unit_names(tel.settings)


def test_the_front_admits_the_topology_s_identities_by_name(lab):
    _, tel = lab
    names = dict(identities(tel.topology, "tel1"))
    assert names == {
        "tel1.gateway": "gateway", "mon1.grafana": "grafana", "mon2.grafana": "grafana", "mon1.prometheus": "prometheus",
        "mon2.prometheus": "prometheus", "operator": "operator", "erasure": ERASURE, "tel1.victorialogs-retention": RETENTION,
        "tel1.victorialogs": SELF,
    }
    config = front_config(tel)
    for cn, kind in names.items():
        assert f'"CN={cn}" {kind};' in config
    # No app host, no agent, no backend.
    assert "app1" not in config


def test_only_the_erasure_command_and_the_retention_job_reach_the_delete_api(lab):
    _, tel = lab
    rules = allowed(front_config(tel))
    deleters = sorted(who for who, patterns in rules.items() if any(p.startswith("/delete") for p in patterns))
    assert deleters == sorted([ERASURE, RETENTION])
    writers = sorted(who for who, patterns in rules.items() if any(p.startswith("/insert") for p in patterns))
    assert writers == sorted(["gateway", ERASURE])  # the erasure command copies its audit entry in (/insert/jsonline only)
    assert rules[ERASURE] == ["/select/logsql/", "/delete/", r"/insert/jsonline$"]
    assert rules["grafana"] == ["/select/"] and rules["prometheus"] == ["/metrics$"]


def test_the_front_requires_a_client_certificate_of_the_environment_ca_and_tls_1_2(lab):
    _, tel = lab
    config = front_config(tel)
    paths = TlsPaths("victorialogs-front")
    for line in (f"ssl_client_certificate {paths.ca};", "ssl_verify_client on;", "ssl_protocols TLSv1.2 TLSv1.3;",
                 "listen 10.213.0.12:9428 ssl;", "server 127.0.0.1:9429;", "return 403;"):
        assert line in config, line
    # The path nginx checks is the path VictoriaLogs routes: encoded and dot segments are refused.
    assert r'if ($request_uri ~ "^[^?]*(%|\.\.|//)")' in config


def test_the_front_s_unit_is_hardened_and_its_config_checked_by_nginx(lab):
    from roles._service import unit_file

    _, tel = lab
    spec = service_spec(front_config(tel), tel.bind("victorialogs.http"), ())
    unit = unit_file(spec)
    assert "User=victorialogs-front" in unit and "ProtectSystem=strict" in unit and "NoNewPrivileges=yes" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit  # a renewed certificate is read on the reload
    assert spec.configs[-1].validate.startswith("/usr/sbin/runuser -u victorialogs-front -- /usr/sbin/nginx -t")
    assert spec.ready_url == "https://10.213.0.12:9428/health"


@pytest.mark.skipif(not shutil.which("nginx"), reason=f"{MISSING_TOOL} nginx (the host checks the config before the swap; .ci/run installs it)")
def test_nginx_accepts_the_rendered_config(lab, tmp_path):
    _, tel = lab
    ca = CertificateAuthority.open("lab", tmp_path / "pki")
    leaf = ca.issue("tel1", SELF, ("tel1",), ("127.0.0.1",))
    paths = TlsPaths("victorialogs-front", base=str(tmp_path))
    (tmp_path / "victorialogs-front" / "tls").mkdir(parents=True)
    for path, text in ((paths.ca, leaf.ca_pem), (paths.cert, leaf.cert_pem), (paths.key, leaf.key_pem)):
        open(path, "w").write(text)
    front = dataclasses.replace(FRONT, etc=str(tmp_path), var_lib=str(tmp_path))
    assert front.tls == paths
    config = render_config(tel.topology, "tel1", "127.0.0.1:19428", "127.0.0.1:19429", front)
    (tmp_path / "nginx.conf").write_text(config)
    result = subprocess.run(["nginx", "-t", "-e", "stderr", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_new_client_of_the_store_needs_its_row(lab, monkeypatch):
    from roles import _topology
    from roles._topology import Flow

    _, tel = lab
    monkeypatch.setattr(_topology, "FLOWS", (*_topology.FLOWS, Flow("agent", "victorialogs.http", "a new flow")))
    with pytest.raises(ValueError, match="ACCESS"):
        identities(tel.topology, "tel1")


def test_the_cn_the_front_matches_is_the_one_the_ca_issues(tmp_path):
    from cryptography.x509.oid import NameOID

    ca = CertificateAuthority.open("lab", tmp_path)
    for host, name in (("tel1", "gateway"), (None, ERASURE)):
        leaf = ca.issue(host, name)
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(leaf.cert_pem.encode())
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == common_name(host, name)


def test_the_retention_job_calls_the_front_with_its_own_identity(lab):
    _, tel = lab
    script = enforcement_script(VictoriaLogsSettings(), tel.settings.retention, tel.bind("victorialogs.http"))
    assert "base=https://10.213.0.12:9428" in script
    assert "--cert /etc/victorialogs/tls/victorialogs.crt --key /etc/victorialogs/tls/victorialogs.key" in script
    assert "curl -fsS --data-urlencode" not in script  # no call without the certificate
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)


def test_jaeger_itself_listens_on_the_loopback_only_plain_and_its_front_holds_the_host_listeners(lab):
    _, tel = lab
    binds = {l.name: l.bind for l in tel.topology.on("tel1") if l.component == "jaeger"}
    config = jaeger_config(tel.settings.traces, binds)
    assert "tls" not in str(config)  # the front serves TLS; Jaeger's own listeners are the loopback's
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "127.0.0.1:14418"
    assert config["extensions"]["jaeger_query"]["http"]["endpoint"] == "127.0.0.1:16687"
    for route in JAEGER_FRONT.routes:
        assert binds[route.listener].startswith("10.213.0.12:") and binds[route.upstream].startswith("127.0.0.1:")
        assert is_tls(route.listener) and not is_tls(route.upstream)
    assert component("jaeger").unit_names(tel.settings) == ("jaeger", "jaeger-front")


def jaeger_front_config(ctx) -> str:
    binds = {name: ctx.bind(name) for route in JAEGER_FRONT.routes for name in (route.listener, route.upstream)}
    return front_render(JAEGER_FRONT, ctx.topology, ctx.name, binds)


def test_jaeger_s_front_admits_each_identity_to_its_own_listener_and_paths(lab):
    _, tel = lab
    by_listener = {route.listener: dict(JAEGER_FRONT.identities(tel.topology, "tel1", route.listener)) for route in JAEGER_FRONT.routes}
    assert by_listener == {
        "jaeger.otlp_http": {"tel1.gateway": "gateway"},  # the only writer
        "jaeger.query": {"mon1.grafana": "grafana", "mon2.grafana": "grafana", "operator": "operator", "tel1.jaeger": "jaeger"},
        "jaeger.metrics": {"mon1.prometheus": "prometheus", "mon2.prometheus": "prometheus", "operator": "operator"},
    }
    config = jaeger_front_config(tel)
    servers = config.split("    server {")[1:]
    assert len(servers) == 3
    # Each server checks its own map; each map admits its own rows only.
    maps = dict(re.findall(r'map "\$front_client \$uri" \$(front_allowed_\d) \{(.*?)\n    \}', config, re.S))
    assert set(maps) == {"front_allowed_0", "front_allowed_1", "front_allowed_2"}
    assert "gateway" not in maps["front_allowed_0"] and "grafana" not in maps["front_allowed_1"]
    assert re.findall(r'"~\^(\S+) ', maps["front_allowed_1"]) == ["gateway"]
    assert re.findall(r'"~\^(\S+) ', maps["front_allowed_2"]) == ["operator", "prometheus"]
    for index, server in enumerate(servers):
        assert f"if ($front_allowed_{index} = 0)" in server and f"proxy_pass http://store_{index};" in server
        assert "ssl_verify_client on;" in server and "ssl_protocols TLSv1.2 TLSv1.3;" in server
    assert "listen 10.213.0.12:4418 ssl;" in config and "server 127.0.0.1:14418;" in config
    assert "app1" not in config and "erasure" not in config


def test_a_new_client_of_jaeger_needs_its_row(lab, monkeypatch):
    from roles import _topology
    from roles._topology import Flow

    _, tel = lab
    monkeypatch.setattr(_topology, "FLOWS", (*_topology.FLOWS, Flow("agent", "jaeger.otlp_http", "a new flow")))
    with pytest.raises(ValueError, match="jaeger.otlp_http.*roles/jaeger/front.py ROUTES"):
        JAEGER_FRONT.identities(tel.topology, "tel1")


@pytest.mark.skipif(not shutil.which("nginx"), reason=f"{MISSING_TOOL} nginx (the host checks the config before the swap; .ci/run installs it)")
def test_nginx_accepts_jaeger_s_front(lab, tmp_path):
    _, tel = lab
    front = dataclasses.replace(JAEGER_FRONT, etc=str(tmp_path), var_lib=str(tmp_path))
    ca = CertificateAuthority.open("lab", tmp_path / "pki")
    leaf = ca.issue("tel1", "jaeger", ("tel1",), ("127.0.0.1",))
    (tmp_path / "jaeger-front" / "tls").mkdir(parents=True)
    for path, text in ((front.tls.ca, leaf.ca_pem), (front.tls.cert, leaf.cert_pem), (front.tls.key, leaf.key_pem)):
        open(path, "w").write(text)
    binds = {name: f"127.0.0.1:{19000 + i}" for i, name in enumerate(n for r in front.routes for n in (r.listener, r.upstream))}
    (tmp_path / "nginx.conf").write_text(front_render(front, tel.topology, "tel1", binds))
    result = subprocess.run(["nginx", "-t", "-e", "stderr", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_jaeger_scrape_goes_through_the_front_with_prometheus_s_identity(lab):
    from roles.prometheus import scrape_jobs

    _, tel = lab
    jaeger = next(job for job in scrape_jobs(tel.topology, tel.settings) if job.name == "jaeger")
    assert jaeger.tls and [t.address for t in jaeger.targets] == ["10.213.0.12:8888"]


def test_the_erasure_command_uses_its_own_identity_over_https(tmp_path, monkeypatch):
    from roles.retention import erase

    monkeypatch.setenv("SENTINEL_PKI_DIR", str(tmp_path))
    from roles import _tls

    _tls._ca.cache_clear()
    store = erase.resolve_store("lab", "victorialogs", "https://10.213.0.12:9428")
    ca, (cert, key) = store.verify, store.cert
    assert cert.endswith("/leaves/erasure.crt") and key.endswith("/leaves/erasure.key") and ca.endswith("ca-bundle.crt")
    plain = erase.resolve_store("lab", "victorialogs", "http://127.0.0.1:9429")
    assert plain.cert is None
    _tls._ca.cache_clear()


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_loki_and_tempo_listen_on_the_loopback_behind_their_fronts(env):
    from roles.tempo import render_config as tempo_config
    from tests.unit.test_loki_role import render as loki_render
    from tests.unit.test_tempo import env_traces

    loki = loki_render(env)
    assert "http_tls_config" not in loki["server"] and loki["server"]["http_listen_address"] == "127.0.0.1"
    tempo = tempo_config(env_traces(env), "127.0.0.1:7070")
    assert "http_tls_config" not in tempo["server"] and tempo["server"]["http_listen_address"] == "127.0.0.1"
    assert tempo["distributor"]["receivers"]["otlp"]["protocols"]["http"] == {"endpoint": "127.0.0.1:14418"}


@pytest.fixture(scope="module")
def prod_tel():
    from pathlib import Path

    from roles._environment import load_environment

    env = load_environment(Path(__file__).resolve().parents[2] / "inventory" / "prod.py")
    host = next(h.name for h in env.hosts if "telemetry" in h.groups)
    return context_of(env, host)


def loki_front_config(ctx) -> str:
    return front_render(LOKI_FRONT, ctx.topology, ctx.name, {"loki.http": ctx.bind("loki.http"), "loki.local": ctx.bind("loki.local")})


def _admitted(config: str, who: str, path: str) -> bool:
    """What nginx's map decides for `who` on `path`: its regular expressions in order, the first match wins."""
    body = re.search(r'map "\$front_client \$uri" \$front_allowed_0 \{(.*?)\n    \}', config, re.S).group(1)
    for pattern, value in re.findall(r'"~(\^[^"]+)" ([01]);', body):
        if re.search(pattern, f"{who} {path}"):
            return value == "1"
    return False


def test_loki_s_delete_api_answers_the_erasure_identity_alone(prod_tel):
    config = loki_front_config(prod_tel)
    for who in ("gateway", "grafana", "prometheus", "operator", "loki"):
        for path in ("/loki/api/v1/delete", "/loki/api/v1/delete/extra", "/loki/api/admin/delete", "/loki/api/admin/cancel_delete_request"):
            assert not _admitted(config, who, path), (who, path)
    assert _admitted(config, ERASURE, "/loki/api/v1/delete")
    # Each identity's own paths.
    assert _admitted(config, "grafana", "/loki/api/v1/query_range") and _admitted(config, "grafana", "/loki/api/v1/label/service/values")
    assert not _admitted(config, "grafana", "/otlp/v1/logs") and not _admitted(config, "grafana", "/metrics")
    assert _admitted(config, "gateway", "/otlp/v1/logs") and not _admitted(config, "gateway", "/loki/api/v1/query")
    assert _admitted(config, "prometheus", "/metrics") and not _admitted(config, "prometheus", "/loki/api/v1/query")
    assert _admitted(config, ERASURE, "/loki/api/v1/push") and not _admitted(config, ERASURE, "/otlp/v1/logs")
    assert _admitted(config, "loki", "/ready") and not _admitted(config, "loki", "/loki/api/v1/query")
    # Every delete admitted goes to the journal, with who asked.
    assert '"~^1 /loki/api/v1/delete" 1;' in config


def test_loki_s_front_passes_grafana_s_live_tail_websocket_and_the_others_keep_alive(prod_tel):
    config = loki_front_config(prod_tel)
    assert "proxy_set_header Upgrade $http_upgrade;" in config and "proxy_set_header Connection $front_upgrade;" in config
    assert re.search(r'map \$http_upgrade \$front_upgrade \{\s*default upgrade;\s*"" "";', config)
    assert _admitted(config, "grafana", "/loki/api/v1/tail")
    # The lab's fronts need no upgrade: their configs keep the plain keep-alive header.
    assert 'proxy_set_header Connection "";' in front_render(JAEGER_FRONT, prod_tel.topology, prod_tel.name,
                                                           {n: "127.0.0.1:1" for r in JAEGER_FRONT.routes for n in (r.listener, r.upstream)})


def test_loki_s_front_holds_loki_http_and_loki_its_loopback(prod_tel):
    host = prod_tel.settings.ip
    config = loki_front_config(prod_tel)
    assert f"listen {host}:3100 ssl;" in config and "server 127.0.0.1:3101;" in config
    assert prod_tel.bind("loki.local") == "127.0.0.1:3101" and is_tls("loki.http") and not is_tls("loki.local")
    assert component("loki").unit_names(prod_tel.settings) == ("loki", "loki-front")
    names = dict(LOKI_FRONT.identities(prod_tel.topology, prod_tel.name))
    assert set(names.values()) == {"gateway", "grafana", "prometheus", "operator", ERASURE, "loki"}


def test_tempo_s_front_gives_the_gateway_the_writes_and_grafana_the_reads(prod_tel):
    binds = {name: prod_tel.bind(name) for route in TEMPO_FRONT.routes for name in (route.listener, route.upstream)}
    assert binds["tempo.http_local"] == "127.0.0.1:3201" and binds["tempo.otlp_http_local"] == "127.0.0.1:14418"
    by_listener = {route.listener: {c for _, c in TEMPO_FRONT.identities(prod_tel.topology, prod_tel.name, route.listener)}
                   for route in TEMPO_FRONT.routes}
    assert by_listener == {"tempo.http": {"grafana", "prometheus", "operator", "tempo"}, "tempo.otlp_http": {"gateway"}}
    config = front_render(TEMPO_FRONT, prod_tel.topology, prod_tel.name, binds)
    assert f"listen {prod_tel.settings.ip}:4418 ssl;" in config and "server 127.0.0.1:14418;" in config
    assert component("tempo").unit_names(prod_tel.settings) == ("tempo", "tempo-front")


@pytest.mark.skipif(not shutil.which("nginx"), reason=f"{MISSING_TOOL} nginx (the host checks the config before the swap; .ci/run installs it)")
@pytest.mark.parametrize("which", ["loki", "tempo"])
def test_nginx_accepts_the_fronts_rendered_for_prod(prod_tel, tmp_path, which):
    front = dataclasses.replace({"loki": LOKI_FRONT, "tempo": TEMPO_FRONT}[which], etc=str(tmp_path), var_lib=str(tmp_path))
    ca = CertificateAuthority.open("prod", tmp_path / "pki")
    leaf = ca.issue("tel1", which, ("tel1",), ("127.0.0.1",))
    (tmp_path / front.name / "tls").mkdir(parents=True)
    for path, text in ((front.tls.ca, leaf.ca_pem), (front.tls.cert, leaf.cert_pem), (front.tls.key, leaf.key_pem)):
        open(path, "w").write(text)
    binds = {name: f"127.0.0.1:{19100 + i}" for i, name in enumerate(n for r in front.routes for n in (r.listener, r.upstream))}
    config = front_render(front, prod_tel.topology, prod_tel.name, binds)
    (tmp_path / "nginx.conf").write_text(config)
    result = subprocess.run(["nginx", "-t", "-e", "stderr", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_erasure_identity_goes_with_every_request_whatever_requests_ca_bundle_says(monkeypatch):
    """requests lets REQUESTS_CA_BUNDLE override a session's `verify`: the store gives it with each call."""
    from roles.retention.erase import VictoriaLogsStore

    seen = {}

    class Session:
        def request(self, method, url, **kwargs):
            seen.update(kwargs)

            class Response:
                status_code, text = 200, ""

                @staticmethod
                def json():
                    return []

            return Response()

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    store = VictoriaLogsStore("https://10.213.0.12:9428", session=Session(), verify="/pki/ca-bundle.crt",
                              cert=("/pki/leaves/erasure.crt", "/pki/leaves/erasure.key"))
    store.active_tasks()
    assert seen["verify"] == "/pki/ca-bundle.crt" and seen["cert"] == ("/pki/leaves/erasure.crt", "/pki/leaves/erasure.key")
