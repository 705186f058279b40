"""A rollover of the lab's CA under load (python -m roles.ca_rollover, docs/tls.md "CA rollover").

begin -> converge -> promote -> converge -> finish -> converge, the promote's converge (where every leaf
changes hands) under the crash drills' bounded load (tests/e2e/test_crash.py `_drill`: JSON lines appended on the app host, spans sent to the
gateway, then stored counted against sent). After promote every listener the controller reaches serves
a certificate of the new CA and the old CA's operator certificate still gets in; after finish it is
refused; a last converge changes nothing. It changes the lab's CA for the rest of the session (every
later test opens the new one).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time

import pytest
from cryptography import x509

from lab import operator_tls
from roles._pki import BEGUN, PROMOTED, PkiError, pki_dir, rollover_phase
from roles._tls import TLS_LISTENERS
from tests import lab_session
from tests.e2e import test_crash
from tests.e2e.test_crash import _drill, stack  # noqa: F401  (the fixture: the telemetry and app hosts)
from tests.e2e.test_tls import _context, _get, _path

pytestmark = [pytest.mark.lab, pytest.mark.tls]

ENVIRONMENT = operator_tls.ENVIRONMENT
LOAD_S = 120  # the crash drills' 3,000 lines and 400 traces, spread over two minutes of each converge
# What the controller reaches over TLS (the tests that call them: test_tls, test_tls_stores, test_tls_otlp, test_crash).
SERVED = (*TLS_LISTENERS, "victorialogs.http", "jaeger.query", "gateway.otlp_http")


def _rollover(step: str) -> None:
    # finish --force: leaves on file of components a past session placed elsewhere would hold it back; that
    # every live listener moved to the new CA is checked after promote, and the old CA refused after finish.
    force = ("--force",) if step == "finish" else ()
    result = subprocess.run([sys.executable, "-m", "roles.ca_rollover", ENVIRONMENT, step, *force], cwd=lab_session.ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PRIVATE" not in result.stdout + result.stderr
    print(result.stdout)


def _converge_under_load(stack, step: str) -> None:  # noqa: F811
    """The step, then a converge while the bounded load runs; every line and acknowledged span stored."""
    _rollover(step)
    converged = {}

    def during(tel, app):
        started = time.monotonic()
        converged["result"] = lab_session.converge()
        time.sleep(max(0.0, LOAD_S - 90 - (time.monotonic() - started)))  # _drill waits 120 s for the load's end

    _drill(stack, f"rollover-{step}", during, spans=True)
    result = converged["result"]
    assert result.returncode == 0, result.output[-3000:]


def _converge(stack, step: str) -> None:  # noqa: F811
    """The step, then a converge (the bundle grows or shrinks: restarts that the crash drills prove lose nothing)."""
    _rollover(step)
    result = lab_session.converge()
    assert result.returncode == 0, result.output[-3000:]


def _complete_an_interrupted_rollover(stack) -> list[str]:  # noqa: F811
    """Bring a rollover that an earlier run left half done (a failed assert, a killed session: the PKI
    directory outlives the lab) to the steady phase, as an operator would before beginning another. Returns
    the steps run. Without it `begin` is refused ("does not follow the phase 'promoted'"), as CI once saw."""
    try:
        phase = rollover_phase(pki_dir(ENVIRONMENT))
    except PkiError:  # a promote interrupted between its two renames: running it again completes it
        phase = BEGUN
    steps = {BEGUN: ["promote", "finish"], PROMOTED: ["finish"]}.get(phase, [])
    for step in steps:
        _converge(stack, step)
    return steps


def _served_issuer(listener) -> x509.Certificate:
    ca_file, cert, key = operator_tls.operator_files()
    context = _context(ca_file, (cert, key))
    with context.wrap_socket(socket.create_connection((listener.address, listener.port), timeout=10),
                             server_hostname=listener.address) as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def test_a_ca_rollover_under_load_keeps_everything_flowing_and_refuses_the_old_ca_after(stack, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(test_crash, "RATE", test_crash.LINES / LOAD_S)
    monkeypatch.setattr(test_crash, "TRACE_RATE", test_crash.TRACES / LOAD_S)
    tel = stack[0]
    topology = tel.topology
    alertmanagers = topology.instances("alertmanager.web")
    leftover = _complete_an_interrupted_rollover(stack)
    if leftover:
        print(f"an earlier run's rollover was completed first: {', '.join(leftover)}")
    # The old CA's operator certificate (a leaf and its key, not the CA's), kept to knock on the door afterwards.
    _, cert, key = operator_tls.operator_files()
    old = (str(shutil.copy(cert, tmp_path / "old-operator.crt")), str(shutil.copy(key, tmp_path / "old-operator.key")))

    _converge(stack, "begin")
    _converge_under_load(stack, "promote")  # the step where every leaf changes hands
    new_ca = x509.load_pem_x509_certificate((pki_dir(ENVIRONMENT) / "ca.crt").read_bytes())
    for listener in (l for name in SERVED for l in topology.instances(name)):
        served = _served_issuer(listener)
        assert served.issuer == new_ca.subject, f"{listener.host} {listener.name} serves {served.issuer.rfc4514_string()}"
        served.verify_directly_issued_by(new_ca)
    ca_file = operator_tls.operator_files()[0]
    for listener in alertmanagers:  # the overlap: the old CA's certificate still gets in
        assert _get(listener, _path(listener), _context(ca_file, old)) == 200, listener.host

    _converge(stack, "finish")
    ca_file = operator_tls.operator_files()[0]
    for listener in alertmanagers:
        result = _get(listener, _path(listener), _context(ca_file, old))
        assert str(result).startswith("refused"), f"{listener.host} alertmanager admitted the old CA's certificate: {result}"
        assert _get(listener, _path(listener), _context(ca_file, operator_tls.operator_files()[1:])) == 200, listener.host

    again = lab_session.converge()
    assert again.returncode == 0 and not any(again.changed.values()), again.output[-5000:]
