"""The gateway's bearer tokens (roles/_otlp_tokens.py): who gets one, how the collector is wired to ask for
and send them, the files' shape check (run here with the shell, as on the host), and the two-phase rotation."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from roles import _otlp_tokens as tokens
from roles import otlp_token_rotation
from roles._pki import PkiError
from roles.otel_collector import (
    ACCEPTED_TOKENS, AGENT_AUTH, GATEWAY_AUTH, OWN_TOKEN, TOKEN_FILE_CHECK, collector_wiring, render_config, render_wired,
    token_files,
)
from tests.environments import context_of, environment, three_hosts
from tests.unit.test_tracing import collector_configs

pytestmark = [pytest.mark.tls, pytest.mark.tracing]


@pytest.fixture
def pki(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTINEL_PKI_DIR", str(tmp_path / "pki"))
    return tmp_path / "pki"


@pytest.fixture
def dev(tmp_path, pki):
    (tmp_path / "inv").mkdir()
    return environment(tmp_path / "inv", "dev", three_hosts("dev"))


@pytest.mark.parametrize("env", ["dev", "staging", "prod", "lab"])
def test_every_gateway_receiver_asks_for_a_token_and_every_agent_sends_its_own(env):
    configs = collector_configs(env).values()
    gateways = [c for c in configs if "otlp" in c["receivers"]]
    agents = [c for c in configs if "otlp/gateways" in c["exporters"]]
    assert gateways and agents
    for config in gateways:
        assert config["extensions"][GATEWAY_AUTH] == {"filename": ACCEPTED_TOKENS}
        for name, protocol in config["receivers"]["otlp"]["protocols"].items():
            assert protocol["auth"] == {"authenticator": GATEWAY_AUTH}, (env, name)
            assert "client_ca_file" in protocol["tls"]  # the token is beside the certificate, not instead of it
        assert GATEWAY_AUTH in config["service"]["extensions"]
    for config in agents:
        assert config["extensions"][AGENT_AUTH] == {"filename": OWN_TOKEN}
        assert config["exporters"]["otlp/gateways"]["auth"] == {"authenticator": AGENT_AUTH}
        assert AGENT_AUTH in config["service"]["extensions"]
        # The backend's way in stays its certificate alone, on the loopback.
        assert "auth" not in config["receivers"]["otlp/local"]["protocols"]["http"]


def test_a_token_is_never_asked_for_or_sent_without_tls(dev):
    ctx = context_of(dev, "app1.dev")
    wiring = collector_wiring(ctx)
    args = wiring.render_args()
    args.update(binds=dict(args["binds"]), otlp_tls=False)
    with pytest.raises(ValueError, match="otlp_tokens needs otlp_tls"):
        render_config(ctx.settings.otel_collector, args.pop("modes"), args.pop("environment"), **args)


def _check(tmp_path, content: str) -> int:
    """TOKEN_FILE_CHECK run by the shell against a file holding `content`, as the host runs it before the swap."""
    path = tmp_path / "staged"
    path.write_text(content)
    return subprocess.run(["sh", "-c", TOKEN_FILE_CHECK.replace("{path}", str(path))]).returncode


def test_the_token_files_name_every_sender_and_pass_their_own_check(dev, tmp_path):
    gateway = token_files(context_of(dev, "tel1.dev"), collector_wiring(context_of(dev, "tel1.dev")))
    agent = token_files(context_of(dev, "app1.dev"), collector_wiring(context_of(dev, "app1.dev")))
    assert [f.dest for f in gateway] == [ACCEPTED_TOKENS] and [f.dest for f in agent] == [OWN_TOKEN]
    for file in (*gateway, *agent):
        assert file.mode == "0640" and file.followed and file.validate == TOKEN_FILE_CHECK
        assert _check(tmp_path, file.content) == 0
    lines = [line.split() for line in gateway[0].content.splitlines()]
    assert [line[1:] for line in lines] == [["app1.dev.agent"], ["operator"]]
    assert agent[0].content == f"{lines[0][0]}\n"  # the agent sends the token the gateway lists under its name
    assert len({line[0] for line in lines}) == 2
    # A second render (a second converge) gives the same files: a token is made once.
    assert token_files(context_of(dev, "tel1.dev"), collector_wiring(context_of(dev, "tel1.dev"))) == gateway


@pytest.mark.parametrize("content", ["", "\n", "short operator\n", "A" * 43 + "\nbad token with a ; rm -rf /\n", "A" * 44 + "\n"])
def test_the_shape_check_refuses_what_the_gateway_could_not_use(tmp_path, content):
    assert _check(tmp_path, content) != 0


def test_tokens_are_private_on_the_controller(pki):
    token = tokens.token("dev", "app1.agent")
    directory = pki / "dev" / tokens.DIRECTORY
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(directory / "app1.agent").st_mode) == 0o600
    assert tokens.token("dev", "app1.agent") == token and len(token) == 43
    with pytest.raises(ValueError):
        tokens.token("dev", "../escape")


def test_a_rotation_accepts_both_tokens_across_each_converge_then_only_the_new(pki):
    names = ["app1.agent", "operator"]
    old = {name: tokens.token("dev", name) for name in names}
    accepted = lambda: {line.split()[0] for line in tokens.accepted("dev", names).splitlines()}
    assert accepted() == set(old.values()) and tokens.phase("dev") == tokens.STEADY

    assert tokens.begin("dev") == names and tokens.phase("dev") == tokens.BEGUN
    assert {name: tokens.token("dev", name) for name in names} == old  # senders unchanged
    assert len(accepted()) == 4 and set(old.values()) <= accepted()

    assert tokens.promote("dev") == names and tokens.phase("dev") == tokens.PROMOTED
    new = {name: tokens.token("dev", name) for name in names}
    assert not set(new.values()) & set(old.values())
    assert accepted() == set(old.values()) | set(new.values())  # whichever host converges first, both are taken

    assert tokens.finish("dev") == names and tokens.phase("dev") == tokens.STEADY
    assert accepted() == set(new.values())


def test_each_step_out_of_order_is_refused_with_the_next_step_and_no_token(pki):
    names = ["app1.agent"]
    secret = tokens.token("dev", names[0])
    for step, phase in ((tokens.promote, "steady"), (tokens.finish, "steady")):
        with pytest.raises(PkiError, match=f"phase '{phase}'") as refused:
            step("dev")
        assert "begin" in refused.value.fix and secret not in str(refused.value)
    tokens.begin("dev")
    with pytest.raises(PkiError, match="phase 'begun'") as refused:
        tokens.begin("dev")
    assert "promote" in refused.value.fix
    with pytest.raises(PkiError, match="phase 'begun'"):
        tokens.finish("dev")


def test_a_rotation_before_any_converge_is_refused(pki):
    with pytest.raises(PkiError, match="holds no OTLP tokens"):
        tokens.begin("dev")


def test_the_command_prints_steps_and_senders_never_a_token(pki, capsys):
    secret = tokens.token("dev", "app1.agent")
    for step in ("status", "begin", "status", "promote", "finish"):
        assert otlp_token_rotation.main(["dev", step]) == 0
    assert otlp_token_rotation.main(["dev", "finish"]) == 2
    out, err = capsys.readouterr()
    assert "app1.agent" in out and "now converge every host" in out and "finish` does not follow" in err
    assert secret not in out + err and tokens.token("dev", "app1.agent") not in out + err

