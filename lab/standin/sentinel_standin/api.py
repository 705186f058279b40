"""The Sentinel API endpoints, over the simulated database.

Business rules are only as deep as the telemetry needs: each endpoint runs
realistic queries (spans, query metrics), refuses what the real one refuses
(4xx for the security stream) and records audit-worthy actions (audit stream,
business counters).
"""

from __future__ import annotations

import logging
import uuid

from . import data, jsonlog, metrics
from .context import User
from .db import DatabasePool
from .faults import FaultSpecError, FaultSwitches, parse_faults
from .http_errors import BadRequest, Conflict, Forbidden, NotFound, Unauthenticated
from .ratelimit import LoginRateLimiter
from .routes import Request, Response, Route

STAFF_ROLES = ("staff", "admin")
MAX_PAGE = 100


def _require_role(req: Request, roles: tuple[str, ...]) -> None:
    user = req.ctx.user
    if user is None or user.role not in roles:
        raise Forbidden(f"role {user.role if user else None!r} may not {req.method} {req.ctx.route}")


def _require_self_or_staff(req: Request, member_id: str) -> None:
    user = req.ctx.user
    if user is not None and (user.role in STAFF_ROLES or user.id == member_id):
        return
    raise Forbidden(f"{req.ctx.route}: members may only act on themselves")


def _page(req: Request) -> tuple[int, int]:
    try:
        limit = int(req.query_value("limit", "50"))
        offset = int(req.query_value("offset", "0"))
    except ValueError:
        raise BadRequest("limit and offset must be integers") from None
    if not (1 <= limit <= MAX_PAGE and offset >= 0):
        raise BadRequest(f"limit must be 1..{MAX_PAGE} and offset >= 0")
    return limit, offset


def _string(doc: dict, name: str, *, required: bool = True, max_len: int = 200) -> str | None:
    value = doc.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise BadRequest(f"{name} must be a non-empty string of at most {max_len} characters")
    return value.strip()


class SentinelApi:
    """Handlers for every route; one instance per process."""

    def __init__(self, db: DatabasePool, faults: FaultSwitches) -> None:
        self.db = db
        self.faults = faults
        self.activity = data.Activity()
        self.login_limiter = LoginRateLimiter()

    def routes(self) -> list[Route]:
        """The route table, in match order."""
        return [
            Route("POST", "/api/checkins", self.create_checkin),
            Route("GET", "/api/members", self.list_members),
            Route("GET", "/api/members/:id", self.get_member),
            Route("POST", "/api/visitors", self.register_visitor),
            Route("GET", "/api/badges", self.list_badges),
            Route("GET", "/api/events", self.list_events),
            Route("POST", "/api/events/:id/attendance", self.record_attendance),
            Route("GET", "/api/duty-assignments", self.list_duty_assignments),
            Route("POST", "/api/auth/login", self.login, public=True),
            Route("GET", "/admin/faults", self.get_faults, public=True),
            Route("POST", "/admin/faults", self.set_faults, public=True),
        ]

    # -- members and check-ins -------------------------------------------

    def _find_member(self, member_id: str) -> dict:
        member = self.db.query(
            "SELECT", "members", "SELECT id, name, email, status, badge_id FROM members WHERE id = $1",
            lambda: data.MEMBERS.get(member_id),
        )
        if member is None:
            raise NotFound(f"member {member_id} not found", code="member_not_found")
        return member

    def create_checkin(self, req: Request) -> Response:
        """POST /api/checkins {memberId | badgeId, site, direction: in|out}."""
        doc = req.json()
        site = _string(doc, "site")
        if site not in data.SITES:
            raise BadRequest(f"site must be one of {', '.join(data.SITES)}")
        direction = doc.get("direction", "in")
        if direction not in ("in", "out"):
            raise BadRequest("direction must be 'in' or 'out'")
        badge_id = _string(doc, "badgeId", required=False)
        if badge_id is not None:
            member = self.db.query(
                "SELECT", "badges", "SELECT m.* FROM badges b JOIN members m ON m.id = b.member_id WHERE b.id = $1",
                lambda: data.MEMBERS_BY_BADGE.get(badge_id),
            )
            if member is None:
                raise NotFound(f"badge {badge_id} not found", code="badge_not_found")
        else:
            member_id = _string(doc, "memberId", required=False)
            if member_id is None:
                raise BadRequest("memberId or badgeId is required")
            member = self._find_member(member_id)
        _require_self_or_staff(req, member["id"])
        if member["status"] != "active":
            raise Conflict(f"membership of {member['id']} is not active", code="membership_inactive")

        entry, visit_seconds = self.db.query(
            "INSERT", "checkins", "INSERT INTO checkins (member_id, site, direction) VALUES ($1, $2, $3)",
            lambda: self.activity.record_checkin(member["id"], site, direction),
        )
        method = "badge" if badge_id is not None else "manual"
        if direction == "in":
            metrics.CHECKINS.labels(site=site).inc()
            if badge_id is not None:
                metrics.BADGE_SCANS.inc()
        elif visit_seconds is not None:
            metrics.SESSION_DURATION.observe(visit_seconds)
        jsonlog.info(
            "member checked in" if direction == "in" else "member checked out",
            stream="audit", action=f"checkin.{direction}", memberId=member["id"], site=site, checkinMethod=method,
        )
        return Response(201, {"checkin": entry})

    def list_members(self, req: Request) -> Response:
        """GET /api/members?status=&limit=&offset= (staff and admin)."""
        _require_role(req, STAFF_ROLES)
        limit, offset = _page(req)
        status = req.query_value("status")
        if status not in (None, "active", "inactive"):
            raise BadRequest("status must be active or inactive")
        rows = [m for m in data.MEMBERS.values() if status is None or m["status"] == status]
        total = self.db.query("SELECT", "members", "SELECT count(*) FROM members WHERE ($1::text IS NULL OR status = $1)", lambda: len(rows))
        page = self.db.query(
            "SELECT", "members", "SELECT * FROM members WHERE ($1::text IS NULL OR status = $1) ORDER BY id LIMIT $2 OFFSET $3",
            lambda: rows[offset : offset + limit],
        )
        return Response(200, {"members": page, "total": total})

    def get_member(self, req: Request) -> Response:
        """GET /api/members/:id (the member themselves, staff, admin)."""
        member_id = req.params["id"]
        _require_self_or_staff(req, member_id)
        return Response(200, {"member": self._find_member(member_id)})

    # -- visitors, badges, events, duties -------------------------------

    def register_visitor(self, req: Request) -> Response:
        """POST /api/visitors {name, site, hostMemberId?} (staff and admin)."""
        _require_role(req, STAFF_ROLES)
        doc = req.json()
        name = _string(doc, "name")
        site = _string(doc, "site")
        if site not in data.SITES:
            raise BadRequest(f"site must be one of {', '.join(data.SITES)}")
        host_id = _string(doc, "hostMemberId", required=False)
        if host_id is not None:
            self._find_member(host_id)
        entry = self.db.query(
            "INSERT", "visitors", "INSERT INTO visitors (name, host_member_id, site) VALUES ($1, $2, $3)",
            lambda: self.activity.record_visitor(name, host_id, site),
        )
        metrics.VISITORS.inc()
        jsonlog.info("visitor registered", stream="audit", action="visitor.registered", visitorId=entry["id"], site=site)
        return Response(201, {"visitor": entry})

    def list_badges(self, req: Request) -> Response:
        """GET /api/badges: members see their own badge, staff and admin a page of all."""
        user = req.ctx.user
        if user is not None and user.role in STAFF_ROLES:
            limit, offset = _page(req)
            badges = self.db.query(
                "SELECT", "badges", "SELECT id, member_id, status FROM badges ORDER BY id LIMIT $1 OFFSET $2",
                lambda: [{"id": m["badgeId"], "memberId": m["id"]} for m in list(data.MEMBERS.values())[offset : offset + limit]],
            )
        else:
            member = data.MEMBERS.get(user.id) if user else None
            badges = self.db.query(
                "SELECT", "badges", "SELECT id, member_id, status FROM badges WHERE member_id = $1",
                lambda: [{"id": member["badgeId"], "memberId": member["id"]}] if member else [],
            )
        return Response(200, {"badges": badges})

    def list_events(self, req: Request) -> Response:
        """GET /api/events."""
        events = self.db.query("SELECT", "events", "SELECT id, name, site, starts_at FROM events ORDER BY starts_at", lambda: list(data.EVENTS.values()))
        return Response(200, {"events": events})

    def record_attendance(self, req: Request) -> Response:
        """POST /api/events/:id/attendance {memberId?} (default: the caller)."""
        event_id = req.params["id"]
        doc = req.json()
        member_id = _string(doc, "memberId", required=False) or (req.ctx.user.id if req.ctx.user else None)
        _require_self_or_staff(req, member_id or "")
        event = self.db.query("SELECT", "events", "SELECT id, name, site FROM events WHERE id = $1", lambda: data.EVENTS.get(event_id))
        if event is None:
            raise NotFound(f"event {event_id} not found", code="event_not_found")
        entry = self.db.query(
            "INSERT", "event_attendance", "INSERT INTO event_attendance (event_id, member_id) VALUES ($1, $2)",
            lambda: self.activity.record_attendance(event_id, member_id),
        )
        # event_id is bounded by the data set; the real backend must keep this label bounded too.
        metrics.EVENT_ATTENDANCE.labels(event=event_id).inc()
        jsonlog.info("event attendance recorded", stream="audit", action="attendance.recorded", eventId=event_id, memberId=member_id)
        return Response(201, {"attendance": entry})

    def list_duty_assignments(self, req: Request) -> Response:
        """GET /api/duty-assignments (staff and admin)."""
        _require_role(req, STAFF_ROLES)
        assignments = self.db.query(
            "SELECT", "duty_assignments", "SELECT id, user_id, site, duty, shift FROM duty_assignments ORDER BY id",
            lambda: list(data.DUTY_ASSIGNMENTS),
        )
        metrics.DUTY_ASSIGNMENTS.inc(len(assignments))
        return Response(200, {"dutyAssignments": assignments})

    # -- authentication ----------------------------------------------------

    def login(self, req: Request) -> Response:
        """POST /api/auth/login {email, password}: 401 on bad credentials, 429 after repeated failures."""
        doc = req.json()
        email = _string(doc, "email").lower()
        password = doc.get("password")
        if not isinstance(password, str) or not password:
            raise BadRequest("password is required")
        limiter_key = f"{req.client_address}|{email}"
        self.login_limiter.check(limiter_key)
        user = self.db.query(
            "SELECT", "users", "SELECT id, email, role, password_hash FROM users WHERE email = $1",
            lambda: data.check_password(email, password),
        )
        if user is None:
            self.login_limiter.record_failure(limiter_key)
            raise Unauthenticated("invalid email or password", reason="invalid_credentials")
        self.login_limiter.reset(limiter_key)
        # The caller is now known: the completion log line carries its id.
        req.ctx.user = User(id=user["id"], email=user["email"], role=user["role"])
        jsonlog.info("user logged in", stream="audit", action="auth.login", loginUserId=user["id"], role=user["role"])
        return Response(200, {"token": f"standin-{uuid.uuid4()}", "user": user})

    # -- fault switches (lab only) ------------------------------------------

    def get_faults(self, req: Request) -> Response:
        """GET /admin/faults: current switches, the file they come from, why it was last rejected."""
        return Response(200, {"faults": self.faults.current().to_dict(), "file": self.faults.path, "fileError": self.faults.last_error})

    def set_faults(self, req: Request) -> Response:
        """POST /admin/faults {error_rate, latency_ms, crash, db_pool_exhausted}: replace every switch."""
        try:
            faults = parse_faults(req.json())
        except FaultSpecError as exc:
            raise BadRequest(str(exc), code="invalid_faults") from None
        persisted = self.faults.replace(faults)
        jsonlog.log(logging.WARNING, "fault switches changed", persisted=persisted, faults=faults.to_dict())
        return Response(200, {"faults": faults.to_dict(), "persisted": persisted, "fileError": self.faults.last_error})
