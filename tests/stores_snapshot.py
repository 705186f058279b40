"""What the stores' roles render in stores.mode single, as one JSON document per environment: the golden files
under tests/unit/golden/ were written by this module run against f6ccfe4 (main before scalable stores; first
written at 649bb63, then again for the S3 two-phase rotation's policy files), and
tests/unit/test_stores_scalable.py holds today's rendering to them byte for byte.

Only APIs 649bb63 already had are called, the way each role's deploy function calls them:

    git archive f6ccfe4 | tar -x -C /tmp/base
    PYTHONPATH=/tmp/base python tests/stores_snapshot.py /tmp/base > tests/unit/golden/single_mode.json

Then regenerated once on purpose, from the tree itself (`python tests/stores_snapshot.py .`), when the
authenticating fronts took Loki's and Tempo's host listeners (roles/loki/front.py, roles/tempo/front.py): the
only differences from the f6ccfe4 golden are the new local listeners (`loki.local` 127.0.0.1:3101,
`tempo.http_local` 3201, `tempo.otlp_http_local` 14418) and, in loki.yml and tempo.yaml, the HTTP servers and
Tempo's OTLP/HTTP receiver on them without TLS (the fronts serve it). Those binds do not exist at f6ccfe4.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

# A prod-like inventory with two telemetry hosts: the stores once, on tel1 (stores.mode single).
TWO_TELEMETRY_BODY = """
_stores = {"mode": "single", "host": "tel1"}
monitoring = [("mon1", {"ip": "10.20.0.11", "stores": _stores})]
telemetry = [("tel1", {"ip": "10.20.0.12", "stores": _stores}), ("tel2", {"ip": "10.20.0.15", "stores": _stores})]
app = [("app1", {"ip": "10.20.0.13", "stores": _stores})]
"""


def environments(repo: Path, directory: Path) -> dict:
    from roles._environment import load_environment
    from tests.environments import environment

    found = {env: load_environment(repo / "inventory" / f"{env}.py") for env in ("dev", "staging", "prod")}
    found["prod-two-telemetry"] = environment(directory, "prod", TWO_TELEMETRY_BODY)
    return found


def snapshot(environment) -> dict:
    """Every host's listeners and firewall openings, and what the object store, Loki, Tempo and Grafana's
    datasources render from them."""
    from roles import loki, object_store, tempo
    from roles._placement import s3_accounts
    from roles._tls import TLS_LISTENERS  # noqa: F401  (the same import graph as the deploy)
    from roles.grafana.peers import grafana_peers
    from tests.environments import GOOD_SECRETS, context_of

    topology = environment.topology
    out: dict = {}
    for host in environment.hosts:
        ctx = context_of(environment, host.name, GOOD_SECRETS)
        me = ctx.settings
        entry: dict = {
            "listeners": sorted(f"{l.name} {l.bind}" for l in topology.on(host.name)),
            "openings": [f"{o.listener} {o.port}/{o.protocol} {' '.join(o.sources)}" for o in topology.openings(host.name)],
        }
        names = {l.component for l in topology.on(host.name)}
        if "object_store" in names:
            store = me.object_store
            spec = object_store.service_spec(me, GOOD_SECRETS, ctx.bind("object_store.s3"))
            entry["versitygw"] = {"exec_start": list(spec.exec_start), "ready_url": spec.ready_url,
                                  "accounts_script": object_store.accounts_script(s3_accounts(me), store.listen_port, store.region),
                                  "account_files": {a.name: object_store.account_files(a, GOOD_SECRETS, store.listen_port)
                                                    for a in s3_accounts(me)}}
        if "loki" in names:
            entry["loki.yml"] = loki.render_config(
                me.loki, me.retention, topology.reach("object_store.s3", host.name), me.object_store.region,
                ctx.bind("loki.local"), ctx.bind("loki.grpc"))
        if "tempo" in names:
            binds = {l.name: l.bind for l in topology.on(host.name) if l.component == "tempo"}
            s3 = me.traces.tempo.backend == "s3"
            entry["tempo.yaml"] = tempo.config_text(tempo.render_config(
                me.traces, topology.reach("object_store.s3", host.name) if s3 else "", me.object_store.region, binds=binds, tls=tempo.TLS))
        if "monitoring" in host.groups:
            peers = grafana_peers(ctx)
            entry["grafana"] = {"traces_url": peers.traces_url, "logs_url": peers.logs_url}
        out[host.name] = entry
    return out


def main(repo: str) -> None:
    sys.path.insert(0, repo)
    with tempfile.TemporaryDirectory() as directory:
        found = environments(Path(repo), Path(directory))
        print(json.dumps({env: snapshot(environment) for env, environment in found.items()}, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
