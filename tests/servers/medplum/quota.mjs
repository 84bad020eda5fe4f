// An opt-in points quota for the Medplum test server, modelled on the full Medplum server's FHIR quota
// (packages/server/src/fhir/fhirquota.ts, measured on Medplum 4.5.2 with PostgreSQL and Redis):
//
// - every repository interaction costs points, as Medplum's FhirQuotaCost has them: a read (or a
//   version read) 1, a history 10, a search 20, a write (create, update, patch, delete) 100; a
//   conditional create is its search and its create (120). An interaction made inside another one
//   (an update writing through create, a history reading the resource first) is not charged again;
// - the points of one fixed window (60 s on the full server; `--quota-window-ms` here, so tests stay
//   fast) are capped at `--quota-points`; the window starts at its first charge;
// - an interaction over the cap throws Medplum's own `tooManyRequests` outcome (code `throttled`,
//   "Too Many Requests") with the limiter's state as JSON in its diagnostics
//   (`{"_remainingPoints":0,"_msBeforeNext":1234,"_consumedPoints":..,"_isFirstInDuration":false,"limit":..}`),
//   and every later one in the window is refused too (the full server blocks the user until the reset);
// - so the router answers a batch, or a transaction processed as one, HTTP 200 with the throttled entry
//   and every entry after it `429`; an atomic transaction fails whole (rolled back) with HTTP 429; a
//   plain request gets HTTP 429;
// - every FHIR answer carries the full server's `RateLimit: "fhirInteractions";r=<points left>;t=<s>`
//   header; a whole 429 also carries `Retry-After: <s>` (the full server sends only the RateLimit one).
//
// One quota for the whole server (the full server keeps one per user; tests act as one user).

import { deepClone, OperationOutcomeError, tooManyRequests } from '@medplum/core';

export const QUOTA_COST = { read: 1, history: 10, search: 20, write: 100 };

const CHARGED = {
  readResource: QUOTA_COST.read,
  readVersion: QUOTA_COST.read,
  readHistory: QUOTA_COST.history,
  search: QUOTA_COST.search,
  createResource: QUOTA_COST.write,
  updateResource: QUOTA_COST.write,
  patchResource: QUOTA_COST.write,
  deleteResource: QUOTA_COST.write,
};

export class PointsQuota {
  constructor(points, windowMs = 60_000, now = () => Date.now()) {
    this.now = now;
    this.configure(points, windowMs);
  }

  configure(points, windowMs = this.windowMs) {
    if (!Number.isInteger(points) || points < 0 || !Number.isInteger(windowMs) || windowMs <= 0) {
      throw new Error(`a quota needs whole points >= 0 and a window > 0 ms, not ${points} / ${windowMs}`);
    }
    this.points = points;
    this.windowMs = windowMs;
    this.reset();
  }

  reset() {
    this.windowStart = undefined;
    this.consumed = 0;
    this.blocked = false;
    this.refused = 0;
  }

  roll() {
    const now = this.now();
    if (this.windowStart === undefined || now >= this.windowStart + this.windowMs) {
      this.windowStart = now;
      this.consumed = 0;
      this.blocked = false;
    }
    return now;
  }

  msBeforeNext() {
    return this.windowStart === undefined ? 0 : Math.max(0, this.windowStart + this.windowMs - this.now());
  }

  remaining() {
    return Math.max(0, this.points - this.consumed);
  }

  charge(points) {
    this.roll();
    if (this.blocked || this.consumed + points > this.points) {
      this.blocked = true;
      this.refused++;
      const outcome = deepClone(tooManyRequests);
      outcome.issue[0].diagnostics = JSON.stringify({
        _remainingPoints: 0,
        _msBeforeNext: this.msBeforeNext(),
        _consumedPoints: this.consumed + points,
        _isFirstInDuration: false,
        limit: this.points,
      });
      throw new OperationOutcomeError(outcome);
    }
    this.consumed += points;
  }

  // Headers for an answer of `status`: the full server's RateLimit, and Retry-After on a whole 429.
  headers(status) {
    const seconds = Math.ceil(this.msBeforeNext() / 1000);
    const headers = { RateLimit: `"fhirInteractions";r=${this.blocked ? 0 : this.remaining()};t=${seconds}` };
    if (status === 429) {
      headers['Retry-After'] = String(Math.max(1, seconds));
    }
    return headers;
  }

  state() {
    return {
      points: this.points,
      windowMs: this.windowMs,
      consumed: this.consumed,
      remaining: this.blocked ? 0 : this.remaining(),
      msBeforeNext: this.msBeforeNext(),
      refused: this.refused,
    };
  }
}

// Charge the repository's interactions to `holder.quota` while there is one (instance methods wrap
// the class's; a call made while another charged call runs is not charged again).
export function chargeRepository(repo, holder) {
  let depth = 0;
  for (const [name, points] of Object.entries(CHARGED)) {
    const inner = repo[name].bind(repo);
    repo[name] = async (...args) => {
      if (depth === 0 && holder.quota) {
        holder.quota.charge(points);
      }
      depth++;
      try {
        return await inner(...args);
      } finally {
        depth--;
      }
    };
  }
}

// GET /__admin/quota: the quota's state. POST /__admin/quota?points=N&window_ms=M: set it (either may
// be left out) and start a fresh window; POST /__admin/quota?off=1 turns it off (no quota: undefined).
export function quotaAdmin(holder, method, url) {
  if (method === 'GET') {
    return holder.quota ? holder.quota.state() : { points: null };
  }
  if (url.searchParams.get('off')) {
    holder.quota = undefined;
    return { points: null };
  }
  const points = Number.parseInt(url.searchParams.get('points') ?? String(holder.quota?.points ?? ''), 10);
  const windowMs = Number.parseInt(url.searchParams.get('window_ms') ?? String(holder.quota?.windowMs ?? 60000), 10);
  if (holder.quota) {
    holder.quota.configure(points, windowMs);
  } else {
    holder.quota = new PointsQuota(points, windowMs);
  }
  return holder.quota.state();
}
