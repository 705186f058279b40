'use strict';
// The Sentinel API endpoints over the simulated database. Business rules are only as deep as
// the telemetry needs: each endpoint runs realistic queries (spans, query metrics), refuses
// what the real one refuses (4xx for the security stream) and records audit-worthy actions
// (audit stream, business counters).
const crypto = require('node:crypto');
const data = require('./data');
const log = require('./log');
const metrics = require('./metrics');
const { FaultSpecError, parseFaults } = require('./faults');
const { LoginRateLimiter } = require('./ratelimit');
const { badRequest, conflict, forbidden, notFound, unauthenticated } = require('./errors');

const STAFF_ROLES = ['staff', 'admin'];
const MAX_PAGE = 100;

function requireRole(req, roles) {
  const { user, route } = req.ctx;
  if (!user || !roles.includes(user.role)) throw forbidden(`role ${user ? user.role : null} may not ${req.method} ${route}`);
}

function requireSelfOrStaff(req, memberId) {
  const { user, route } = req.ctx;
  if (user && (STAFF_ROLES.includes(user.role) || user.id === memberId)) return;
  throw forbidden(`${route}: members may only act on themselves`);
}

function page(req) {
  const limit = Number(req.query.limit ?? '50');
  const offset = Number(req.query.offset ?? '0');
  if (!Number.isInteger(limit) || !Number.isInteger(offset)) throw badRequest('limit and offset must be integers');
  if (!(limit >= 1 && limit <= MAX_PAGE && offset >= 0)) throw badRequest(`limit must be 1..${MAX_PAGE} and offset >= 0`);
  return [limit, offset];
}

function body(req) {
  const doc = req.body === undefined ? {} : req.body;
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw badRequest('request body must be a JSON object');
  return doc;
}

function string(doc, name, { required = true, maxLen = 200 } = {}) {
  const value = doc[name];
  if ((value === undefined || value === null) && !required) return null;
  if (typeof value !== 'string' || !value.trim() || value.length > maxLen) {
    throw badRequest(`${name} must be a non-empty string of at most ${maxLen} characters`);
  }
  return value.trim();
}

function site(doc) {
  const value = string(doc, 'site');
  if (!data.SITES.includes(value)) throw badRequest(`site must be one of ${data.SITES.join(', ')}`);
  return value;
}

class SentinelApi {
  constructor(db, faults) {
    this.db = db;
    this.faults = faults;
    this.activity = new data.Activity();
    this.loginLimiter = new LoginRateLimiter();
  }

  // [method, template, handler, public] in match order; public routes need no X-User-Id.
  routes() {
    return [
      ['POST', '/api/checkins', this.createCheckin],
      ['GET', '/api/members', this.listMembers],
      ['GET', '/api/members/:id', this.getMember],
      ['POST', '/api/visitors', this.registerVisitor],
      ['GET', '/api/badges', this.listBadges],
      ['GET', '/api/events', this.listEvents],
      ['POST', '/api/events/:id/attendance', this.recordAttendance],
      ['GET', '/api/duty-assignments', this.listDutyAssignments],
      ['POST', '/api/auth/login', this.login, true],
      ['GET', '/admin/faults', this.getFaults, true],
      ['POST', '/admin/faults', this.setFaults, true],
    ].map(([method, template, handler, isPublic = false]) => ({ method, template, handler: handler.bind(this), isPublic }));
  }

  async findMember(memberId) {
    const member = await this.db.query('SELECT', 'members', 'SELECT id, name, email, status, badge_id FROM members WHERE id = $1',
      () => data.MEMBERS.get(memberId));
    if (!member) throw notFound(`member ${memberId} not found`, 'member_not_found');
    return member;
  }

  async createCheckin(req) {
    const doc = body(req);
    const where = site(doc);
    const direction = doc.direction ?? 'in';
    if (direction !== 'in' && direction !== 'out') throw badRequest("direction must be 'in' or 'out'");
    const badgeId = string(doc, 'badgeId', { required: false });
    let member;
    if (badgeId !== null) {
      member = await this.db.query('SELECT', 'badges', 'SELECT m.* FROM badges b JOIN members m ON m.id = b.member_id WHERE b.id = $1',
        () => data.MEMBERS_BY_BADGE.get(badgeId));
      if (!member) throw notFound(`badge ${badgeId} not found`, 'badge_not_found');
    } else {
      const memberId = string(doc, 'memberId', { required: false });
      if (memberId === null) throw badRequest('memberId or badgeId is required');
      member = await this.findMember(memberId);
    }
    requireSelfOrStaff(req, member.id);
    if (member.status !== 'active') throw conflict(`membership of ${member.id} is not active`, 'membership_inactive');
    const [entry, visitSeconds] = await this.db.query('INSERT', 'checkins', 'INSERT INTO checkins (member_id, site, direction) VALUES ($1, $2, $3)',
      () => this.activity.recordCheckin(member.id, where, direction));
    if (direction === 'in') {
      metrics.checkins.inc({ site: where });
      if (badgeId !== null) metrics.badgeScans.inc();
    } else if (visitSeconds !== null) {
      metrics.sessionDuration.observe(visitSeconds);
    }
    log.info(direction === 'in' ? 'member checked in' : 'member checked out', {
      stream: 'audit', action: `checkin.${direction}`, memberId: member.id, site: where, checkinMethod: badgeId !== null ? 'badge' : 'manual',
    });
    return { status: 201, body: { checkin: entry } };
  }

  async listMembers(req) {
    requireRole(req, STAFF_ROLES);
    const [limit, offset] = page(req);
    const { status } = req.query;
    if (status !== undefined && status !== 'active' && status !== 'inactive') throw badRequest('status must be active or inactive');
    const rows = [...data.MEMBERS.values()].filter((m) => status === undefined || m.status === status);
    const total = await this.db.query('SELECT', 'members', 'SELECT count(*) FROM members WHERE ($1::text IS NULL OR status = $1)', () => rows.length);
    const members = await this.db.query('SELECT', 'members', 'SELECT * FROM members WHERE ($1::text IS NULL OR status = $1) ORDER BY id LIMIT $2 OFFSET $3',
      () => rows.slice(offset, offset + limit));
    return { status: 200, body: { members, total } };
  }

  async getMember(req) {
    requireSelfOrStaff(req, req.params.id);
    return { status: 200, body: { member: await this.findMember(req.params.id) } };
  }

  async registerVisitor(req) {
    requireRole(req, STAFF_ROLES);
    const doc = body(req);
    const name = string(doc, 'name');
    const where = site(doc);
    const hostId = string(doc, 'hostMemberId', { required: false });
    if (hostId !== null) await this.findMember(hostId);
    const entry = await this.db.query('INSERT', 'visitors', 'INSERT INTO visitors (name, host_member_id, site) VALUES ($1, $2, $3)',
      () => this.activity.recordVisitor(name, hostId, where));
    metrics.visitors.inc();
    log.info('visitor registered', { stream: 'audit', action: 'visitor.registered', visitorId: entry.id, site: where });
    return { status: 201, body: { visitor: entry } };
  }

  async listBadges(req) {
    const { user } = req.ctx;
    let badges;
    if (user && STAFF_ROLES.includes(user.role)) {
      const [limit, offset] = page(req);
      badges = await this.db.query('SELECT', 'badges', 'SELECT id, member_id, status FROM badges ORDER BY id LIMIT $1 OFFSET $2',
        () => [...data.MEMBERS.values()].slice(offset, offset + limit).map((m) => ({ id: m.badgeId, memberId: m.id })));
    } else {
      const member = user ? data.MEMBERS.get(user.id) : undefined;
      badges = await this.db.query('SELECT', 'badges', 'SELECT id, member_id, status FROM badges WHERE member_id = $1',
        () => (member ? [{ id: member.badgeId, memberId: member.id }] : []));
    }
    return { status: 200, body: { badges } };
  }

  async listEvents() {
    const events = await this.db.query('SELECT', 'events', 'SELECT id, name, site, starts_at FROM events ORDER BY starts_at', () => Object.values(data.EVENTS));
    return { status: 200, body: { events } };
  }

  async recordAttendance(req) {
    const eventId = req.params.id;
    const doc = body(req);
    const memberId = string(doc, 'memberId', { required: false }) || (req.ctx.user ? req.ctx.user.id : null);
    requireSelfOrStaff(req, memberId || '');
    const event = await this.db.query('SELECT', 'events', 'SELECT id, name, site FROM events WHERE id = $1', () => data.EVENTS[eventId]);
    if (!event) throw notFound(`event ${eventId} not found`, 'event_not_found');
    const entry = await this.db.query('INSERT', 'event_attendance', 'INSERT INTO event_attendance (event_id, member_id) VALUES ($1, $2)',
      () => this.activity.recordAttendance(eventId, memberId));
    // eventId is bounded by the data set (checked above): the label stays bounded.
    metrics.eventAttendance.inc({ event: eventId });
    log.info('event attendance recorded', { stream: 'audit', action: 'attendance.recorded', eventId, memberId });
    return { status: 201, body: { attendance: entry } };
  }

  async listDutyAssignments(req) {
    requireRole(req, STAFF_ROLES);
    const assignments = await this.db.query('SELECT', 'duty_assignments', 'SELECT id, user_id, site, duty, shift FROM duty_assignments ORDER BY id',
      () => [...data.DUTY_ASSIGNMENTS]);
    metrics.dutyAssignments.inc(assignments.length);
    return { status: 200, body: { dutyAssignments: assignments } };
  }

  async login(req) {
    const doc = body(req);
    const email = string(doc, 'email').toLowerCase();
    if (typeof doc.password !== 'string' || !doc.password) throw badRequest('password is required');
    const limiterKey = `${req.socket.remoteAddress}|${email}`;
    this.loginLimiter.check(limiterKey);
    const user = await this.db.query('SELECT', 'users', 'SELECT id, email, role, password_hash FROM users WHERE email = $1',
      () => data.checkPassword(email, doc.password));
    if (!user) {
      this.loginLimiter.recordFailure(limiterKey);
      throw unauthenticated('invalid email or password', 'invalid_credentials');
    }
    this.loginLimiter.reset(limiterKey);
    req.ctx.user = { id: user.id, email: user.email, role: user.role }; // the completion line carries the caller now
    log.info('user logged in', { stream: 'audit', action: 'auth.login', loginUserId: user.id, role: user.role });
    return { status: 200, body: { token: `lab-${crypto.randomUUID()}`, user } };
  }

  async getFaults() {
    return { status: 200, body: { faults: this.faults.current(), file: this.faults.path, fileError: this.faults.lastError } };
  }

  async setFaults(req) {
    let faults;
    try {
      faults = parseFaults(body(req));
    } catch (err) {
      if (err instanceof FaultSpecError) throw badRequest(err.message, 'invalid_faults');
      throw err;
    }
    const persisted = this.faults.replace(faults);
    log.warn('fault switches changed', { persisted, faults });
    return { status: 200, body: { faults, persisted, fileError: this.faults.lastError } };
  }
}

module.exports = { SentinelApi };
