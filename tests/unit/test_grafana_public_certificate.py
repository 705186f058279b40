"""Grafana's public certificate (grafana.public_certificate_secret / public_key_secret), without Grafana:
the names it covers as browsers match them, the refusals of a pair that cannot serve (preflight's table
cases are in test_preflight.py), what the role renders and puts on the host with it and without it, and
how Grafana's own clients verify it. Rendering-checked only: Grafana cannot run in the lab.

Certificates are made here (tests/unit/public_cert_fixtures.py); no key material is committed."""

from __future__ import annotations

import datetime as dt

import pytest

from roles.grafana.public_certificate import PublicCertificateProblem, check_pair, covers, dns_name_matches
from tests.unit.public_cert_fixtures import chain, key_pem, other_key, secret_lines

pytestmark = pytest.mark.grafana


# --- names, as browsers match them ----------------------------------------------------------


@pytest.mark.parametrize("pattern, host, matches", [
    ("grafana.example.test", "grafana.example.test", True),
    ("Grafana.Example.TEST", "grafana.example.test.", True),  # case and the root's trailing dot do not matter
    ("grafana.example.test", "grafana2.example.test", False),
    ("*.example.test", "grafana.example.test", True),
    ("*.example.test", "a.grafana.example.test", False),  # one label only
    ("*.example.test", "example.test", False),  # not the bare domain
    ("*.example.test", ".example.test", False),  # not an empty label
    ("*.test", "example.test", False),  # never over a bare suffix
    ("g*.example.test", "grafana.example.test", False),  # no partial wildcards
    ("*rafana.example.test", "grafana.example.test", False),
    ("grafana.*.test", "grafana.example.test", False),  # only the left-most label
    ("*.*.test", "a.example.test", False),
])
def test_dns_names_match_as_browsers_match_them(pattern, host, matches):
    assert dns_name_matches(pattern, host) is matches


def test_an_ip_is_covered_by_an_ip_entry_only_and_a_certificate_without_names_covers_nothing():
    from cryptography import x509

    def first(pair):
        return x509.load_pem_x509_certificates(pair.chain_pem.encode())[0]

    by_ip = first(chain(("10.9.0.11",)))
    assert covers(by_ip, "10.9.0.11") and not covers(by_ip, "10.9.0.12")
    # A DNS entry spelling the IP is not an IP entry: browsers do not accept it.
    assert not covers(first(chain(("dns:10.9.0.11",))), "10.9.0.11")
    # The common name alone (no subjectAltName) is ignored, as browsers ignore it.
    assert not covers(first(chain((), cn="grafana.example.test")), "grafana.example.test")


# --- the pair's refusals, straight from check_pair ---------------------------------------------------


def _refusal(chain_pem: str, key_pem: str, host: str = "grafana.example.test", now=None) -> PublicCertificateProblem:
    with pytest.raises(PublicCertificateProblem) as err:
        check_pair(chain_pem, key_pem, host, now=now)
    return err.value


def test_a_good_pair_passes_and_each_refusal_names_its_secret_without_its_value():
    good = chain()
    check_pair(good.chain_pem, good.key_pem, "grafana.example.test")
    expired, future, elsewhere = chain(ends_in_days=-1, starts_in_days=-30), chain(starts_in_days=3), chain(("other.example.test",))
    cases = [
        (_refusal(good.chain_pem, other_key()), "key", "is not the key"),
        (_refusal(expired.chain_pem, expired.key_pem), "certificate", "expired on"),
        (_refusal(future.chain_pem, future.key_pem), "certificate", "not valid before"),
        (_refusal(elsewhere.chain_pem, elsewhere.key_pem), "certificate", "is not for grafana.example.test"),
    ]
    lines = [line for pair in (good, expired, future, elsewhere) for line in secret_lines(pair)]
    for problem, which, words in cases:
        assert problem.which == which and words in problem.problem, problem
        assert problem.fix
        assert not [line for line in lines if line in str(problem)]


def test_an_expired_intermediate_is_refused_too():
    good = chain()
    # Checked at a time after the server certificate's end: the dates of every certificate of the chain count.
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=4000)
    problem = _refusal(good.chain_pem, good.key_pem, now=later)
    assert problem.which == "certificate" and "expired on" in problem.problem
    # Within the server's dates but past the intermediate's (made ten years long): certificate 2 is named.
    long_lived = chain(ends_in_days=5000)
    problem = _refusal(long_lived.chain_pem, long_lived.key_pem, now=later)
    assert "certificate 2 of the chain" in problem.problem


def test_a_client_certificate_is_not_a_server_certificate():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "grafana.example.test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("grafana.example.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    problem = _refusal(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem(key))
    assert "serverAuth" in problem.problem


# --- what the role renders and puts on the host -------------------------------------------------------

PUBLIC_NAMES = {"public_certificate_secret": "SENTINEL_GRAFANA_PUBLIC_CERT", "public_key_secret": "SENTINEL_GRAFANA_PUBLIC_KEY"}
ROOT_URL = "https://grafana.example.test/"
PAIR = chain(("grafana.example.test",))


def _public(extra: dict | None = None) -> dict:
    """mon1's host data with the public certificate named and root_url on its name."""
    return {"grafana": {**PUBLIC_NAMES, "root_url": ROOT_URL}, **(extra or {})}


def _secrets(public: bool = True):
    from roles._secrets import Secrets
    from tests.unit.test_grafana import SECRET_VALUES

    pair = {"SENTINEL_GRAFANA_PUBLIC_CERT": PAIR.chain_pem, "SENTINEL_GRAFANA_PUBLIC_KEY": PAIR.key_pem} if public else {}
    return Secrets({**SECRET_VALUES, **pair})


def _files(public: bool) -> dict:
    """mon1's guarded files in prod, the leaf included, as the role computes them."""
    from roles._tls import leaf
    from roles.grafana import config_files
    from roles.grafana.peers import grafana_peers
    from tests.unit.test_grafana import context

    ctx = context("prod", _public() if public else None)
    settings = ctx.settings
    files = config_files(settings.grafana, settings.alerting, _secrets(public), "prod", settings.address, grafana_peers(ctx),
                         settings.ip, certificate=leaf(ctx, "grafana"))
    return {f.dest: f for f in files}


@pytest.mark.parametrize("public, served", [
    (True, ("/etc/grafana/tls/public.crt", "/etc/grafana/tls/public.key")),
    (False, ("/etc/grafana/tls/grafana.crt", "/etc/grafana/tls/grafana.key")),
])
def test_grafana_ini_serves_the_public_pair_only_when_it_is_set(public, served):
    from tests.unit.test_grafana import _ini, ini_problems

    ini = _ini(_files(public)["/etc/grafana/grafana.ini"].content)
    assert (ini["server"]["cert_file"], ini["server"]["cert_key"]) == served
    # The rest of https is the same either way: protocol, TLS 1.2, HSTS, secure cookies; every key in Grafana 12.4's reference.
    assert (ini["server"]["protocol"], ini["server"]["min_tls_version"]) == ("https", "TLS1.2")
    assert ini["security"]["strict_transport_security"] == ini["security"]["cookie_secure"] == "true"
    assert ini_problems(ini) == []
    assert "BEGIN" not in _files(public)["/etc/grafana/grafana.ini"].content


def test_the_public_pair_is_two_files_beside_the_leaf_with_tight_modes():
    with_pair, without = _files(True), _files(False)
    assert set(with_pair) - set(without) == {"/etc/grafana/tls/public.crt", "/etc/grafana/tls/public.key"}
    assert set(without) <= set(with_pair)  # the leaf's ca.crt, grafana.crt and grafana.key stay either way
    cert, key = with_pair["/etc/grafana/tls/public.crt"], with_pair["/etc/grafana/tls/public.key"]
    assert (cert.user, cert.group, cert.mode) == ("root", "grafana", "0644")
    assert (key.user, key.group, key.mode) == ("root", "grafana", "0640")
    assert cert.content == PAIR.chain_pem and key.content == PAIR.key_pem
    assert cert.validate and key.validate  # checked with openssl on the host before the swap (run below)
    # The key is in its file only: nowhere else the role writes, grafana.ini and the provisioning included.
    # (A PKCS#8 EC key's last line may spell the public point, which the certificate holds too: not private.)
    private_lines = [line for line in PAIR.key_pem.splitlines() if not line.startswith("-----") and line not in PAIR.chain_pem]
    assert private_lines
    for dest, f in with_pair.items():
        if dest != "/etc/grafana/tls/public.key":
            assert "PRIVATE KEY" not in f.content or dest.endswith("grafana.key"), dest
            assert not [line for line in private_lines if line in f.content], dest


def test_a_public_pair_preflight_did_not_resolve_is_refused_by_the_role():
    from roles._model import SettingsError
    from roles._secrets import Secrets
    from roles.grafana import public_pair
    from roles.grafana.settings import GrafanaSettings

    settings = GrafanaSettings(**PUBLIC_NAMES)
    with pytest.raises(SettingsError) as err:
        public_pair(settings, Secrets({"SENTINEL_GRAFANA_PUBLIC_KEY": PAIR.key_pem}))
    assert err.value.key == "grafana.public_certificate_secret" and "check_inventory" in err.value.fix
    assert public_pair(GrafanaSettings(), Secrets({})) is None


# --- the role's operations, recorded --------------------------------------------------------------


def _role_calls(monkeypatch, public: bool, env: str = "prod") -> list[tuple[str, dict]]:
    """The Grafana role's body for mon1, every pyinfra operation recorded instead of run (test_grafana.py's harness)."""
    import roles.grafana as role
    from roles._service.artifacts import Artifact
    from tests.environments import context_of
    from tests.unit.test_grafana import _Op, _Recorder, context

    calls: list[tuple[str, dict]] = []
    for name in ("apt", "files", "server"):
        monkeypatch.setattr(role, name, _Recorder(calls, name))
    for name in ("guarded_files", "release_tree", "backup_token", "admin_password", "service_account", "service_dirs", "run_service", "certificate_expiry"):
        monkeypatch.setattr(role, name, lambda *args, _name=name, **kwargs: calls.append((_name, kwargs)) or _Op())
    monkeypatch.setattr(role, "resolve", lambda name, base, arch: Artifact(name, "1.0.0", f"{base}/{name}.tar.gz", "0" * 64, name, ("x",)))
    monkeypatch.setattr(role, "host", type("H", (), {"get_fact": lambda self, fact, **kw: "x86_64"})())
    base = context(env, _public() if public else None)
    ctx = type(base)(base.name, base.groups, base.settings, base.topology, _secrets(public))
    role.grafana._inner(ctx.settings.grafana, ctx)
    return calls


def _call(calls, name: str) -> dict:
    return next(kwargs for called, kwargs in calls if called == name)


def test_the_datasources_keep_the_environment_ca_leaf_as_their_client_certificate(monkeypatch):
    import yaml

    for public in (True, False):
        files = {f.dest: f for f in _call(_role_calls(monkeypatch, public), "guarded_files")["files"]}
        leaf_cert, leaf_key = files["/etc/grafana/tls/grafana.crt"].content, files["/etc/grafana/tls/grafana.key"].content
        document = yaml.safe_load(files["/etc/grafana/provisioning/datasources/sentinel.yml"].content)
        by_uid = {ds["uid"]: ds for ds in document["datasources"]}
        for uid in ("prometheus", "alertmanager", "traces", "logs"):
            secure = by_uid[uid]["secureJsonData"]
            assert (secure["tlsClientCert"], secure["tlsClientKey"]) == (leaf_cert, leaf_key), (public, uid)
            assert secure["tlsCACert"] == files["/etc/grafana/tls/ca.crt"].content
            assert PAIR.chain_pem not in str(by_uid[uid]) and PAIR.key_pem not in str(by_uid[uid])


def test_grafanas_own_checks_verify_the_public_name_while_connecting_to_the_bind(monkeypatch):
    """The guarded swap's health check and the token helper reach grafana.http's bind (10.9.0.11) and verify the
    certificate for root_url's host with the system's trust store: the public certificate need not name the IP."""
    calls = _role_calls(monkeypatch, public=True)
    guarded, token = _call(calls, "guarded_files"), _call(calls, "backup_token")
    assert guarded["ready_url"] == "https://grafana.example.test:3000/api/health"
    assert guarded["curl_args"] == ("--resolve", "grafana.example.test:3000:10.9.0.11")  # no --cacert: the system's roots
    assert (token["url"], token["connect_to"], token["ca_file"]) == ("https://grafana.example.test:3000", "10.9.0.11", "")
    # The unit's own readiness check (run_service) is the same as the swap's.
    from roles.grafana import service_spec
    from tests.unit.test_grafana import context

    spec = service_spec(context("prod", _public()).settings.grafana, "10.9.0.11", "mon1.internal")
    assert (spec.ready_url, spec.ready_curl_args) == (guarded["ready_url"], guarded["curl_args"])


def test_curl_reaches_an_ipv6_bind_for_the_public_name():
    from roles.grafana import LocalAccess

    access = LocalAccess("grafana.example.test", 3000, "fd00::11", "")
    assert access.curl_args == ("--resolve", "grafana.example.test:3000:[fd00::11]")
    assert LocalAccess("fd00::11", 3000, "fd00::11", "/ca.crt").url == "https://[fd00::11]:3000"


def test_the_system_trust_store_is_installed_before_the_swap_only_with_the_public_certificate(monkeypatch):
    calls = _role_calls(monkeypatch, public=True)
    names = [name for name, _ in calls]
    assert _call(calls, "apt.packages")["packages"] == ["ca-certificates"]
    assert names.index("apt.packages") < names.index("guarded_files")  # the health check after the swap needs it
    assert "apt.packages" not in [name for name, _ in _role_calls(monkeypatch, public=False)]


def test_without_it_grafanas_own_checks_verify_the_environment_ca_at_the_bind_as_before(monkeypatch):
    calls = _role_calls(monkeypatch, public=False)
    guarded, token = _call(calls, "guarded_files"), _call(calls, "backup_token")
    assert guarded["ready_url"] == "https://10.9.0.11:3000/api/health"
    assert guarded["curl_args"] == ("--cacert", "/etc/grafana/tls/ca.crt")
    assert (token["url"], token["connect_to"], token["ca_file"]) == ("https://10.9.0.11:3000", "", "/etc/grafana/tls/ca.crt")


def test_turning_the_option_off_removes_the_pair_after_the_swap_and_on_keeps_it(monkeypatch):
    removed = "/etc/grafana/tls/public.key", "/etc/grafana/tls/public.crt"
    for env in ("prod", "lab"):
        calls = _role_calls(monkeypatch, public=False, env=env)
        names = [name for name, _ in calls]
        drops = [i for i, (name, kw) in enumerate(calls) if name == "files.file" and kw.get("present") is False
                 and kw["path"].startswith("/etc/grafana/tls/")]
        assert [calls[i][1]["path"] for i in drops] == list(removed), env
        assert all(i > names.index("guarded_files") for i in drops)  # a rollback to the previous grafana.ini still finds them
    calls = _role_calls(monkeypatch, public=True)
    assert not [kw for name, kw in calls if name == "files.file" and kw.get("path") in removed]


def test_the_public_certificates_end_is_exported_for_its_alert_and_gone_without_it(monkeypatch):
    """PublicCertificateExpiresSoon reads the served chain's first notAfter, labelled renewed_by="operator"; the
    environment leaf's stays CertificateExpiresSoon's. Without the pair the textfile goes (a stale one would alert)."""
    from cryptography import x509

    from roles._tls import expiry_textfile

    calls = _role_calls(monkeypatch, public=True)
    expiries = [kw for name, kw in calls if name == "certificate_expiry"]
    public = next(kw for kw in expiries if kw.get("renewed_by_operator"))
    served = x509.load_pem_x509_certificates(PAIR.chain_pem.encode())[0]
    assert public["file_name"] == "tls_grafana_public.prom"
    text = expiry_textfile("grafana", public["certificate"], renewed_by_operator=True)
    assert f'certificate="public",renewed_by="operator"}} {int(served.not_valid_after_utc.timestamp())}' in text
    assert [kw for kw in expiries if not kw.get("renewed_by_operator")], "the environment leaf's expiry is exported too"
    calls = _role_calls(monkeypatch, public=False)
    assert not [kw for name, kw in calls if name == "certificate_expiry" and kw.get("renewed_by_operator")]
    assert [kw for name, kw in calls if name == "files.file" and kw.get("present") is False
            and kw["path"].endswith("/tls_grafana_public.prom")]


def test_no_line_of_the_key_in_what_pyinfra_may_print_about_the_swap(monkeypatch):
    from roles._service import rollback
    from tests.unit.test_hostile_rendering import FakeHost, command_texts

    monkeypatch.setattr(rollback, "host", FakeHost())
    files = tuple(_files(True).values())
    texts = command_texts(rollback.guarded_files._inner(files, "grafana.service", "https://grafana.example.test:3000/api/health", 90,
                                                        curl_args=("--resolve", "grafana.example.test:3000:10.9.0.11")))
    key_lines = [line for line in PAIR.key_pem.splitlines() if not line.startswith("-----")]
    assert texts and not [line for text in texts for line in key_lines if line in text]
    assert any("openssl pkey -pubout" in text for text in texts)  # the host-side check is in the script


# --- the host-side check, run for real with openssl in a scratch directory ----------------------------------


def _swap(tmp_path, staged: dict[str, str], live: dict[str, str] | None = None):
    """Stage `staged` (name -> content) over `live` ones in a scratch /etc/grafana/tls, run the check and swap
    script as the role sends it (no unit: the files are only put in place, as in the lab)."""
    import subprocess

    from roles._service.rollback import check_script, swap_script
    from roles.grafana import public_tls_files

    tls = tmp_path / "tls"
    tls.mkdir(exist_ok=True)
    for name, content in (live or {}).items():
        (tls / name).write_text(content)
    chain_pem, key_pem = staged.get("public.crt", ""), staged.get("public.key", "")
    wanted = [f for f in public_tls_files(chain_pem, key_pem, str(tls / "public.crt"), str(tls / "public.key"))
              if f.dest.rsplit("/", 1)[1] in staged]
    for f in wanted:
        (tmp_path / "tls" / (f.dest.rsplit("/", 1)[1] + ".staged")).write_text(f.content)
    script = "set -eu\n" + "\n".join(check_script(wanted) + swap_script([f.dest for f in wanted], "grafana.service",
                                                                           "https://grafana.example.test:3000/api/health", 1,
                                                                           unit_dir=str(tmp_path / "no-units")))
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True), tls


def test_a_matching_pair_is_swapped_in(tmp_path):
    result, tls = _swap(tmp_path, {"public.crt": PAIR.chain_pem, "public.key": PAIR.key_pem})
    assert result.returncode == 0, result.stderr
    assert (tls / "public.crt").read_text() == PAIR.chain_pem and (tls / "public.key").read_text() == PAIR.key_pem
    assert not list(tls.glob("*.staged"))


def test_a_key_of_another_certificate_is_refused_on_the_host_and_nothing_is_swapped(tmp_path):
    old = chain()
    live = {"public.crt": old.chain_pem, "public.key": old.key_pem}
    result, tls = _swap(tmp_path, {"public.crt": PAIR.chain_pem, "public.key": other_key()}, live)
    assert result.returncode == 1
    assert "refused" in result.stderr and "nothing was swapped in" in result.stderr
    assert (tls / "public.crt").read_text() == old.chain_pem and (tls / "public.key").read_text() == old.key_pem
    assert not list(tls.glob("*.staged"))  # both staged copies removed
    assert not [line for line in secret_lines(PAIR) + secret_lines(old) if line in result.stderr + result.stdout]


def test_a_renewed_certificate_alone_is_checked_against_the_live_key(tmp_path):
    """A renewal that keeps the key changes the chain only: its check reads the live key."""
    from cryptography.hazmat.primitives import serialization

    current = chain()
    key = serialization.load_pem_private_key(current.key_pem.encode(), None)
    renewed = chain(server_key=key)
    result, tls = _swap(tmp_path, {"public.crt": renewed.chain_pem}, {"public.crt": current.chain_pem, "public.key": current.key_pem})
    assert result.returncode == 0, result.stderr
    assert (tls / "public.crt").read_text() == renewed.chain_pem
    # The same, with a chain for another key: refused, the live chain stays.
    result, tls = _swap(tmp_path, {"public.crt": PAIR.chain_pem})
    assert result.returncode == 1 and (tls / "public.crt").read_text() == renewed.chain_pem


def test_a_chain_that_is_not_pem_is_refused_on_the_host(tmp_path):
    result, tls = _swap(tmp_path, {"public.crt": "not a certificate\n", "public.key": PAIR.key_pem})
    assert result.returncode == 1 and not (tls / "public.crt").exists() and not (tls / "public.key").exists()


# --- Grafana's clients: the token helper, the backup job, Prometheus ---------------------------------------


@pytest.fixture
def public_grafana(tmp_path):
    """A local https server with a public-style chain for grafana.example.test only (not for 127.0.0.1), and the
    root it chains to (the system's trust store stands in as a CA file)."""
    from tests.unit.public_cert_fixtures import serve_https

    server = serve_https(PAIR, tmp_path)
    root = tmp_path / "root.pem"
    root.write_text(PAIR.root_pem)
    yield server.server_address[1], str(root)
    server.shutdown()
    server.server_close()


def test_the_token_helper_connects_to_the_bind_and_verifies_the_public_name(public_grafana):
    import ssl

    from tests.unit.test_grafana import _token_module

    port, root = public_grafana
    module = _token_module()
    context = ssl.create_default_context(cafile=root)
    module._OPENER = module.connect_to_opener("127.0.0.1", context)
    assert module.call(f"https://grafana.example.test:{port}", "x", "GET", "/api/health") == {"database": "ok"}
    # By the address alone the certificate does not match: refused before any credential is sent.
    module._OPENER, module._CONTEXT = None, context
    with pytest.raises(module.GrafanaError, match="CERTIFICATE_VERIFY_FAILED|match"):
        module.call(f"https://127.0.0.1:{port}", "x", "GET", "/api/health")
    # Another name at the same address: refused too.
    module._OPENER = module.connect_to_opener("127.0.0.1", context)
    with pytest.raises(module.GrafanaError):
        module.call(f"https://dashboards.example.test:{port}", "x", "GET", "/api/health")


def test_the_backup_job_verifies_grafana_with_the_system_store_and_the_public_name():
    from roles.grafana_backup import CA_FILE, job_config
    from tests.unit.test_grafana import monitoring_settings

    settings = monitoring_settings("prod", {"grafana_backup": {"enabled": True, "remote_url": "git@git.example.test:ops/b.git",
                                                               "known_hosts": ["git.example.test ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"]}})
    public = job_config(settings.grafana_backup, "/t", "https://mon1.internal:3000", "grafana.example.test")
    assert (public["ca_file"], public["tls_server_name"]) == ("", "grafana.example.test")  # "": the system's trust store
    assert public["grafana_url"] == "https://mon1.internal:3000"  # still the topology's address: the token goes nowhere else
    ca = job_config(settings.grafana_backup, "/t", "https://mon1.internal:3000")
    assert (ca["ca_file"], ca["tls_server_name"]) == (CA_FILE, "")


def _backup_role_config(monkeypatch, public: bool) -> dict:
    """The config.json the grafana_backup role writes for mon1 in prod, its operations recorded."""
    import json

    import roles.grafana_backup as role
    from tests.unit.test_grafana import _Recorder, context

    calls: list = []
    for name in ("apt", "server", "files"):
        monkeypatch.setattr(role, name, _Recorder(calls, name))
    monkeypatch.setattr(role, "validated_file", lambda **kwargs: calls.append(("validated_file", kwargs)))
    monkeypatch.setattr(role, "host", type("H", (), {"get_fact": lambda self, fact, **kw: True})())
    backup = {"grafana_backup": {"enabled": True, "remote_url": "git@git.example.test:ops/b.git",
                                 "known_hosts": ["git.example.test ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"]}}
    ctx = context("prod", _public(backup) if public else backup)
    ctx = type(ctx)(ctx.name, ctx.groups, ctx.settings, ctx.topology, {"SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY": "k"})
    role.grafana_backup._inner(ctx.settings.grafana_backup, ctx)
    written = next(kw for name, kw in calls if name == "validated_file" and kw["dest"] == role.CONFIG)
    return json.loads(written["content"])


def test_the_backup_role_makes_the_trust_choice_follow_the_setting(monkeypatch):
    from roles.grafana_backup import CA_FILE

    public, ca = _backup_role_config(monkeypatch, True), _backup_role_config(monkeypatch, False)
    assert (public["ca_file"], public["tls_server_name"]) == ("", "grafana.example.test")
    assert (ca["ca_file"], ca["tls_server_name"]) == (CA_FILE, "")
    assert public["grafana_url"] == ca["grafana_url"] == "https://mon1.internal:3000"


def _prometheus_grafana_job(public: bool) -> dict:
    from roles.prometheus import config, scrape_jobs
    from tests.unit.test_grafana import context

    ctx = context("prod", _public() if public else None)
    data = config(ctx.settings, scrape_jobs(ctx.topology, ctx.settings))
    return {job["job_name"]: job for job in data["scrape_configs"]}


def test_prometheus_scrapes_grafana_by_the_public_name_with_the_system_roots():
    jobs = _prometheus_grafana_job(True)
    tls = jobs["grafana"]["tls_config"]
    assert tls["server_name"] == "grafana.example.test" and "ca_file" not in tls
    assert jobs["grafana"]["static_configs"][0]["targets"] == ["mon1.internal:3000"]  # still the topology's address
    # Every other job keeps the environment CA, with no server name.
    assert "server_name" not in jobs["prometheus"]["tls_config"] and jobs["prometheus"]["tls_config"]["ca_file"]
    without = _prometheus_grafana_job(False)["grafana"]["tls_config"]
    assert "server_name" not in without and without["ca_file"] == "/etc/prometheus/tls/ca.crt"


# --- the environment CA's leaf, checked on the host the same way -----------------------------------------------


def _swap_leaf(tmp_path, leaf, live=None, only=None):
    """Stage the environment-CA files of `leaf` (those named in `only`, default all) over `live` ones in a scratch
    directory and run the check and swap script as the role sends it."""
    import subprocess

    from roles._service.rollback import check_script, swap_script
    from roles.grafana import tls_files

    tls = tmp_path / "tls"
    tls.mkdir(exist_ok=True)
    for name, content in (live or {}).items():
        (tls / name).write_text(content)
    wanted = [f for f in tls_files(leaf, str(tls / "ca.crt"), str(tls / "grafana.crt"), str(tls / "grafana.key"))
              if only is None or f.dest.rsplit("/", 1)[1] in only]
    for f in wanted:
        (tls / (f.dest.rsplit("/", 1)[1] + ".staged")).write_text(f.content)
    script = "set -eu\n" + "\n".join(check_script(wanted) + swap_script([f.dest for f in wanted], "grafana.service",
                                                                           "https://127.0.0.1:3000/api/health", 1,
                                                                           unit_dir=str(tmp_path / "no-units")))
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True), tls


def _environment_leaf(tmp_path, name: str):
    from roles._pki import CertificateAuthority

    return CertificateAuthority.open("test", directory=tmp_path / name).issue("mon1", "grafana", ips=("10.9.0.11",))


def test_the_environment_leaf_is_checked_with_openssl_and_swapped_in(tmp_path):
    leaf = _environment_leaf(tmp_path, "ca")
    result, tls = _swap_leaf(tmp_path, leaf)
    assert result.returncode == 0, result.stderr
    assert (tls / "grafana.crt").read_text() == leaf.cert_pem and not list(tls.glob("*.staged"))


def test_a_leaf_of_another_ca_or_with_another_key_is_refused_on_the_host_and_nothing_is_swapped(tmp_path):
    import dataclasses

    live_leaf = _environment_leaf(tmp_path, "ca")
    live = {"ca.crt": live_leaf.ca_pem, "grafana.crt": live_leaf.cert_pem, "grafana.key": live_leaf.key_pem}
    stranger = _environment_leaf(tmp_path, "other-ca")
    # A renewed certificate alone, from a CA the live bundle does not hold: refused.
    result, tls = _swap_leaf(tmp_path, stranger, live, only={"grafana.crt"})
    assert result.returncode == 1 and "refused" in result.stderr
    assert "issuer certificate" in result.stderr  # openssl verify's own reason: the chain check refused it
    assert (tls / "grafana.crt").read_text() == live_leaf.cert_pem and not list(tls.glob("*.staged"))
    # The right CA and certificate, with a key that is not the certificate's: refused, no key line in the message.
    mixed = dataclasses.replace(live_leaf, key_pem=stranger.key_pem)
    result, tls = _swap_leaf(tmp_path, mixed, live, only={"grafana.key"})
    assert result.returncode == 1 and (tls / "grafana.key").read_text() == live_leaf.key_pem
    key_lines = [line for line in stranger.key_pem.splitlines() if not line.startswith("-----")]
    assert not [line for line in key_lines if line in result.stderr + result.stdout]
    # A CA file that is not PEM: refused before the certificate is checked against it.
    garbage = dataclasses.replace(live_leaf, ca_pem="not a certificate\n")
    result, tls = _swap_leaf(tmp_path, garbage, live)
    assert result.returncode == 1 and (tls / "ca.crt").read_text() == live_leaf.ca_pem
