"""Erasure on request (GDPR): one command, the same interface for Loki and VictoriaLogs.

    python -m roles.retention.erase --env prod \\
        --selector '{service="sentinel-backend"}' --all-streams \\
        --filter memberId=m-0002 \\
        --from 2026-01-01T00:00:00Z --to 2026-12-03T00:00:00Z \\
        --requested-by "J. Doe (DPO)" --reason "GDPR art. 17 request #123"

1. The request is checked before anything is sent (see `check_request`): a selector
   that does not parse, names a label that is not a stream label of the contract or a
   stream outside the policy, or spans every stream without `--all-streams`, is
   refused with the fix; so is a request without a line filter (whole streams are the
   retention policy's business, not an erasure's).
2. A "requested" entry is appended to the audit log, then the store's delete API is
   called: Loki `POST /loki/api/v1/delete` (query, start, end), VictoriaLogs
   `POST /delete/run_task` (filter).
3. The command queries the same lines until none is left, bounded by `--timeout`.
4. A "completed" (or "timed_out" / "failed") entry is appended to the audit log and
   pushed to the store as a `stream="audit"` line of service `sentinel-toolkit`.

The audit log (docs/retention.md "Erasure") is an append-only JSON-lines file on the
controller (`--audit-log`, default $SENTINEL_ERASURE_AUDIT_LOG or
/var/lib/sentinel-toolkit/erasure-audit.jsonl), never touched by retention or by an
erasure. It records the line filters as "field=value" strings, so the line filter of
a later erasure (`"memberId":"m-0002"`) can never match the audit line itself.

Identity (docs/tls.md "The stores"): over https the command presents the erasure identity
("erasure", issued on the controller by the environment CA, roles/_tls.py `controller_identity`),
the only identity besides the store's own retention job that VictoriaLogs' front admits to /delete/*.

Exit status: 0 erased, 1 store error or timeout, 2 refused.
"""

from __future__ import annotations

if __name__ == "__main__":
    # The command reads the inventory and group data with pyinfra's loader, whose package patches ssl
    # with gevent when imported: patched after requests took ssl, an https call recurses forever
    # (the store's front, docs/tls.md). Patched first, before anything imports ssl.
    from gevent import monkey

    monkey.patch_all()

import argparse
import getpass
import json
import math
import os
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import requests

from roles._net import host_port
from roles._tls import is_tls
from roles._settings import ENVIRONMENTS
from roles.retention.contract import stream_labels, streams, unmatchable
from roles.retention.selectors import Selector, SelectorError, may_overlap, parse_selector

DEFAULT_AUDIT_LOG = "/var/lib/sentinel-toolkit/erasure-audit.jsonl"
AUDIT_SERVICE = "sentinel-toolkit"
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Refused(ValueError):
    """A request the command will not send; `fix` says what to do instead."""

    def __init__(self, problem: str, fix: str):
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}. Fix: {fix}")


@dataclass(frozen=True)
class ErasureRequest:
    selector: Selector
    filters: tuple[tuple[str, str], ...]  # (field, value): every one must match (AND)
    start: datetime
    end: datetime
    requested_by: str
    reason: str
    all_streams: bool = False

    def audit_fields(self) -> dict:
        return {
            "selector": str(self.selector),
            # "field=value" strings, never a JSON object: see the module docstring.
            "filters": [f"{name}={value}" for name, value in self.filters],
            "from": _rfc3339(self.start),
            "to": _rfc3339(self.end),
            "requestedBy": self.requested_by,
            "reason": self.reason,
            "allStreams": self.all_streams,
        }


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(text: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(f"{what} {text!r} is not a time", f"write it in RFC 3339, e.g. 2026-01-01T00:00:00Z") from None
    if moment.tzinfo is None:
        raise Refused(f"{what} {text!r} has no time zone", "end it with Z (UTC) or an offset such as +01:00")
    return moment


def parse_filter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not _FIELD.fullmatch(name) or not value or any(ord(c) < 0x20 for c in value):
        raise Refused(
            f"line filter {text!r} is not FIELD=VALUE",
            "write it like memberId=m-0002 (a JSON field of the log line, docs/contract.md section 4, and its exact value)",
        )
    return name, value


def check_request(req: ErasureRequest, minimums: tuple = ()) -> list[str]:
    """Refuse a request that is empty, over-broad or outside the policy; return warnings to record.

    `minimums` are the policy's ComplianceMinimum entries: erasing lines a minimum
    keeps is allowed (an erasure request is a legal duty too) but recorded.
    """
    why = unmatchable(req.selector)
    if why:
        raise Refused(
            f"the selector {req.selector} can match no stream of the retention policy: {why}",
            f"select on the stream labels {', '.join(stream_labels())} with values the backend emits; the policy's "
            f"streams are {', '.join(streams())} (a new stream needs a rule in `retention.streams` in group_data and the contract first)",
        )
    stream_matchers = [m for m in req.selector.matchers if m.name == "stream"]
    # The selector names its streams when some stream of the contract fails it.
    names_streams = any(not all(m.matches(s) for m in stream_matchers) for s in streams())
    if not names_streams and not req.all_streams:
        raise Refused(
            f"the selector {req.selector} spans every log stream ({', '.join(streams())})",
            'name the streams, e.g. add stream="audit", or pass --all-streams to erase from every stream on purpose',
        )
    if not req.filters:
        raise Refused(
            "no line filter: the request would erase whole streams",
            "add --filter FIELD=VALUE (e.g. memberId=m-0002); whole streams are removed by the retention policy",
        )
    names = [name for name, _ in req.filters]
    for name in sorted({n for n in names if names.count(n) > 1}):
        raise Refused(
            f"--filter {name}=... is given twice: the filters are ANDed, so no line could match both values",
            "erase one value per request (run the command once per member)",
        )
    broad = [name for name in names if name in stream_labels()]
    if broad and not req.all_streams:
        raise Refused(
            f"--filter {broad[0]}=... filters on a stream label: it matches whole streams' lines (every {broad[0]} line), not one person's",
            "filter on a field of the person (memberId, visitorId...), or pass --all-streams to erase that broadly on purpose",
        )
    if req.start >= req.end:
        raise Refused(f"--from {_rfc3339(req.start)} is not before --to {_rfc3339(req.end)}", "give a time range that is not empty")
    if not req.requested_by.strip() or not req.reason.strip():
        raise Refused("the requester or the reason is empty", "say who asked (--requested-by) and why (--reason): both go to the audit log")
    warnings = []
    for minimum in minimums:
        if may_overlap(req.selector, minimum.parsed):
            warnings.append(f"may erase lines the {minimum.name} minimum ({minimum.selector}, {minimum.at_least}) keeps")
    return warnings


# --- the two stores ----------------------------------------------------------


def logql_query(req: ErasureRequest) -> str:
    """The LogQL of a Loki delete request: the selector and one line filter per field.

    The line is the backend's compact JSON (docs/contract.md section 4), so a field
    with a string value reads `"memberId":"m-0002"` in it, closing quote included:
    `m-0002` never matches `m-00021`. Loki's delete API takes line filters.
    """
    parts = [str(req.selector)]
    for name, value in req.filters:
        # Node's JSON.stringify (the backend) writes non-ASCII as is, not as \\u escapes.
        needle = f"{json.dumps(name, ensure_ascii=False)}:{json.dumps(value, ensure_ascii=False)}"
        parts.append(f"|= {json.dumps(needle)}")
    return " ".join(parts)


def logsql_filter(req: ErasureRequest) -> str:
    """The LogsQL of a VictoriaLogs delete task: stream filter, exact field matches, time range."""
    parts = [str(req.selector)]
    for name, value in req.filters:
        parts.append(f"{name}:={json.dumps(value, ensure_ascii=False)}")
    parts.append(f"_time:[{_rfc3339(req.start)}, {_rfc3339(req.end)}]")
    return " ".join(parts)


@dataclass
class HttpStore:
    base_url: str
    session: requests.Session = field(default_factory=requests.Session)
    timeout: float = 30
    # https: the CA bundle that checks the store, and (certificate, key) of the erasure identity. Given with
    # each request: requests lets REQUESTS_CA_BUNDLE override a session's own `verify`.
    verify: str | bool = True
    cert: tuple[str, str] | None = None

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        response = self.session.request(method, self.base_url.rstrip("/") + path, timeout=self.timeout, verify=self.verify,
                                        cert=self.cert, **kwargs)
        if response.status_code >= 300:
            raise StoreError(f"{method} {path}: HTTP {response.status_code}: {response.text.strip()[:500]}")
        return response


class StoreError(RuntimeError):
    pass


class LokiStore(HttpStore):
    kind = "loki"

    def delete_request(self, req: ErasureRequest) -> tuple[str, str, dict]:
        """(method, path, params) of the delete request: what `submit` sends."""
        return "POST", "/loki/api/v1/delete", {
            "query": logql_query(req),
            "start": str(int(req.start.timestamp())),
            "end": str(int(req.end.timestamp())),
        }

    def submit(self, req: ErasureRequest) -> str:
        method, path, params = self.delete_request(req)
        self._call(method, path, params=params)  # 204 No Content
        return f"loki delete request {params['query']} [{params['start']}, {params['end']}]"

    # Loki refuses a query longer than limits_config.max_query_length (default 30d1h).
    WINDOW_SECONDS = 30 * 86400

    def query_windows(self, req: ErasureRequest) -> list[tuple[int, int]]:
        """The request's range cut into windows a Loki query accepts, in nanoseconds."""
        start, end = int(req.start.timestamp()), int(req.end.timestamp())
        windows = []
        while start < end:
            stop = min(start + self.WINDOW_SECONDS, end)
            windows.append((start * 10**9, stop * 10**9))
            start = stop
        return windows

    def matching(self, req: ErasureRequest) -> int:
        """How many lines the request matches, summed over query windows Loki accepts."""
        total = 0
        for start, end in self.query_windows(req):
            seconds = max(1, (end - start) // 10**9)
            response = self._call(
                "GET",
                "/loki/api/v1/query",
                params={"query": f"sum(count_over_time({logql_query(req)} [{seconds}s]))", "time": str(end)},
            )
            for sample in response.json().get("data", {}).get("result", []):
                total += int(float(sample.get("value", [0, "0"])[1]))
        return total

    def any_left(self, req: ErasureRequest) -> bool:
        # Loki filters lines of a received delete request out of queries at once; the
        # compactor removes them from the chunks after delete_request_cancel_period.
        for start, end in self.query_windows(req):
            response = self._call(
                "GET",
                "/loki/api/v1/query_range",
                params={"query": logql_query(req), "start": str(start), "end": str(end), "limit": "1", "direction": "forward"},
            )
            if any(s.get("values") for s in response.json().get("data", {}).get("result", [])):
                return True
        return False

    def push_audit(self, line: dict) -> None:
        labels = {"service": AUDIT_SERVICE, "env": line.get("env", ""), "stream": "audit", "level": "info"}
        entry = [str(time.time_ns()), json.dumps(line, separators=(",", ":"))]
        self._call("POST", "/loki/api/v1/push", json={"streams": [{"stream": labels, "values": [entry]}]})


class VictoriaLogsStore(HttpStore):
    kind = "victorialogs"

    def submit(self, req: ErasureRequest) -> str:
        response = self._call("POST", "/delete/run_task", data={"filter": logsql_filter(req)})
        return f"victorialogs delete task {response.json().get('task_id')}: {logsql_filter(req)}"

    def active_tasks(self) -> list:
        return self._call("GET", "/delete/active_tasks").json() or []

    def count(self, logsql: str) -> int:
        response = self._call("POST", "/select/logsql/query", data={"query": f"{logsql} | stats count() rows"})
        rows = [json.loads(line) for line in response.text.splitlines() if line.strip()]
        return int(rows[0]["rows"]) if rows else 0

    def matching(self, req: ErasureRequest) -> int:
        return self.count(logsql_filter(req))

    def any_left(self, req: ErasureRequest) -> bool:
        # A deleted line stays visible until its task is done: wait for both.
        return bool(self.active_tasks()) or self.count(logsql_filter(req)) > 0

    def push_audit(self, line: dict) -> None:
        body = json.dumps({**line, "service": AUDIT_SERVICE, "stream": "audit", "level": "info"}, separators=(",", ":"))
        self._call(
            "POST",
            "/insert/jsonline",
            params={"_stream_fields": "service,env,stream,level", "_msg_field": "msg", "_time_field": "ts"},
            data=body.encode() + b"\n",
        )


# --- the command -------------------------------------------------------------


def append_audit(path: Path, entry: dict) -> None:
    """Append one JSON line; the file is opened append-only and fsynced, never rewritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def erase(
    req: ErasureRequest,
    store,
    audit_log: Path,
    environment: str,
    minimums: tuple = (),
    timeout: float = 600,
    poll: float = 2,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    out=None,
) -> int:
    """Run one checked erasure request against `store`; see the module docstring."""
    out = out or sys.stdout  # read at call time: a redirected stdout (tests, a wrapper) gets the report
    warnings = check_request(req, minimums)
    base = {
        "msg": "log erasure",
        "env": environment,
        "store": store.kind,
        **req.audit_fields(),
        "operator": getpass.getuser(),
        "controller": socket.gethostname(),
        "warnings": warnings,
    }

    def record(status: str, **extra) -> dict:
        entry = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"), **base, "status": status, **extra}
        append_audit(audit_log, entry)
        return entry

    for warning in warnings:
        print(f"warning: {warning}", file=out)
    record("requested")
    try:
        found_before = store.matching(req)
        if not found_before:
            # Nothing to erase in that range: say so, rather than report an erasure.
            entry = record("nothing_matched", foundBefore=0)
            print(f"nothing matched: no line of {req.selector} in that range has these fields; audit entry in {audit_log}", file=out)
            return 0
        submitted = store.submit(req)
        print(f"submitted: {submitted}", file=out)
        deadline = clock() + timeout
        while store.any_left(req):
            if clock() > deadline:
                record("timed_out", submitted=submitted, foundBefore=found_before, timeoutSeconds=timeout)
                print(f"lines still found after {timeout:.0f}s; the request stays with the store: {submitted}", file=out)
                return 1
            sleep(poll)
    except (StoreError, requests.RequestException) as err:
        record("failed", error=str(err))
        print(f"store error: {err}", file=out)
        return 1
    entry = record("completed", submitted=submitted, foundBefore=found_before)
    try:
        store.push_audit(entry)
    except (StoreError, requests.RequestException) as err:
        # The controller's audit log has the entry; the copy in the store is a convenience.
        print(f"warning: could not copy the audit entry to the store: {err}", file=out)
    print(f"erased {found_before} lines (counted before the delete; none matches any more); audit entry in {audit_log}", file=out)
    return 0


def _inventory(env: str):
    """The validated Environment of inventory/<env>.py (pyinfra's own loader, no connection, no secrets)."""
    from roles._environment import INVENTORY_DIR, load_environment

    path = INVENTORY_DIR / f"{env}.py"
    if not path.exists():
        raise Refused(f"no inventory {path}", "pass --url http://<log store>:<port>, or run the lab first")
    environment = load_environment(path)
    if not environment.group("telemetry"):
        raise Refused(f"inventory/{env}.py has no telemetry host", "pass --url http://<log store>:<port>")
    return environment


def resolve_store(env: str, store_kind: str | None, url: str | None):
    """The store of `env` from its inventory and group data, unless --store/--url say otherwise."""
    if url is None:
        environment = _inventory(env)
        kind = store_kind or environment.group("telemetry")[0].settings.logs.store
        # The store's address and port from the topology, as the deploy bound them.
        # stores.mode scalable runs the store on every telemetry host: the one on stores.host takes the request
        # (Loki's delete requests are kept in the shared bucket, docs/retention.md).
        found = environment.topology.instances(f"{kind}.http")
        chosen = environment.group("telemetry")[0].settings.stores.host
        listener = next((l for l in found if l.host == chosen), found[0] if len(found) == 1 else None)
        if listener is None:
            raise Refused(f"no {kind} runs in inventory/{env}.py", "pass --store with the store the environment runs, or --url")
        scheme = "https" if is_tls(listener.name) else "http"
        url = f"{scheme}://{host_port(listener.address, listener.port)}"
    else:
        kind = store_kind or _group_value(env, "logs").get("store") or ("victorialogs" if env == "lab" else "loki")
    store = (VictoriaLogsStore if kind == "victorialogs" else LokiStore)(url)
    if url.startswith("https://"):
        store.verify, store.cert = erasure_identity(env)
    return store


def erasure_identity(env: str) -> tuple[str, tuple[str, str]]:
    """(CA bundle, (certificate, key)) of the erasure command's identity, issued on the controller when due."""
    from roles._tls import ERASURE, controller_identity

    ca, cert, key = controller_identity(env, ERASURE)
    return ca, (cert, key)


def _group_value(env: str, key: str):
    """`key` of group_data/<env>.py, else of all.py (pyinfra replaces a key wholesale by group)."""
    from roles._environment import group_data

    return group_data(env).get(key, group_data("all").get(key)) or {}


def load_policy(env: str):
    from roles._model import parse
    from roles.retention.settings import RetentionPolicy

    return parse(RetentionPolicy, _group_value(env, "retention"), "retention")


def _seconds(text: str) -> float:
    """--timeout: a finite number of seconds the command may wait (nan and inf would never stop)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 1 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 1 and 86400 seconds")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m roles.retention.erase", description=__doc__.split("\n\n")[0])
    # A name, never a path: the inventory file is Python that the command would run.
    parser.add_argument("--env", required=True, choices=ENVIRONMENTS, help="environment: dev, staging, prod, lab")
    parser.add_argument("--selector", required=True, help='stream selector over service, env, stream, level, e.g. {stream="audit"}')
    parser.add_argument("--filter", action="append", default=[], metavar="FIELD=VALUE", help="exact JSON field of the line; repeat to AND")
    parser.add_argument("--from", dest="start", required=True, help="RFC 3339 start, e.g. 2026-01-01T00:00:00Z")
    parser.add_argument("--to", dest="end", required=True, help="RFC 3339 end")
    parser.add_argument("--requested-by", required=True, help="who asked (name, role)")
    parser.add_argument("--reason", required=True, help="why, e.g. the request's reference")
    parser.add_argument("--all-streams", action="store_true", help="allow a selector that spans every stream")
    parser.add_argument("--store", choices=("loki", "victorialogs"), help="override the environment's logs.store")
    parser.add_argument("--url", help="override the store's base URL, e.g. https://tel1.example:9428 (https: with the erasure identity)")
    parser.add_argument("--audit-log", default=os.environ.get("SENTINEL_ERASURE_AUDIT_LOG", DEFAULT_AUDIT_LOG))
    parser.add_argument("--timeout", type=_seconds, default=600, help="seconds to wait until the lines are gone (1 to 86400)")
    args = parser.parse_args(argv)
    try:
        try:
            selector = parse_selector(args.selector)
        except SelectorError as err:
            raise Refused(f"--selector {args.selector!r} does not parse: {err}", 'write it like {service="sentinel-backend", stream="audit"}') from None
        req = ErasureRequest(
            selector=selector,
            filters=tuple(parse_filter(f) for f in args.filter),
            start=parse_time(args.start, "--from"),
            end=parse_time(args.end, "--to"),
            requested_by=args.requested_by,
            reason=args.reason,
            all_streams=args.all_streams,
        )
        policy = load_policy(args.env)
        store = resolve_store(args.env, args.store, args.url)
        return erase(req, store, Path(args.audit_log), args.env, minimums=policy.minimums, timeout=args.timeout)
    except Refused as err:
        print(f"refused: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
