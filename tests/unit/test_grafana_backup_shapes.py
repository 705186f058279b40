"""The backup job's requests, recorded against the Grafana API STAND-IN, match the
shapes in files/grafana_backup/api-shapes.yml (method, path, query, body fields), and
the stand-in's answers carry the fields that file documents.

api-shapes.yml takes its shapes from Grafana's HTTP API docs and the Apache-2.0
models of grafana-openapi-client-go; this test keeps the job and the stand-in to it.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import requests
import yaml

from tests.unit.grafana_backup_fixtures import TOKEN, StandinClient, bare_remote, load_job, seed, start_standin, write_config

ROOT = Path(__file__).resolve().parents[2]
SHAPES = yaml.safe_load((ROOT / "files" / "grafana_backup" / "api-shapes.yml").read_text())["endpoints"]
job = load_job()


def _pattern(path: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\{[a-z_]+\}", "[^/]+", path) + "$")


def endpoint_of(method: str, path: str) -> dict | None:
    for shape in SHAPES:
        if shape["method"] == method and _pattern(shape["path"]).match(path):
            return shape
    return None


def test_every_shape_names_its_source():
    for shape in SHAPES:
        assert shape["model"].startswith("models/") and ".go" in shape["model"], shape["name"]
        assert shape["client"].startswith("client/"), shape["name"]
        assert shape["method"] in ("GET", "POST", "PUT") and shape["path"].startswith("/api/"), shape["name"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Every request of a backup, a dry-run restore and a restore after a wipe and a change."""
    tmp = tmp_path_factory.mktemp("shapes")
    server = start_standin()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        client = StandinClient(base)
        seed(client)
        config = job.Config.load(str(write_config(tmp, base, str(bare_remote(tmp)))))
        client.control("DELETE", "/standin/requests")
        job.backup(config)
        job.restore(config, None, dry_run=True, out=io.StringIO())
        # A wipe (restore creates) and a change on top of the restored state (restore updates).
        client.control("POST", "/standin/reset", {"keep_datasources": True})
        job.restore(config, None, dry_run=False, out=io.StringIO())
        client.api("POST", "/api/folders", {"uid": "extra", "title": "Extra"})
        client.api("PUT", "/api/folders/sentinel", {"title": "renamed", "overwrite": True})
        client.api("POST", "/api/folders/sentinel-app/move", {"parentUid": "extra"})
        cp = client.api("GET", "/api/v1/provisioning/contact-points?name=email-digest")[0]
        client.api("PUT", "/api/v1/provisioning/contact-points/email-digest", {**cp, "settings": {"addresses": "x@y"}})
        client.api("PUT", "/api/v1/provisioning/mute-timings/weekends", {"name": "weekends", "time_intervals": []})
        seeded = len(client.control("GET", "/standin/requests")["requests"])
        assert job.restore(config, None, dry_run=False, out=io.StringIO()) == 0
        requests_seen = client.control("GET", "/standin/requests")["requests"]
        job_requests = [r for i, r in enumerate(requests_seen) if not (seeded - 6 <= i < seeded)]
        yield {"requests": job_requests, "base": base}
    finally:
        server.shutdown()
        server.server_close()


def test_the_job_calls_only_documented_endpoints_with_documented_fields(recorded):
    used = set()
    for request in recorded["requests"]:
        shape = endpoint_of(request["method"], request["path"])
        assert shape, f"undocumented endpoint {request['method']} {request['path']}"
        used.add(shape["name"])
        assert set(request["query"]) <= set(shape.get("query", [])), (shape["name"], request["query"])
        if request["method"] != "GET":
            assert isinstance(request["body"], dict), shape["name"]
            extra = set(request["body"]) - set(shape["request_fields"])
            assert not extra, f"{shape['name']}: fields {sorted(extra)} are not in {shape['model']}"
    # The recorded runs exercised every documented endpoint, so none is listed without being checked.
    assert used == {s["name"] for s in SHAPES}, sorted({s["name"] for s in SHAPES} - used)


def _sample_path(shape: dict) -> str:
    values = {"folder_uid": "sentinel", "dashboard_uid": "business", "group": "backend"}
    return re.sub(r"\{([a-z_]+)\}", lambda m: values[m.group(1)], shape["path"])


@pytest.mark.parametrize("shape", [s for s in SHAPES if s["method"] == "GET"], ids=lambda s: s["name"])
def test_standin_answers_carry_the_documented_fields(shape, tmp_path):
    server = start_standin()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        seed(StandinClient(base))
        params = {"type": "dash-db"} if shape["path"] == "/api/search" else None
        r = requests.get(base + _sample_path(shape), params=params, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert r.status_code == 200, r.text
        items = r.json() if shape.get("response_list") else [r.json()]
        assert items, shape["name"]
        for item in items:
            missing = set(shape["response_fields"]) - set(item)
            assert not missing, f"{shape['name']}: stand-in answer lacks {sorted(missing)} of {shape['model']}"
            for field, nested in (shape.get("nested_response_fields") or {}).items():
                assert set(nested) <= set(item[field]), (shape["name"], field)
    finally:
        server.shutdown()
        server.server_close()


def test_a_wrong_token_gets_401():
    server = start_standin()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        r = requests.get(base + "/api/search", headers={"Authorization": "Bearer wrong"}, timeout=10)
        assert r.status_code == 401 and "message" in r.json()
        assert requests.get(base + "/api/search", timeout=10).status_code == 401
    finally:
        server.shutdown()
        server.server_close()
