'use strict';
// The in-memory data set behind the simulated database: deterministic and small, so metric
// label values stay bounded and tests can name ids (docs/contract.md section 2).
const crypto = require('node:crypto');

const SITES = ['hq', 'north', 'south'];
const MEMBER_COUNT = 240;

const EVENTS = {
  'ev-101': { id: 'ev-101', name: 'Open day', site: 'hq' },
  'ev-102': { id: 'ev-102', name: 'Safety briefing', site: 'north' },
  'ev-103': { id: 'ev-103', name: 'Volunteer training', site: 'south' },
  'ev-104': { id: 'ev-104', name: 'Annual general meeting', site: 'hq' },
};

const DUTY_ASSIGNMENTS = [
  { id: 'da-1', userId: 'u-staff', site: 'hq', duty: 'front desk', shift: 'morning' },
  { id: 'da-2', userId: 'u-staff', site: 'north', duty: 'front desk', shift: 'evening' },
  { id: 'da-3', userId: 'u-admin', site: 'south', duty: 'supervisor', shift: 'day' },
];

// The lab's fixed credentials. Not secrets: the lab's traffic and tests log in with them.
const CREDENTIALS = {
  'admin@sentinel.test': { password: 'admin-pass', id: 'u-admin', role: 'admin' },
  'staff@sentinel.test': { password: 'staff-pass', id: 'u-staff', role: 'staff' },
  'member@sentinel.test': { password: 'member-pass', id: 'm-0001', role: 'member' },
};

const pad = (n) => String(n).padStart(4, '0');
const MEMBERS = new Map();
const MEMBERS_BY_BADGE = new Map();
for (let n = 1; n <= MEMBER_COUNT; n += 1) {
  const member = {
    id: `m-${pad(n)}`,
    name: `Member ${pad(n)}`,
    email: `member${pad(n)}@sentinel.test`,
    status: n % 12 === 0 ? 'inactive' : 'active',
    badgeId: `b-${pad(n)}`,
    homeSite: SITES[n % SITES.length],
  };
  MEMBERS.set(member.id, member);
  MEMBERS_BY_BADGE.set(member.badgeId, member);
}

function activeMemberCount() {
  return [...MEMBERS.values()].filter((m) => m.status === 'active').length;
}

function checkPassword(email, password) {
  const account = CREDENTIALS[email];
  const expected = Buffer.from(account ? account.password : '\0never-matches');
  const given = Buffer.from(password);
  const same = expected.length === given.length && crypto.timingSafeEqual(expected, given);
  return same && account ? { id: account.id, email, role: account.role } : null;
}

// What requests add: check-ins, open visits, visitors, attendance (bounded, for a long-running lab host).
const KEEP = 10000;
class Activity {
  constructor() {
    this.checkins = [];
    this.openVisits = new Map();
    this.visitors = [];
    this.attendance = [];
  }

  recordCheckin(memberId, site, direction) {
    const now = Date.now() / 1000;
    const entry = { id: crypto.randomUUID(), memberId, site, direction, at: now };
    this.checkins = this.checkins.slice(-(KEEP - 1)).concat(entry);
    let visitSeconds = null;
    if (direction === 'in') {
      this.openVisits.set(memberId, now);
    } else if (this.openVisits.has(memberId)) {
      visitSeconds = now - this.openVisits.get(memberId);
      this.openVisits.delete(memberId);
    }
    return [entry, visitSeconds];
  }

  recordVisitor(name, hostMemberId, site) {
    const entry = { id: crypto.randomUUID(), name, hostMemberId, site, at: Date.now() / 1000 };
    this.visitors = this.visitors.slice(-(KEEP - 1)).concat(entry);
    return entry;
  }

  recordAttendance(eventId, memberId) {
    const entry = { id: crypto.randomUUID(), eventId, memberId, at: Date.now() / 1000 };
    this.attendance = this.attendance.slice(-(KEEP - 1)).concat(entry);
    return entry;
  }
}

module.exports = { Activity, DUTY_ASSIGNMENTS, EVENTS, MEMBERS, MEMBERS_BY_BADGE, SITES, activeMemberCount, checkPassword };
