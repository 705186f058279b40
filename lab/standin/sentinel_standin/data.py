"""The in-memory data set behind the simulated database.

Deterministic and small, so metric label values stay bounded and tests can
name ids: members m-0001..m-0240 (every 12th inactive), badges b-0001..,
sites, events and duty assignments below.
"""

from __future__ import annotations

import hmac
import threading
import time
import uuid
from dataclasses import dataclass, field

SITES = ("hq", "north", "south")
ROLES = ("member", "staff", "admin")
MEMBER_COUNT = 240

EVENTS = {
    "ev-101": {"id": "ev-101", "name": "Open day", "site": "hq"},
    "ev-102": {"id": "ev-102", "name": "Safety briefing", "site": "north"},
    "ev-103": {"id": "ev-103", "name": "Volunteer training", "site": "south"},
    "ev-104": {"id": "ev-104", "name": "Annual general meeting", "site": "hq"},
}

DUTY_ASSIGNMENTS = [
    {"id": "da-1", "userId": "u-staff", "site": "hq", "duty": "front desk", "shift": "morning"},
    {"id": "da-2", "userId": "u-staff", "site": "north", "duty": "front desk", "shift": "evening"},
    {"id": "da-3", "userId": "u-admin", "site": "south", "duty": "supervisor", "shift": "day"},
]

# The stand-in's fixed credentials. Not secrets: the lab's traffic and tests
# log in with them (docs/contract.md lists them).
CREDENTIALS = {
    "admin@sentinel.test": {"password": "admin-pass", "id": "u-admin", "role": "admin"},
    "staff@sentinel.test": {"password": "staff-pass", "id": "u-staff", "role": "staff"},
    "member@sentinel.test": {"password": "member-pass", "id": "m-0001", "role": "member"},
}


def _member(n: int) -> dict:
    return {
        "id": f"m-{n:04d}",
        "name": f"Member {n:04d}",
        "email": f"member{n:04d}@sentinel.test",
        "status": "inactive" if n % 12 == 0 else "active",
        "badgeId": f"b-{n:04d}",
        "homeSite": SITES[n % len(SITES)],
    }


MEMBERS = {m["id"]: m for m in (_member(n) for n in range(1, MEMBER_COUNT + 1))}
MEMBERS_BY_BADGE = {m["badgeId"]: m for m in MEMBERS.values()}


def active_member_count() -> int:
    """Members whose status is active."""
    return sum(1 for m in MEMBERS.values() if m["status"] == "active")


def check_password(email: str, password: str) -> dict | None:
    """The account for ``email`` if ``password`` matches, else None (constant-time compare)."""
    account = CREDENTIALS.get(email)
    expected = account["password"] if account else "\0never-matches"
    if hmac.compare_digest(expected.encode(), password.encode()) and account:
        return {"id": account["id"], "email": email, "role": account["role"]}
    return None


@dataclass
class Activity:
    """What requests add to the data set: check-ins, open visits, visitors, attendance."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    checkins: list[dict] = field(default_factory=list)
    open_visits: dict[str, float] = field(default_factory=dict)  # member id -> check-in time
    visitors: list[dict] = field(default_factory=list)
    attendance: list[dict] = field(default_factory=list)

    def record_checkin(self, member_id: str, site: str, direction: str) -> tuple[dict, float | None]:
        """Store a check-in or check-out; for a check-out also return the visit length in seconds."""
        now = time.time()
        entry = {"id": str(uuid.uuid4()), "memberId": member_id, "site": site, "direction": direction, "at": now}
        with self.lock:
            # Keep memory bounded on a long-running lab host.
            self.checkins = self.checkins[-9999:] + [entry]
            visit_seconds = None
            if direction == "in":
                self.open_visits[member_id] = now
            else:
                started = self.open_visits.pop(member_id, None)
                visit_seconds = now - started if started is not None else None
        return entry, visit_seconds

    def record_visitor(self, name: str, host_member_id: str | None, site: str) -> dict:
        """Store a visitor registration."""
        entry = {"id": str(uuid.uuid4()), "name": name, "hostMemberId": host_member_id, "site": site, "at": time.time()}
        with self.lock:
            self.visitors = self.visitors[-9999:] + [entry]
        return entry

    def record_attendance(self, event_id: str, member_id: str) -> dict:
        """Store an event attendance."""
        entry = {"id": str(uuid.uuid4()), "eventId": event_id, "memberId": member_id, "at": time.time()}
        with self.lock:
            self.attendance = self.attendance[-9999:] + [entry]
        return entry
