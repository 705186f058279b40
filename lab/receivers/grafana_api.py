"""Grafana HTTP API STAND-IN (NOT Grafana), for the backup job's tests only.

Grafana is AGPL and is neither built nor run here. This in-memory server answers
only the endpoints the backup job (files/grafana_backup/sentinel_grafana_backup.py)
and its restore call, with bearer-token auth (401 on a wrong token). Request and
response shapes follow Grafana's HTTP API documentation and the Apache-2.0 models
of github.com/grafana/grafana-openapi-client-go (generated from Grafana's OpenAPI
spec); each handler names its model. files/grafana_backup/api-shapes.yml lists the
same shapes, and tests/unit/test_grafana_backup_shapes.py holds the job and this
stand-in to them. No code comes from Grafana's repository.

It proves what the job sends and how it handles answers; it does not prove that
a real Grafana accepts the same bodies (see docs/runbooks/dashboard-restoration.md).

Tokens carry a role and may expire, as Grafana's service-account tokens do: the token
of --token-file has the role Editor (the backup's documented role) and no expiry; more
are added through /standin/tokens. An unknown or expired token gets 401; a Viewer's
write (POST, PUT, PATCH, DELETE under /api) gets 403 with Grafana's wording, as a real
Grafana answers a role that lacks dashboards:write, folders:write or the alerting
write permissions.

Test controls, outside Grafana's /api namespace:

- ``POST /standin/tokens`` ``{"token": "...", "role": "Viewer"|"Editor"|"Admin", "secondsToLive": n}``
  (0 or absent: no expiry) adds a token; ``DELETE /standin/tokens`` removes the added ones;

- ``POST /standin/fault`` ``{"mode": null|"unreachable"|"error"}``: "unreachable"
  drops every /api connection without an answer, "error" answers 503;
- ``POST /standin/reset`` wipes every object (``{"keep_datasources": true}`` keeps
  the datasources, which the restore does not re-create);
- ``GET /standin/requests`` / ``DELETE /standin/requests``: the recorded /api
  requests (method, path, query, body);
- ``GET /standin/state``: every object as stored; ``GET /health``.

    python -m lab.receivers.grafana_api --host 127.0.0.1 --port 16000 --token-file FILE
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .serving import DROP_CONNECTION, BodyError, Reply, RequestHandler, StandinServer, read_secret_file, serve

MAX_BODY_BYTES = 10 * 1024 * 1024


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class GrafanaState:
    """Grafana's objects, in memory, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_id = 1
        self.folders: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}  # uid -> {"dashboard": ..., "folderUid": ..., "version": n}
        self.rules: dict[str, dict] = {}
        self.group_intervals: dict[tuple[str, str], int] = {}
        self.contact_points: dict[str, dict] = {}
        self.policies: dict = {"receiver": "grafana-default-email", "group_by": ["grafana_folder", "alertname"]}
        self.mute_timings: dict[str, dict] = {}
        self.datasources: dict[str, dict] = {}

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def reset(self, keep_datasources: bool = False) -> None:
        datasources = self.datasources
        self.__init__()
        if keep_datasources:
            self.datasources = datasources

    def snapshot(self) -> dict:
        return copy.deepcopy(
            {
                "folders": self.folders,
                "dashboards": self.dashboards,
                "rules": self.rules,
                "contact_points": self.contact_points,
                "policies": self.policies,
                "mute_timings": self.mute_timings,
                "datasources": self.datasources,
            }
        )


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


ROLES = ("Viewer", "Editor", "Admin")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# Grafana's answer to a request its role does not permit (pkg/api/accesscontrol middleware wording).
FORBIDDEN = "You'll need additional permissions to perform this action. Permissions needed: any of dashboards:write, folders:write, alert.rules:write"


class GrafanaApiStandin(StandinServer):
    def __init__(self, address: tuple[str, int], token: str, role: str = "Editor"):
        self.token = token
        # token -> (role, expiry as a Unix time or None)
        self.tokens: dict[str, tuple[str, float | None]] = {token: (role, None)}
        self.state = GrafanaState()
        self.fault: str | None = None
        self.requests: list[dict] = []
        super().__init__(address, Handler)


# --- Grafana API handlers: (method, path regex) -> function(server, match, query, body) -----

ROUTES: list[tuple[str, re.Pattern, Any]] = []


def route(method: str, pattern: str):
    def register(fn):
        ROUTES.append((method, re.compile(f"^{pattern}$"), fn))
        return fn

    return register


def _folder_view(state: GrafanaState, folder: dict) -> dict:
    # models/folder.go (Folder): id, uid, title, url, parentUid, parents, version, created, updated.
    parents, parent = [], folder.get("parentUid")
    while parent:
        p = state.folders[parent]
        parents.insert(0, {"uid": p["uid"], "title": p["title"]})
        parent = p.get("parentUid")
    return {**folder, "url": f"/dashboards/f/{folder['uid']}/", "parents": parents, "canEdit": True, "canSave": True}


@route("GET", r"/api/folders")
def list_folders(server, m, query, body):
    # Response: []models.FolderSearchHit (models/folder_search_hit.go): id, uid, title, parentUid.
    parent = query.get("parentUid", [None])[0] or None
    return 200, [
        {"id": f["id"], "uid": f["uid"], "title": f["title"], "parentUid": f.get("parentUid")}
        for f in server.state.folders.values()
        if (f.get("parentUid") or None) == parent
    ]


def _folder(server, uid: str) -> dict:
    """The folder `uid`, or Grafana's 404 (GET /api/folders/{uid} answers 404 for an unknown uid)."""
    folder = server.state.folders.get(uid)
    if not folder:
        raise ApiError(404, "folder not found")
    return folder


@route("GET", r"/api/folders/(?P<uid>[^/]+)")
def get_folder(server, m, query, body):
    folder = _folder(server, m["uid"])
    return 200, _folder_view(server.state, folder)  # models/folder.go


@route("POST", r"/api/folders")
def create_folder(server, m, query, body):
    # Request: models.CreateFolderCommand (models/create_folder_command.go): uid, title, parentUid, description.
    uid = body.get("uid") or f"f{server.state.next_id + 1}"
    if not body.get("title"):
        raise ApiError(400, "folder title cannot be empty")
    if uid in server.state.folders:
        raise ApiError(409, "a folder with the same uid already exists")
    parent = body.get("parentUid") or None
    if parent and parent not in server.state.folders:
        raise ApiError(404, "parent folder not found")
    folder = {"id": server.state.new_id(), "uid": uid, "title": body["title"], "parentUid": parent, "version": 1,
              "created": _now(), "updated": _now()}
    server.state.folders[uid] = folder
    return 200, _folder_view(server.state, folder)


@route("PUT", r"/api/folders/(?P<uid>[^/]+)")
def update_folder(server, m, query, body):
    # Request: models.UpdateFolderCommand (models/update_folder_command.go): title, version, overwrite, description.
    folder = _folder(server, m["uid"])
    if not body.get("overwrite") and body.get("version") != folder["version"]:
        raise ApiError(412, "the folder has been changed by someone else")
    folder.update(title=body.get("title") or folder["title"], version=folder["version"] + 1, updated=_now())
    return 200, _folder_view(server.state, folder)


@route("POST", r"/api/folders/(?P<uid>[^/]+)/move")
def move_folder(server, m, query, body):
    # Request: models.MoveFolderCommand (models/move_folder_command.go): parentUid.
    folder = _folder(server, m["uid"])
    folder["parentUid"] = body.get("parentUid") or None
    return 200, _folder_view(server.state, folder)


@route("GET", r"/api/search")
def search(server, m, query, body):
    # Response: models.HitList of models.Hit (models/hit.go): id, uid, title, type, url, folderUid, folderTitle, tags.
    if query.get("type", ["dash-db"])[0] != "dash-db":
        raise ApiError(400, "the stand-in searches dashboards only (type=dash-db)")
    limit = int(query.get("limit", ["1000"])[0])
    page = int(query.get("page", ["1"])[0])
    hits = []
    for uid in sorted(server.state.dashboards):
        entry = server.state.dashboards[uid]
        folder = server.state.folders.get(entry["folderUid"] or "")
        hit = {"id": entry["dashboard"]["id"], "uid": uid, "title": entry["dashboard"].get("title", ""), "type": "dash-db",
               "url": f"/d/{uid}", "tags": entry["dashboard"].get("tags", []), "isStarred": False, "uri": f"db/{uid}"}
        if folder:
            hit.update(folderUid=folder["uid"], folderTitle=folder["title"], folderId=folder["id"], folderUrl=f"/dashboards/f/{folder['uid']}/")
        hits.append(hit)
    return 200, hits[(page - 1) * limit : page * limit]


@route("GET", r"/api/dashboards/uid/(?P<uid>[^/]+)")
def get_dashboard(server, m, query, body):
    # Response: models.DashboardFullWithMeta (models/dashboard_full_with_meta.go): dashboard, meta
    # (models/dashboard_meta.go: folderUid, folderTitle, version, slug, url, created, updated, ...).
    entry = server.state.dashboards.get(m["uid"])
    if not entry:
        raise ApiError(404, "Dashboard not found")
    folder = server.state.folders.get(entry["folderUid"] or "")
    meta = {"type": "db", "slug": m["uid"], "url": f"/d/{m['uid']}", "version": entry["dashboard"]["version"],
            "created": entry["created"], "updated": entry["updated"], "canSave": True, "canEdit": True,
            "folderUid": folder["uid"] if folder else "", "folderTitle": folder["title"] if folder else "General",
            "folderId": folder["id"] if folder else 0, "provisioned": False}
    return 200, {"dashboard": copy.deepcopy(entry["dashboard"]), "meta": meta}


@route("POST", r"/api/dashboards/db")
def save_dashboard(server, m, query, body):
    # Request: models.SaveDashboardCommand (models/save_dashboard_command.go): dashboard, folderUid, overwrite, message.
    # Response: postDashboardOkBody (models/post_dashboard_ok_body.go): id, uid, url, status, version, title.
    dashboard = dict(body.get("dashboard") or {})
    uid = dashboard.get("uid")
    if not uid or not dashboard.get("title"):
        raise ApiError(400, "Dashboard title cannot be empty / uid missing")
    folder_uid = body.get("folderUid") or None
    if folder_uid and folder_uid not in server.state.folders:
        raise ApiError(400, "folder not found")
    existing = server.state.dashboards.get(uid)
    if existing and not body.get("overwrite") and dashboard.get("version") != existing["dashboard"]["version"]:
        raise ApiError(412, "The dashboard has been changed by someone else")
    version = existing["dashboard"]["version"] + 1 if existing else 1
    dashboard.update(id=existing["dashboard"]["id"] if existing else server.state.new_id(), version=version)
    server.state.dashboards[uid] = {"dashboard": dashboard, "folderUid": folder_uid,
                                    "created": existing["created"] if existing else _now(), "updated": _now()}
    return 200, {"id": dashboard["id"], "uid": uid, "url": f"/d/{uid}", "status": "success", "version": version,
                 "title": dashboard["title"]}


@route("GET", r"/api/datasources")
def list_datasources(server, m, query, body):
    # Response: models.DataSourceList of models.DataSourceListItemDTO (models/data_source_list_item_dto.go).
    return 200, [copy.deepcopy(ds) for _, ds in sorted(server.state.datasources.items())]


@route("POST", r"/api/datasources")
def add_datasource(server, m, query, body):
    # Request: models.AddDataSourceCommand (models/add_data_source_command.go); used by tests to seed only.
    ds = {"id": server.state.new_id(), "orgId": 1, "uid": body["uid"], "name": body["name"], "type": body["type"],
          "access": body.get("access", "proxy"), "url": body.get("url", ""), "isDefault": bool(body.get("isDefault")),
          "basicAuth": bool(body.get("basicAuth")), "jsonData": body.get("jsonData") or {}, "readOnly": False,
          "typeLogoUrl": f"public/plugins/{body['type']}/logo.svg", "database": body.get("database", ""), "user": body.get("user", "")}
    server.state.datasources[ds["uid"]] = ds  # secureJsonData is accepted and never returned, as in Grafana
    return 200, {"id": ds["id"], "name": ds["name"], "message": "Datasource added", "datasource": ds}


@route("GET", r"/api/v1/provisioning/alert-rules")
def list_rules(server, m, query, body):
    # Response: models.ProvisionedAlertRules of models.ProvisionedAlertRule (models/provisioned_alert_rule.go).
    return 200, [copy.deepcopy(r) for _, r in sorted(server.state.rules.items())]


def _store_rule(server, rule: dict, provenance: str) -> dict:
    required = ("title", "condition", "data", "folderUID", "ruleGroup", "for", "noDataState", "execErrState")
    missing = [k for k in required if k not in rule]
    if missing:
        raise ApiError(400, f"invalid alert rule: missing {', '.join(missing)}")
    if rule["folderUID"] not in server.state.folders:
        raise ApiError(400, "folder does not exist")
    uid = rule.get("uid") or f"r{server.state.next_id + 1}"
    old = server.state.rules.get(uid)
    stored = {**rule, "uid": uid, "id": old["id"] if old else server.state.new_id(), "orgID": 1, "updated": _now(),
              "provenance": provenance}
    server.state.rules[uid] = stored
    server.state.group_intervals.setdefault((rule["folderUID"], rule["ruleGroup"]), 60)
    return stored


def _provenance(headers) -> str:
    # X-Disable-Provenance: objects stay editable in Grafana's UI (client/provisioning/*_parameters.go).
    return "" if headers.get("X-Disable-Provenance") else "api"


@route("POST", r"/api/v1/provisioning/alert-rules")
def create_rule(server, m, query, body, headers=None):
    return 201, _store_rule(server, body, _provenance(headers or {}))


@route("GET", r"/api/v1/provisioning/folder/(?P<folder>[^/]+)/rule-groups/(?P<group>[^/]+)")
def get_rule_group(server, m, query, body):
    # Response: models.AlertRuleGroup (models/alert_rule_group.go): folderUid, interval, rules, title.
    key = (m["folder"], m["group"])
    rules = [r for r in server.state.rules.values() if (r["folderUID"], r["ruleGroup"]) == key]
    if not rules:
        raise ApiError(404, "rule group not found")
    return 200, {"folderUid": key[0], "title": key[1], "interval": server.state.group_intervals.get(key, 60),
                 "rules": copy.deepcopy(sorted(rules, key=lambda r: r["uid"]))}


@route("PUT", r"/api/v1/provisioning/folder/(?P<folder>[^/]+)/rule-groups/(?P<group>[^/]+)")
def put_rule_group(server, m, query, body, headers=None):
    # Request and response: models.AlertRuleGroup (models/alert_rule_group.go). Replaces the group's rules.
    key = (m["folder"], m["group"])
    if m["folder"] not in server.state.folders:
        raise ApiError(400, "folder does not exist")
    interval = body.get("interval")
    if not isinstance(interval, int) or interval <= 0:
        raise ApiError(400, "invalid rule group: interval must be a positive number of seconds")
    wanted = {r.get("uid") for r in body.get("rules") or []}
    for uid in [u for u, r in server.state.rules.items() if (r["folderUID"], r["ruleGroup"]) == key and u not in wanted]:
        del server.state.rules[uid]
    for rule in body.get("rules") or []:
        _store_rule(server, {**rule, "folderUID": key[0], "ruleGroup": key[1]}, _provenance(headers or {}))
    server.state.group_intervals[key] = interval
    return get_rule_group(server, m, query, body)


@route("GET", r"/api/v1/provisioning/contact-points")
def list_contact_points(server, m, query, body):
    # Response: models.ContactPoints of models.EmbeddedContactPoint (models/embedded_contact_point.go):
    # uid, name, type, settings, disableResolveMessage, provenance. Secure settings come back "[REDACTED]".
    name = query.get("name", [None])[0]
    points = [copy.deepcopy(cp) for _, cp in sorted(server.state.contact_points.items()) if name in (None, cp["name"])]
    for cp in points:
        for key in cp.pop("_secure", []):
            if key in cp["settings"]:
                cp["settings"][key] = "[REDACTED]"
    return 200, points


def _store_contact_point(server, body: dict, uid: str, provenance: str) -> dict:
    if not body.get("type") or not isinstance(body.get("settings"), dict):
        raise ApiError(400, "invalid contact point: type and settings are required")
    old = server.state.contact_points.get(uid, {})
    settings = dict(body["settings"])
    secure = [k for k in ("url", "token", "password", "integrationKey", "apiKey") if k in settings and body["type"] != "email"]
    for key in secure:  # "[REDACTED]" keeps the stored secret, as Grafana does on update
        if settings[key] == "[REDACTED]" and key in old.get("settings", {}):
            settings[key] = old["settings"][key]
    cp = {"uid": uid, "name": body.get("name", uid), "type": body["type"], "settings": settings,
          "disableResolveMessage": bool(body.get("disableResolveMessage")), "provenance": provenance, "_secure": secure}
    server.state.contact_points[uid] = cp
    return cp


def _public(cp: dict) -> dict:
    return {k: v for k, v in cp.items() if k != "_secure"}


@route("POST", r"/api/v1/provisioning/contact-points")
def create_contact_point(server, m, query, body, headers=None):
    uid = body.get("uid") or f"cp{server.state.new_id()}"
    if uid in server.state.contact_points:
        raise ApiError(400, "contact point with this uid already exists")
    return 202, _public(_store_contact_point(server, body, uid, _provenance(headers or {})))


@route("PUT", r"/api/v1/provisioning/contact-points/(?P<uid>[^/]+)")
def update_contact_point(server, m, query, body, headers=None):
    if m["uid"] not in server.state.contact_points:
        raise ApiError(404, "contact point not found")
    _store_contact_point(server, body, m["uid"], _provenance(headers or {}))
    return 202, {"message": "contactpoint updated"}  # models/ack.go-like acknowledgement


@route("GET", r"/api/v1/provisioning/policies")
def get_policies(server, m, query, body):
    # Response: models.Route (models/route.go): receiver, group_by, routes, object_matchers, mute_time_intervals, ...
    return 200, copy.deepcopy(server.state.policies)


@route("PUT", r"/api/v1/provisioning/policies")
def put_policies(server, m, query, body, headers=None):
    if not body.get("receiver"):
        raise ApiError(400, "invalid policy tree: the root route needs a receiver")
    server.state.policies = {**body, "provenance": _provenance(headers or {})}
    return 202, {"message": "policies updated"}


@route("GET", r"/api/v1/provisioning/mute-timings")
def list_mute_timings(server, m, query, body):
    # Response: models.MuteTimings of models.MuteTimeInterval (models/mute_time_interval.go): name, time_intervals.
    return 200, [copy.deepcopy(mt) for _, mt in sorted(server.state.mute_timings.items())]


@route("POST", r"/api/v1/provisioning/mute-timings")
def create_mute_timing(server, m, query, body, headers=None):
    if not body.get("name"):
        raise ApiError(400, "invalid mute timing: name is required")
    if body["name"] in server.state.mute_timings:
        raise ApiError(409, "mute timing already exists")
    server.state.mute_timings[body["name"]] = {"name": body["name"], "time_intervals": body.get("time_intervals") or [],
                                               "version": "1", "provenance": _provenance(headers or {})}
    return 201, copy.deepcopy(server.state.mute_timings[body["name"]])


@route("PUT", r"/api/v1/provisioning/mute-timings/(?P<name>[^/]+)")
def update_mute_timing(server, m, query, body, headers=None):
    old = server.state.mute_timings.get(m["name"])
    if not old:
        raise ApiError(404, "mute timing not found")
    server.state.mute_timings[m["name"]] = {"name": m["name"], "time_intervals": body.get("time_intervals") or [],
                                            "version": str(int(old["version"]) + 1), "provenance": old["provenance"]}
    return 200, copy.deepcopy(server.state.mute_timings[m["name"]])


class Handler(RequestHandler):
    service = "grafana-api-standin"
    max_body_bytes = MAX_BODY_BYTES
    server: GrafanaApiStandin

    def _json_body(self) -> Any:
        try:
            raw = self.body()
        except BodyError as err:
            raise ApiError(err.status, str(err)) from None
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            raise ApiError(400, "bad request data") from None

    def _handle(self) -> Reply:
        method, url = self.command, urlsplit(self.path)
        try:
            body = self._json_body()
        except ApiError as err:
            return Reply(err.status, {"message": err.message})
        if url.path.startswith("/standin/") or url.path == "/health":
            return self._control(method, url.path, body)
        if url.path.startswith("/api/"):
            if self.server.fault == "unreachable":
                return DROP_CONNECTION  # like a Grafana that is down: no answer at all
            if self.server.fault == "error":
                return Reply(503, {"message": "stand-in fault: service unavailable"})
        presented = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        role, expiry = self.server.tokens.get(presented, (None, None))
        if role is None:
            return Reply(401, {"message": "invalid API key"})
        if expiry is not None and time.time() >= expiry:
            return Reply(401, {"message": "invalid API key", "messageId": "serviceaccounts.token-expired"})
        if method in WRITE_METHODS and role == "Viewer":
            with self.server.state.lock:
                self.server.requests.append({"method": method, "path": url.path, "query": parse_qs(url.query), "body": body,
                                             "refused": 403})
            return Reply(403, {"message": FORBIDDEN, "accessErrorId": "ACE0000000000"})
        query = parse_qs(url.query)
        for route_method, pattern, fn in ROUTES:
            match = pattern.match(url.path)
            if match and route_method == method:
                with self.server.state.lock:
                    self.server.requests.append({"method": method, "path": url.path, "query": query, "body": body})
                    try:
                        extra = {"headers": self.headers} if "headers" in fn.__code__.co_varnames else {}
                        status, reply = fn(self.server, match, query, body, **extra)
                    except ApiError as err:
                        status, reply = err.status, {"message": err.message}
                return Reply(status, reply)
        return Reply(404, {"message": "Not found (the Grafana API stand-in implements only what the backup job uses)"})

    def _control(self, method: str, path: str, body: Any) -> Reply:
        server = self.server
        if path == "/health":
            return Reply(200, {"status": "ok", "service": self.service})
        if path == "/standin/fault" and method == "POST":
            mode = body.get("mode")
            if mode not in (None, "unreachable", "error"):
                return Reply(400, {"message": "mode: null, unreachable or error"})
            server.fault = mode
            return Reply(200, {"fault": mode})
        if path == "/standin/tokens" and method == "POST":
            token, role, ttl = body.get("token"), body.get("role"), body.get("secondsToLive") or 0
            if not token or role not in ROLES or not isinstance(ttl, int) or ttl < 0:
                return Reply(400, {"message": "token, role (Viewer, Editor or Admin) and secondsToLive (>= 0)"})
            server.tokens[token] = (role, time.time() + ttl if ttl else None)
            return Reply(200, {"role": role, "expires": server.tokens[token][1]})
        if path == "/standin/tokens" and method == "DELETE":
            server.tokens = {server.token: server.tokens[server.token]}
            return Reply(200, {"tokens": 1})
        if path == "/standin/reset" and method == "POST":
            with server.state.lock:
                server.state.reset(keep_datasources=bool(body.get("keep_datasources")))
            return Reply(200, {"reset": True})
        if path == "/standin/requests":
            with server.state.lock:
                if method == "DELETE":
                    count = len(server.requests)
                    server.requests.clear()
                    return Reply(200, {"deleted": count})
                return Reply(200, {"requests": list(server.requests)})
        if path == "/standin/state" and method == "GET":
            with server.state.lock:
                return Reply(200, server.state.snapshot())
        return Reply(404, {"message": "unknown stand-in control"})

    do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815 (http.server naming)


def make_server(host: str, port: int, token: str, role: str = "Editor") -> GrafanaApiStandin:
    """Build (bind, not start) the stand-in; port 0 picks a free port; `role`: the token's."""
    return GrafanaApiStandin((host, port), token, role)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.receivers.grafana_api",
                                     description="Grafana HTTP API stand-in (NOT Grafana) for the backup job's tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9110)
    parser.add_argument("--token-file", required=True, help="file holding the service-account token to accept")
    parser.add_argument("--token-role", choices=ROLES, default="Editor", help="that token's role (the backup's: Editor)")
    args = parser.parse_args(argv)
    token = read_secret_file(args.token_file)
    if not token:
        parser.error(f"{args.token_file} is empty")
    server = make_server(args.host, args.port, token, args.token_role)
    host, port = server.server_address[:2]
    return serve(server, f"grafana-api-standin (NOT Grafana): listening on http://{host}:{port}/api/...")


if __name__ == "__main__":
    sys.exit(main())
