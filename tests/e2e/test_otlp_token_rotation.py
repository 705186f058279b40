"""A rotation of the gateway's OTLP bearer tokens under load (python -m roles.otlp_token_rotation, docs/tls.md).

begin -> converge -> promote -> converge -> finish -> converge, on the collectors' hosts (telemetry and app:
the monitoring hosts hold no token). The promote's converge, where every sender switches to its new token,
runs under the crash drills' bounded load (tests/e2e/test_crash.py `_drill`: JSON lines appended on the app
host go through its agent, which sends with the agent's token; spans from the controller to a gateway with the
operator's), then stored is counted against sent. No collector restarts for a token (the same main PID on
each host from the first converge to the last): each follows its token file. After finish the old operator
token gets 401 from every gateway and the new one 200, and a last short drill (the agent's new token alone
accepted) stores every line and span; a last converge changes nothing. The begin's
converge runs at -vvv and prints no token.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from lab import operator_tls
from roles import _otlp_tokens as tokens
from roles._pki import OPERATOR
from tests import lab_session
from tests.e2e import test_crash
from tests.e2e.test_crash import _drill, stack  # noqa: F401  (the fixture: the telemetry and app hosts)
from tests.stack import stack_hosts

pytestmark = [pytest.mark.lab, pytest.mark.tls, pytest.mark.tracing]

ENVIRONMENT = operator_tls.ENVIRONMENT
LOAD_S = 120  # the crash drills' 3,000 lines and 400 traces, over two minutes
COLLECTORS_ONLY = ("--exclude", "monitoring")  # the hosts with a token file: gateways and agents


def _step(step: str) -> None:
    result = subprocess.run([sys.executable, "-m", "roles.otlp_token_rotation", ENVIRONMENT, step], cwd=lab_session.ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout)


def _converge() -> lab_session.Converge:
    result = lab_session.converge(*COLLECTORS_ONLY)
    assert result.returncode == 0, result.output[-3000:]
    return result


def _main_pids(hosts) -> dict[str, str]:
    return {h.name: h.testinfra.check_output("systemctl show -p MainPID --value otelcol") for h in hosts}


def _post(listener, token: str) -> int:
    """An empty OTLP/HTTP export to one gateway with the operator's certificate and `token`."""
    session = operator_tls.operator_session()
    session.trust_env = False
    response = session.post(f"https://{listener.address}:{listener.port}/v1/traces", data=b'{"resourceSpans":[]}', timeout=20,
                            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    return response.status_code


def test_a_token_rotation_under_load_loses_nothing_restarts_no_collector_and_refuses_the_old_token_after(stack, monkeypatch):  # noqa: F811
    monkeypatch.setattr(test_crash, "RATE", test_crash.LINES / LOAD_S)
    monkeypatch.setattr(test_crash, "TRACE_RATE", test_crash.TRACES / LOAD_S)
    tel, app = stack
    gateways = tel.topology.instances("gateway.otlp_http")
    collectors = [h for h in stack_hosts() if {"telemetry", "app"} & set(h.groups)]
    # A rotation an earlier run left half done (the PKI directory outlives the lab) is completed first.
    for step in {tokens.BEGUN: ["promote", "finish"], tokens.PROMOTED: ["finish"]}.get(tokens.phase(ENVIRONMENT), []):
        _step(step)
        _converge()
    old = tokens.token(ENVIRONMENT, OPERATOR)
    before = _main_pids(collectors)

    _step("begin")
    # -vvv prints every command: the converge that writes the new token files must print no token.
    shown = lab_session.converge("-vvv", *COLLECTORS_ONLY)
    assert shown.returncode == 0, shown.output[-3000:]
    written = [line.split()[0] for line in tokens.accepted(ENVIRONMENT, tokens.senders(tel.topology)).splitlines()]
    assert len(written) == 2 * len(tokens.senders(tel.topology)), "begin made no next token"
    assert not [t for t in written if t in shown.output], "an OTLP token is in pyinfra's output at -vvv"
    converged = {}

    def during(tel, app):
        started = time.monotonic()
        converged["result"] = lab_session.converge(*COLLECTORS_ONLY)
        time.sleep(max(0.0, LOAD_S - 90 - (time.monotonic() - started)))

    _step("promote")
    _drill(stack, "token-promote", during, spans=True)  # every line and acknowledged span stored
    assert converged["result"].returncode == 0, converged["result"].output[-3000:]
    new = tokens.token(ENVIRONMENT, OPERATOR)
    assert new != old
    for listener in gateways:  # the overlap: both accepted
        assert (_post(listener, old), _post(listener, new)) == (200, 200), listener.host

    _step("finish")
    _converge()
    for listener in gateways:
        assert _post(listener, old) == 401, f"{listener.host} still takes the old token after finish"
        assert _post(listener, new) == 200, listener.host
    # The agent now sends its new token alone (the old one is off every gateway's list): its lines still arrive,
    # and spans with the operator's new token.
    monkeypatch.setattr(test_crash, "LINES", 600)
    monkeypatch.setattr(test_crash, "RATE", 60)
    monkeypatch.setattr(test_crash, "TRACE_RATE", 20.0)
    monkeypatch.setattr(test_crash, "TRACES", 200)
    _drill(stack, "token-finished", lambda tel, app: None, spans=True)
    agent = tokens.token(ENVIRONMENT, f"{app.name}.agent")
    from roles.otel_collector import OWN_TOKEN

    assert app.testinfra.file(OWN_TOKEN).content_string == agent + "\n"
    assert _main_pids(collectors) == before, "a collector restarted for a token (it should follow its file)"

    again = lab_session.converge(*COLLECTORS_ONLY)
    assert again.returncode == 0 and not any(again.changed.values()), again.output[-5000:]

