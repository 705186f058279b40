#!/usr/bin/env python3
"""Grafana backup to git, and restore from it (installed by roles/grafana_backup).

    sentinel_grafana_backup.py --config /etc/grafana-backup/config.json backup
    sentinel_grafana_backup.py --config ... restore [--revision REV] [--dry-run]

`backup` exports every folder, every dashboard (with its folder path), the
alerting provisioning objects (rule groups with their rules, contact points with
secrets redacted, the notification policy tree, mute timings) and the
datasources (without secrets) through Grafana's HTTP API with the `grafana-client`
library, writes them as stable JSON (sorted keys, volatile fields such as `id`,
`version`, `updated` and `provenance` removed) into a git working copy, commits
only when something changed and pushes over SSH with a deploy key. Only after all
of that succeeded does it write the node_exporter textfile metrics. Any failure
exits non-zero, resets the working copy to what the remote holds and leaves the
success metrics alone, so the `grafana-backup-stale` alert fires when it keeps failing.
Every backup run, successful or not, then records its outcome in a second textfile
beside the first (sentinel_grafana_backup_last_run.prom: when it ended, success 0/1),
so `grafana-backup-failing` warns after the first failed run, and a job that never
succeeded is told apart from one that never ran.

`restore` re-creates folders, dashboards and alerting objects from a git revision
(default: the remote branch's latest commit) through the API, overwriting, then
reads them back and compares; `--dry-run` prints what would change and changes
nothing. Datasources are not restored: the Grafana role provisions them.

Exit codes: 0 success, 1 Grafana failed (unreachable, bad token, API error),
2 git failed (fetch, commit, push rejected), 3 restore read-back differs, 4 bad
configuration.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REDACTED = "[REDACTED]"  # what Grafana itself shows for a secure setting
# Keys of contact-point settings and datasource jsonData that hold secrets.
_SECRET_KEY = re.compile(r"(password|passwd|token|secret|apikey|api_key|integrationkey|routingkey|credentials|privatekey)", re.I)
# Contact-point types whose `url` is the secret itself (a webhook URL with a token in it).
_SECRET_URL_TYPES = {"slack", "discord", "teams", "googlechat", "telegram"}
# Fields that change without anyone changing the object: ids, versions, timestamps, provenance.
_VOLATILE_TOP = {"id", "version", "iteration", "updated", "created", "provenance"}
_DATASOURCE_SECRET_FIELDS = {"password", "basicAuthPassword", "secureJsonData", "secureJsonFields"}
_DATASOURCE_VOLATILE = {"id", "orgId", "version", "typeLogoUrl"}
_FOLDER_FIELDS = ("uid", "title", "parentUid")
# What the backup owns in the working copy; everything else there is left alone.
MANAGED = ("folders.json", "datasources.json", "dashboards", "alerting")

EXIT_GRAFANA, EXIT_GIT, EXIT_MISMATCH, EXIT_CONFIG = 1, 2, 3, 4


class BackupError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


# --- configuration ----------------------------------------------------------


@dataclass(frozen=True)
class Config:
    grafana_url: str
    token_file: str
    repo_dir: str
    remote_url: str
    branch: str
    ssh_key_file: str
    known_hosts_file: str
    strict_host_key_checking: str  # "yes" (pinned known_hosts) or "accept-new" (lab only)
    textfile_path: str
    git_author_name: str = "Sentinel Grafana backup"
    git_author_email: str = "grafana-backup@localhost"
    timeout_seconds: float = 30.0
    # The environment CA that Grafana's https certificate chains to ("" = the system store: Grafana's
    # public certificate, from a public CA).
    ca_file: str = ""
    # The name Grafana's certificate is verified for when it is not grafana_url's host (the public
    # certificate's name, while the job connects to the address Grafana binds); "" = grafana_url's host.
    tls_server_name: str = ""
    # The token's expiry (a Unix time, written beside the token by whoever made it: the Grafana
    # role's helper, or the backup role from grafana_backup.token_expires); "" = not known.
    token_expiry_file: str = ""

    @classmethod
    def load(cls, path: str) -> "Config":
        try:
            data = json.loads(Path(path).read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError) as err:
            raise BackupError(EXIT_CONFIG, f"cannot read the config {path}: {err}") from None


# --- JSON normalisation -----------------------------------------------------


def dumps(doc: Any) -> str:
    """Stable pretty JSON: sorted keys, two-space indent, a final newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _drop(doc: dict, keys) -> dict:
    return {k: v for k, v in doc.items() if k not in keys}


def _drop_provenance(node: Any) -> Any:
    """Provenance says how an object was last written, not what it is (the policy tree nests it)."""
    if isinstance(node, dict):
        return {k: _drop_provenance(v) for k, v in node.items() if k != "provenance"}
    if isinstance(node, list):
        return [_drop_provenance(v) for v in node]
    return node


def _redact(settings: Any, url_is_secret: bool) -> Any:
    if isinstance(settings, dict):
        out = {}
        for key, value in settings.items():
            if (_SECRET_KEY.search(key) or (url_is_secret and key.lower() == "url")) and value not in (None, ""):
                out[key] = REDACTED
            else:
                out[key] = _redact(value, False)
        return out
    if isinstance(settings, list):
        return [_redact(v, False) for v in settings]
    return settings


def normalize_dashboard(dashboard: dict) -> dict:
    # Panel ids inside stay: they are part of the dashboard (links point at them).
    return _drop(dashboard, _VOLATILE_TOP)


def normalize_folder(folder: dict, path: list[str]) -> dict:
    doc = {k: folder.get(k) for k in _FOLDER_FIELDS}
    doc["parentUid"] = doc["parentUid"] or None
    doc["path"] = list(path)  # titles from the top; a list, since a title may hold "/"
    return doc


def normalize_rule(rule: dict) -> dict:
    return _drop(rule, _VOLATILE_TOP)


def normalize_contact_point(cp: dict) -> dict:
    doc = _drop(cp, _VOLATILE_TOP)
    doc["settings"] = _redact(doc.get("settings") or {}, str(doc.get("type", "")).lower() in _SECRET_URL_TYPES)
    return doc


def normalize_policies(tree: dict) -> dict:
    return _drop_provenance(tree)


def normalize_mute_timing(mt: dict) -> dict:
    return _drop(mt, _VOLATILE_TOP)


def normalize_datasource(ds: dict) -> dict:
    doc = _drop(ds, _DATASOURCE_VOLATILE | _DATASOURCE_SECRET_FIELDS)
    if isinstance(doc.get("jsonData"), dict):
        doc["jsonData"] = _redact(doc["jsonData"], False)
    return doc


def slug(text: str) -> str:
    """A file-system-safe name for a folder title or rule group."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return cleaned or "_"


# --- export -----------------------------------------------------------------


def connect(config: Config):
    """A grafana-client API object authenticated with the service-account token."""
    from grafana_client import GrafanaApi

    try:
        token = Path(config.token_file).read_text().strip()
    except OSError as err:
        raise BackupError(EXIT_CONFIG, f"cannot read the token file {config.token_file}: {err.strerror}") from None
    if not token:
        raise BackupError(EXIT_CONFIG, f"the token file {config.token_file} is empty")
    api = GrafanaApi.from_url(config.grafana_url, credential=token, timeout=config.timeout_seconds)
    if config.ca_file:
        api.client.verify = config.ca_file  # Grafana's certificate chains to the environment CA
    if config.tls_server_name:
        api.client.s.mount("https://", server_name_adapter(config.tls_server_name))
    return api


def server_name_adapter(name: str):
    """A niquests adapter whose TLS sends `name` as SNI and verifies the certificate for it, whatever host the
    URL connects to (urllib3's server_hostname and assert_hostname: curl --resolve, seen from the URL's side)."""
    from niquests.adapters import HTTPAdapter

    class ServerName(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            kwargs["server_hostname"] = name
            kwargs["assert_hostname"] = name
            super().init_poolmanager(*args, **kwargs)

    return ServerName()


def _folders(api) -> list[dict]:
    """Every folder, nested ones included, with its path of titles."""
    result: list[dict] = []
    seen: set[str] = set()

    def walk(parent_uid: str | None, path: list[str]) -> None:
        children = api.folder.get_all_folders(parent_uid=parent_uid) if parent_uid else api.folder.get_all_folders()
        for folder in sorted(children, key=lambda f: f["uid"]):
            if folder["uid"] in seen:
                continue
            full = api.folder.get_folder(folder["uid"])
            # A Grafana without nested folders ignores parentUid and lists every folder
            # at every level: keep each folder under its own parent only, once.
            if (full.get("parentUid") or None) != parent_uid:
                continue
            seen.add(full["uid"])
            here = path + [full["title"]]
            result.append(normalize_folder(full, here))
            walk(full["uid"], here)

    walk(None, [])
    return result


def _dashboards(api, folder_paths: dict[str, list[str]]) -> list[dict]:
    hits: list[dict] = []
    page = 1
    while True:
        batch = api.search.search_dashboards(type_="dash-db", limit=5000, page=page)
        hits += batch
        if len(batch) < 5000:
            break
        page += 1
    docs = []
    for hit in sorted(hits, key=lambda h: h["uid"]):
        full = api.dashboard.get_dashboard(hit["uid"])
        folder_uid = (full.get("meta") or {}).get("folderUid") or None
        docs.append(
            {
                "folderUid": folder_uid,
                "folderPath": folder_paths.get(folder_uid, []) if folder_uid else [],
                "dashboard": normalize_dashboard(full["dashboard"]),
            }
        )
    return docs


def _rule_groups(api) -> list[dict]:
    rules = api.alertingprovisioning.get_alertrules_all() or []
    groups: dict[tuple[str, str], list[dict]] = {}
    for rule in rules:
        groups.setdefault((rule["folderUID"], rule["ruleGroup"]), []).append(normalize_rule(rule))
    docs = []
    for (folder_uid, title), members in sorted(groups.items()):
        group = api.alertingprovisioning.get_rule_group(folder_uid, title)
        docs.append(
            {
                "folderUid": folder_uid,
                "title": title,
                "interval": group.get("interval"),
                "rules": sorted(members, key=lambda r: r.get("uid") or r.get("title")),
            }
        )
    return docs


def export(api) -> dict[str, Any]:
    """Everything the backup keeps, normalised, as {kind: objects}."""
    folders = _folders(api)
    paths = {f["uid"]: f["path"] for f in folders}
    mute_timings = api.alertingprovisioning.get_mute_timings() or []
    return {
        "folders": folders,
        "dashboards": _dashboards(api, paths),
        "rule_groups": _rule_groups(api),
        "contact_points": sorted(
            (normalize_contact_point(cp) for cp in api.alertingprovisioning.get_contactpoints() or []),
            key=lambda c: (c.get("name") or "", c.get("uid") or ""),
        ),
        "policies": normalize_policies(api.alertingprovisioning.get_notification_policy_tree() or {}),
        "mute_timings": sorted((normalize_mute_timing(m) for m in mute_timings), key=lambda m: m.get("name") or ""),
        "datasources": sorted((normalize_datasource(d) for d in api.datasource.list_datasources() or []), key=lambda d: d.get("uid") or ""),
    }


def object_counts(state: dict[str, Any]) -> dict[str, int]:
    return {
        "folders": len(state["folders"]),
        "dashboards": len(state["dashboards"]),
        "alert_rules": sum(len(g["rules"]) for g in state["rule_groups"]),
        "contact_points": len(state["contact_points"]),
        "notification_policies": 1 if state["policies"] else 0,
        "mute_timings": len(state["mute_timings"]),
        "datasources": len(state["datasources"]),
    }


def grafana_call(what: str, fn, *args):
    """Run an API step; turn the client's errors into a BackupError with the cause, never the token."""
    from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

    try:
        return fn(*args)
    except GrafanaUnauthorizedError:
        raise BackupError(EXIT_GRAFANA, f"{what}: Grafana refused the service-account token (401)") from None
    except GrafanaClientError as err:
        raise BackupError(EXIT_GRAFANA, f"{what}: Grafana answered {err.status_code}: {err.message}") from None
    except GrafanaException as err:
        raise BackupError(EXIT_GRAFANA, f"{what}: {err.message}") from None
    except OSError as err:  # connection refused, DNS, reset: Grafana unreachable
        raise BackupError(EXIT_GRAFANA, f"{what}: Grafana is unreachable: {err}") from None
    except Exception as err:  # niquests' connection errors are not OSErrors
        if type(err).__module__.startswith(("niquests", "urllib3")):
            raise BackupError(EXIT_GRAFANA, f"{what}: Grafana is unreachable: {type(err).__name__}") from None
        raise


# --- the files in the working copy -----------------------------------------


def render_files(state: dict[str, Any]) -> dict[str, str]:
    """Relative path -> content for everything the backup owns."""
    files = {"folders.json": dumps(sorted(state["folders"], key=lambda f: (f["path"], f["uid"])))}
    files["datasources.json"] = dumps(state["datasources"])
    for doc in state["dashboards"]:
        folder_dir = "/".join(slug(part) for part in doc["folderPath"]) or "General"
        files[f"dashboards/{folder_dir}/{slug(doc['dashboard']['uid'])}.json"] = dumps(doc)
    for group in state["rule_groups"]:
        files[f"alerting/rule-groups/{slug(group['folderUid'])}/{slug(group['title'])}.json"] = dumps(group)
    files["alerting/contact-points.json"] = dumps(state["contact_points"])
    files["alerting/policies.json"] = dumps(state["policies"])
    files["alerting/mute-timings.json"] = dumps(state["mute_timings"])
    return files


def parse_files(files: dict[str, str]) -> dict[str, Any]:
    """The inverse of render_files."""
    load = lambda name, default: json.loads(files[name]) if name in files else default  # noqa: E731
    return {
        "folders": load("folders.json", []),
        "dashboards": sorted((json.loads(v) for k, v in files.items() if k.startswith("dashboards/")), key=lambda d: d["dashboard"]["uid"]),
        "rule_groups": sorted(
            (json.loads(v) for k, v in files.items() if k.startswith("alerting/rule-groups/")), key=lambda g: (g["folderUid"], g["title"])
        ),
        "contact_points": load("alerting/contact-points.json", []),
        "policies": load("alerting/policies.json", {}),
        "mute_timings": load("alerting/mute-timings.json", []),
        "datasources": load("datasources.json", []),
    }


# --- git ----------------------------------------------------------------------


def git_env(config: Config) -> dict[str, str]:
    """The environment of every git command: the deploy key and a pinned known_hosts, no prompts."""
    ssh = [
        "ssh",
        "-i", config.ssh_key_file,
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={config.known_hosts_file}",
        "-o", f"StrictHostKeyChecking={config.strict_host_key_checking}",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=20",
    ]
    return {
        **os.environ,
        "GIT_SSH_COMMAND": " ".join(shlex.quote(part) for part in ssh),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": config.git_author_name,
        "GIT_AUTHOR_EMAIL": config.git_author_email,
        "GIT_COMMITTER_NAME": config.git_author_name,
        "GIT_COMMITTER_EMAIL": config.git_author_email,
        "LC_ALL": "C",
    }


class Repo:
    def __init__(self, config: Config):
        self.config = config
        self.dir = Path(config.repo_dir)
        self.env = git_env(config)

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["git", "-C", str(self.dir), *args], env=self.env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise BackupError(EXIT_GIT, f"git {args[0]} failed: {(proc.stderr or proc.stdout).strip()[-800:]}")
        return proc

    def ensure(self) -> None:
        """A working copy on the branch with `origin` pointing at the remote (idempotent)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / ".git").is_dir():
            self.git("init", "-q", "-b", self.config.branch)
        if self.git("remote", "get-url", "origin", check=False).returncode != 0:
            self.git("remote", "add", "origin", self.config.remote_url)
        else:
            self.git("remote", "set-url", "origin", self.config.remote_url)

    def head(self) -> str | None:
        proc = self.git("rev-parse", "--verify", "-q", "HEAD", check=False)
        return proc.stdout.strip() or None

    def remote_head(self) -> str | None:
        proc = self.git("rev-parse", "--verify", "-q", f"refs/remotes/origin/{self.config.branch}", check=False)
        return proc.stdout.strip() or None

    def sync_to_remote(self) -> None:
        """Make the working copy exactly what the remote branch holds (or empty for a new remote)."""
        self.git("fetch", "-q", "--prune", "origin")
        self.reset_to(self.remote_head())

    def reset_to(self, commit: str | None) -> None:
        if commit:
            self.git("checkout", "-q", "-B", self.config.branch, commit)
            self.git("reset", "-q", "--hard", commit)
        else:  # nothing pushed yet: no commits, no files
            self.git("symbolic-ref", "HEAD", f"refs/heads/{self.config.branch}")
            self.git("update-ref", "-d", f"refs/heads/{self.config.branch}", check=False)
            self.git("read-tree", "--empty")
        self.git("clean", "-q", "-fdx")

    def write(self, files: dict[str, str]) -> None:
        for name in MANAGED:
            path = self.dir / name
            if path.is_dir():
                subprocess.run(["rm", "-rf", str(path)], check=True)
            elif path.exists():
                path.unlink()
        for rel, content in files.items():
            path = self.dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)

    def commit_if_changed(self, message: str) -> bool:
        self.git("add", "-A", "--", *MANAGED)
        if self.git("diff", "--cached", "--quiet", check=False).returncode == 0:
            return False
        self.git("commit", "-q", "-m", message)
        return True

    def push(self) -> None:
        self.git("push", "-q", "origin", f"HEAD:refs/heads/{self.config.branch}")

    def files_at(self, revision: str) -> dict[str, str]:
        names = self.git("ls-tree", "-r", "--name-only", revision).stdout.split("\n")
        wanted = [n for n in names if n and n.split("/", 1)[0] in MANAGED]
        return {name: self.git("show", f"{revision}:{name}").stdout for name in wanted}


# --- the textfile metric ------------------------------------------------------


def metrics_text(now: float, counts: dict[str, int]) -> str:
    lines = [
        "# HELP sentinel_grafana_backup_last_success_timestamp_seconds Unix time of the last Grafana backup that exported, committed and pushed.",
        "# TYPE sentinel_grafana_backup_last_success_timestamp_seconds gauge",
        f"sentinel_grafana_backup_last_success_timestamp_seconds {now:.3f}",
        "# HELP sentinel_grafana_backup_objects Objects the last successful Grafana backup exported, by kind.",
        "# TYPE sentinel_grafana_backup_objects gauge",
    ]
    lines += [f'sentinel_grafana_backup_objects{{kind="{kind}"}} {count}' for kind, count in sorted(counts.items())]
    return "\n".join(lines) + "\n"


# Beside textfile_path, in the same directory, so the config needs no new key (a config
# rendered for this job version is then readable by the previous one and back).
RUN_METRIC_FILE_NAME = "sentinel_grafana_backup_last_run.prom"


def run_metrics_text(now: float, success: bool) -> str:
    return "\n".join([
        "# HELP sentinel_grafana_backup_last_run_timestamp_seconds Unix time the last Grafana backup run ended, whatever its outcome.",
        "# TYPE sentinel_grafana_backup_last_run_timestamp_seconds gauge",
        f"sentinel_grafana_backup_last_run_timestamp_seconds {now:.3f}",
        "# HELP sentinel_grafana_backup_last_run_success 1 if the last Grafana backup run exported, committed and pushed, 0 if it failed.",
        "# TYPE sentinel_grafana_backup_last_run_success gauge",
        f"sentinel_grafana_backup_last_run_success {1 if success else 0}",
    ]) + "\n"


def run_metric_path(config: "Config") -> str:
    return os.path.join(os.path.dirname(config.textfile_path), RUN_METRIC_FILE_NAME)


def write_metrics_atomically(path: str, text: str) -> None:
    """node_exporter must never read half a file: write a temporary file beside it, then rename."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".sentinel_grafana_backup.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


TOKEN_METRIC_FILE_NAME = "sentinel_grafana_backup_token.prom"
TOKEN_EXPIRY_METRIC = "sentinel_grafana_backup_token_expiry_seconds"
# The GrafanaBackupTokenExpiring alert fires this long before the expiry; the job warns from then on too.
TOKEN_WARN_SECONDS = 14 * 24 * 3600


def token_metric_path(config: "Config") -> str:
    return os.path.join(os.path.dirname(config.textfile_path), TOKEN_METRIC_FILE_NAME)


def token_expiry(config: "Config") -> float | None:
    """The token's expiry from token_expiry_file, or None when unknown (no file configured or present)."""
    if not config.token_expiry_file:
        return None
    try:
        text = Path(config.token_expiry_file).read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise BackupError(EXIT_CONFIG, f"cannot read the token expiry {config.token_expiry_file}: {err.strerror}") from None
    try:
        return float(text)
    except ValueError:
        raise BackupError(EXIT_CONFIG, f"the token expiry {config.token_expiry_file} is not a Unix time") from None


def token_metric_text(expiry: float) -> str:
    return "\n".join([
        f"# HELP {TOKEN_EXPIRY_METRIC} Unix time the Grafana backup's service-account token expires.",
        f"# TYPE {TOKEN_EXPIRY_METRIC} gauge",
        f"{TOKEN_EXPIRY_METRIC} {expiry:.0f}",
    ]) + "\n"


def record_token_expiry(config: "Config", now: float | None = None) -> float | None:
    """Export the token's expiry for GrafanaBackupTokenExpiring, at the start of every run (a failing run too),
    and warn in the journal once it is near. Returns the expiry, or None when unknown."""
    expiry = token_expiry(config)
    if expiry is None:
        return None
    try:
        write_metrics_atomically(token_metric_path(config), token_metric_text(expiry))
    except OSError as err:
        print(f"cannot write the metric {token_metric_path(config)}: {err.strerror}", file=sys.stderr)
    left = expiry - (now or time.time())
    if left <= 0:
        print("warning: the Grafana service-account token has expired: Grafana will refuse it (401); "
              "rotate it (docs/grafana.md, Backup token)", file=sys.stderr)
    elif left < TOKEN_WARN_SECONDS:
        print(f"warning: the Grafana service-account token expires in {left / 86400:.1f} days: "
              "converge to renew it, or rotate it (docs/grafana.md, Backup token)", file=sys.stderr)
    return expiry


# --- the commands -------------------------------------------------------------


def backup(config: Config, now: float | None = None) -> dict[str, Any]:
    api = connect(config)
    state = grafana_call("export", export, api)
    counts = object_counts(state)
    repo = Repo(config)
    repo.ensure()
    repo.sync_to_remote()
    before = repo.head()
    try:
        repo.write(render_files(state))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now or time.time()))
        summary = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items())
        changed = repo.commit_if_changed(f"Grafana backup {stamp}\n\n{summary}\n")
        if changed or (repo.head() and repo.head() != repo.remote_head()):
            repo.push()
    except BaseException:
        # No partial commit: back to what the remote holds.
        repo.reset_to(before)
        raise
    try:
        write_metrics_atomically(config.textfile_path, metrics_text(now or time.time(), counts))
    except OSError as err:
        # Pushed, but unreported: fail loudly so the stale alert is not a mystery.
        raise BackupError(EXIT_CONFIG, f"pushed, but cannot write the metric {config.textfile_path}: {err.strerror}") from None
    return {"changed": changed, "counts": counts, "commit": repo.head()}


def backup_and_record(config: Config) -> dict[str, Any]:
    """backup(), then its outcome in the last-run textfile, whatever it was (an unexpected error too).
    The token's expiry is exported first, whatever follows."""
    try:
        record_token_expiry(config)
        result = backup(config)
    except BaseException:
        try:
            write_metrics_atomically(run_metric_path(config), run_metrics_text(time.time(), success=False))
        except OSError as err:  # the backup's own error is the one to report; this one goes beside it
            print(f"cannot write the metric {run_metric_path(config)}: {err.strerror}", file=sys.stderr)
        raise
    try:
        write_metrics_atomically(run_metric_path(config), run_metrics_text(time.time(), success=True))
    except OSError as err:
        raise BackupError(EXIT_CONFIG, f"pushed, but cannot write the metric {run_metric_path(config)}: {err.strerror}") from None
    return result


def _by(items: list[dict], key) -> dict:
    return {key(item): item for item in items}


def plan_restore(desired: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(action, kind, name) for each object of the backup: create, update or unchanged."""
    plan = []

    def compare(kind: str, want: dict, have: dict, label) -> None:
        for key in sorted(want, key=str):
            if key not in have:
                plan.append(("create", kind, label(want[key])))
            elif want[key] != have[key]:
                plan.append(("update", kind, label(want[key])))
            else:
                plan.append(("unchanged", kind, label(want[key])))

    uid = lambda o: o["uid"]  # noqa: E731
    compare("folder", _by(desired["folders"], uid), _by(current["folders"], uid), lambda f: f"{'/'.join(f['path'])} ({f['uid']})")
    dash_key = lambda d: d["dashboard"]["uid"]  # noqa: E731
    compare("dashboard", _by(desired["dashboards"], dash_key), _by(current["dashboards"], dash_key),
            lambda d: f"{d['dashboard'].get('title')} ({d['dashboard']['uid']})")
    group_key = lambda g: (g["folderUid"], g["title"])  # noqa: E731
    compare("rule group", _by(desired["rule_groups"], group_key), _by(current["rule_groups"], group_key),
            lambda g: f"{g['title']} in folder {g['folderUid']} ({len(g['rules'])} rules)")
    cp_key = lambda c: c.get("uid") or c.get("name")  # noqa: E731
    compare("contact point", _by(desired["contact_points"], cp_key), _by(current["contact_points"], cp_key),
            lambda c: f"{c.get('name')} ({c.get('uid')})")
    compare("mute timing", _by(desired["mute_timings"], lambda m: m["name"]), _by(current["mute_timings"], lambda m: m["name"]),
            lambda m: m["name"])
    if desired["policies"]:
        action = "unchanged" if desired["policies"] == current["policies"] else "update"
        plan.append((action, "notification policies", "the policy tree"))
    return plan


def apply_restore(api, desired: dict[str, Any], current: dict[str, Any], message: str) -> None:
    ap = api.alertingprovisioning
    have_folders = _by(current["folders"], lambda f: f["uid"])
    # Parents before children.
    for folder in sorted(desired["folders"], key=lambda f: (len(f["path"]), f["path"])):
        have = have_folders.get(folder["uid"])
        if have is None:
            api.folder.create_folder(folder["title"], uid=folder["uid"], parent_uid=folder["parentUid"])
        elif have != folder:
            if have["title"] != folder["title"]:
                api.folder.update_folder(folder["uid"], title=folder["title"], overwrite=True)
            if have["parentUid"] != folder["parentUid"]:
                api.folder.move_folder(folder["uid"], folder["parentUid"])
    for doc in desired["dashboards"]:
        body = {"dashboard": doc["dashboard"], "overwrite": True, "message": message}
        if doc["folderUid"]:
            body["folderUid"] = doc["folderUid"]
        api.dashboard.update_dashboard(body)
    have_mutes = _by(current["mute_timings"], lambda m: m["name"])
    for mute in desired["mute_timings"]:
        if mute["name"] in have_mutes:
            ap.update_mute_timing(mute["name"], mute)
        else:
            ap.create_mute_timing(mute, disable_provenance=True)
    have_cps = _by(current["contact_points"], lambda c: c.get("uid"))
    for cp in desired["contact_points"]:
        if cp.get("uid") in have_cps:
            # "[REDACTED]" in an update keeps the secret Grafana holds.
            ap.update_contactpoint(cp["uid"], cp, disable_provenance=True)
        else:
            ap.create_contactpoint(cp, disable_provenance=True)
            if REDACTED in json.dumps(cp["settings"]):
                print(f"warning: contact point {cp.get('name')} was created without its secrets (not in the backup): "
                      "converge the Grafana role or set them in the UI", file=sys.stderr)
    if desired["policies"]:
        ap.set_notification_policy_tree(desired["policies"], disable_provenance=True)
    for group in desired["rule_groups"]:
        ap.update_rule_group(group["folderUid"], group["title"], group, disable_provenance=True)


def differences(desired: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return [f"{kind} {name}" for action, kind, name in plan_restore(desired, current) if action != "unchanged"]


def restore(config: Config, revision: str | None, dry_run: bool, out=sys.stdout) -> int:
    repo = Repo(config)
    repo.ensure()
    try:
        repo.git("fetch", "-q", "origin")
    except BackupError as err:
        # The git server may be down in the same incident: the local copy is the last good backup.
        print(f"warning: {err}; restoring from the local working copy's history", file=sys.stderr)
    rev = revision or (f"refs/remotes/origin/{config.branch}" if repo.remote_head() else "HEAD")
    commit = repo.git("rev-parse", "--verify", f"{rev}^{{commit}}").stdout.strip()
    desired = parse_files(repo.files_at(commit))
    api = connect(config)
    current = grafana_call("read the current state", export, api)
    plan = plan_restore(desired, current)
    for action, kind, name in plan:
        if action != "unchanged" or not dry_run:
            print(f"{'would ' if dry_run else ''}{action} {kind}: {name}", file=out)
    if dry_run:
        changes = sum(1 for a, _, _ in plan if a != "unchanged")
        print(f"dry run: {changes} of {len(plan)} objects would change (from commit {commit[:12]}); nothing was written", file=out)
        return 0
    grafana_call("restore", apply_restore, api, desired, current, f"restored from git commit {commit[:12]}")
    after = grafana_call("read back", export, api)
    diffs = differences(desired, after)
    if diffs:
        print("read-back differs from the backup:\n  " + "\n  ".join(diffs), file=sys.stderr)
        return EXIT_MISMATCH
    print(f"restored {len(plan)} objects from commit {commit[:12]}; read-back identical", file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Back up Grafana to git, or restore it from git.")
    parser.add_argument("--config", default="/etc/grafana-backup/config.json")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("backup", help="export, commit when changed, push, write the textfile metric")
    rest = sub.add_parser("restore", help="re-create folders, dashboards and alerting objects from git")
    rest.add_argument("--revision", help="git revision to restore (default: the remote branch's latest commit)")
    rest.add_argument("--dry-run", action="store_true", help="print what would change and change nothing")
    args = parser.parse_args(argv)
    try:
        config = Config.load(args.config)
        lock_path = Path(config.repo_dir).parent / ".sentinel-grafana-backup.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise BackupError(EXIT_GIT, f"another run holds {lock_path}") from None
            if args.command == "backup":
                result = backup_and_record(config)
                counts = ", ".join(f"{k}={v}" for k, v in result["counts"].items())
                print(f"backup ok: {'committed and pushed ' + result['commit'][:12] if result['changed'] else 'no change, no commit'}; {counts}")
                return 0
            return restore(config, args.revision, args.dry_run)
    except BackupError as err:
        print(f"sentinel-grafana-backup {args.command} failed: {err}", file=sys.stderr)
        return err.code


if __name__ == "__main__":
    sys.exit(main())
