'use strict';
// Fault switches that make the backend misbehave on purpose, for the alert drills
// (docs/contract.md section 8). They live in a JSON file (SENTINEL_FAULTS_FILE), stat()ed on
// every request and re-read when it changed, so ops can flip them with an editor and no
// restart. POST /admin/faults replaces the state and writes the file. `crash` is one-shot:
// cleared in memory and in the file before the process dies, so systemd's restart comes back
// healthy.
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');

const HEALTHY = Object.freeze({ error_rate: 0, latency_ms: 0, crash: false, db_pool_exhausted: false });

class FaultSpecError extends Error {}

const isNumber = (v) => typeof v === 'number' && Number.isFinite(v);

function parseFaults(doc) {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new FaultSpecError('faults must be a JSON object');
  const unknown = Object.keys(doc).filter((k) => !(k in HEALTHY)).sort();
  if (unknown.length) throw new FaultSpecError(`unknown fault switches: ${unknown.join(', ')}`);
  const errorRate = doc.error_rate ?? 0;
  if (!isNumber(errorRate) || errorRate < 0 || errorRate > 1) throw new FaultSpecError('error_rate must be a number from 0 to 1');
  const latency = doc.latency_ms ?? 0;
  if (!isNumber(latency) || latency < 0 || latency > 600000) throw new FaultSpecError('latency_ms must be a number of milliseconds from 0 to 600000');
  for (const flag of ['crash', 'db_pool_exhausted']) {
    if (typeof (doc[flag] ?? false) !== 'boolean') throw new FaultSpecError(`${flag} must be true or false`);
  }
  return { error_rate: errorRate, latency_ms: Math.trunc(latency), crash: doc.crash ?? false, db_pool_exhausted: doc.db_pool_exhausted ?? false };
}

class FaultSwitches {
  constructor(file) {
    this.path = file;
    this.state = { ...HEALTHY };
    this.signature = null;
    this.lastError = null; // why the file was last rejected, for GET /admin/faults
  }

  current() {
    const signature = this.fileSignature();
    if (signature !== this.signature) {
      this.signature = signature;
      this.state = signature === null ? { ...HEALTHY } : this.readFile();
    }
    return this.state;
  }

  replace(faults) {
    this.state = faults;
    return this.persist();
  }

  consumeCrash() {
    this.state = { ...this.state, crash: false };
    return this.persist();
  }

  persist() {
    const written = this.writeFile(this.state);
    if (written) this.signature = this.fileSignature();
    return written;
  }

  fileSignature() {
    try {
      const st = fs.statSync(this.path, { bigint: true });
      return `${st.ino}:${st.mtimeNs}:${st.size}`;
    } catch (err) {
      if (err.code !== 'ENOENT') this.lastError = `cannot stat ${this.path}: ${err.message}`;
      return null;
    }
  }

  // A broken file means "no faults", not "keep the old ones"; lastError says why.
  readFile() {
    try {
      const text = fs.readFileSync(this.path, 'utf8');
      const faults = parseFaults(text.trim() ? JSON.parse(text) : {});
      this.lastError = null;
      return faults;
    } catch (err) {
      this.lastError = `ignored ${this.path}: ${err.message}`;
      return { ...HEALTHY };
    }
  }

  // Atomic (write a temporary file, rename): a reader never sees half a file.
  writeFile(faults) {
    const tmp = path.join(path.dirname(this.path), `.faults-${crypto.randomUUID()}`);
    try {
      fs.mkdirSync(path.dirname(this.path), { recursive: true });
      fs.writeFileSync(tmp, `${JSON.stringify(faults, null, 2)}\n`, { mode: 0o644 });
      fs.renameSync(tmp, this.path);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      this.lastError = `cannot write ${this.path}: ${err.message}`;
      return false;
    }
    this.lastError = null;
    return true;
  }
}

module.exports = { FaultSpecError, FaultSwitches, HEALTHY, parseFaults };
