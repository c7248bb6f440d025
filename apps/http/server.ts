// The operations HTTP server every long-running process can start (BLENDFARM_HTTP_PORT):
//   GET /metrics        Prometheus text format (prom-client registry); a metric whose collection
//                       fails or takes too long (a database gauge during an outage) is left out,
//                       the rest answered, so blendfarm_ready still says the database is down
//   GET /healthz        200 while the process's event loop answers
//   GET /readyz         200 when every readiness check passes, else 503 with the reasons
//   GET /status         the status page (read-only); /status/app.js its script
//   GET /status/data    the page's snapshot as JSON: public view, full view with the operator token;
//                       one snapshot per view is shared by every request that comes while it is
//                       being made or up to STATUS_SNAPSHOT_MAX_AGE_MS after (anyone can ask, and
//                       each snapshot queries the farm's database)
//   GET /status/events  server-sent events: job id and event type of every job event (no content);
//                       at most MAX_STATUS_EVENT_CLIENTS at once, more are answered 503 (Retry-After)
// The operator token goes in `Authorization: Bearer TOKEN` (the page reads it from #token=...
// in its own URL, which browsers never send to the server).
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { describeDbError } from '../../db/errors.ts';

export interface ReadinessCheck {
  name: string;
  /** true when ready, else a one-line reason. */
  check(): Promise<true | string>;
}

export interface StatusSource<T = unknown> {
  /** The page's snapshot; `full` only with the operator token. */
  snapshot(full: boolean): Promise<T>;
  /** Calls `listener` for every job event; returns an unsubscribe function. */
  subscribe(listener: (event: { type: string; jobId: number }) => void): Promise<() => Promise<void>>;
}

export interface OpsServerOptions {
  host: string;
  port: number;
  registry: Registry;
  readiness: ReadinessCheck[];
  status?: StatusSource;
  /** Unlocks the full status view; unset = public view only. */
  statusToken?: string;
  /** Process role shown on the page ("bot", "worker"). */
  role: string;
  log?: (level: 'info' | 'warn', fields: Record<string, unknown>, message: string) => void;
  /** How long one readiness check, or collecting one metric, may take (default DEFAULT_CHECK_TIMEOUT_MS, 3000 ms). */
  checkTimeoutMs?: number;
  /** How long a finished status snapshot is served again (default STATUS_SNAPSHOT_MAX_AGE_MS); 0: only requests that come while it is made share it. */
  statusSnapshotMaxAgeMs?: number;
  /** How many /status/events streams may be open at once (default MAX_STATUS_EVENT_CLIENTS). */
  maxStatusEventClients?: number;
}

/**
 * How long a status snapshot (/status/data) is served again after it was made, per view (public,
 * full). Requests that come while one is being made always wait for it instead of making their own.
 * The page refreshes once more after this long when job events stop (status/app.js), so it ends on
 * a snapshot made after the last event.
 */
export const STATUS_SNAPSHOT_MAX_AGE_MS = 2000;

/** How many /status/events streams may be open at once; one more is answered 503 with Retry-After. */
export const MAX_STATUS_EVENT_CLIENTS = 100;

/** Seconds a refused /status/events client is asked to wait (Retry-After). */
const EVENTS_RETRY_AFTER_SECONDS = 30;

/**
 * `make(key)`, shared: calls for a key while its promise is pending get that promise, and so do
 * calls up to `maxAgeMs` after it resolved; a rejected one is not kept (the next call tries again).
 */
export function sharedSnapshots<K, T>(make: (key: K) => Promise<T>, maxAgeMs: number, now: () => number = Date.now): (key: K) => Promise<T> {
  const entries = new Map<K, { promise: Promise<T>; doneAt?: number }>();
  return (key) => {
    const entry = entries.get(key);
    if (entry && (entry.doneAt === undefined || now() - entry.doneAt < maxAgeMs)) return entry.promise;
    const fresh: { promise: Promise<T>; doneAt?: number } = { promise: Promise.resolve().then(() => make(key)) };
    entries.set(key, fresh);
    fresh.promise.then(
      () => {
        fresh.doneAt = now();
      },
      () => {
        if (entries.get(key) === fresh) entries.delete(key);
      },
    );
    return fresh.promise;
  };
}

export interface OpsServer {
  /** Actual address (port 0 picks a free one). */
  url: string;
  port: number;
  close(): Promise<void>;
}

const STATIC = new URL('./status/', import.meta.url);
const page = (name: string) => readFileSync(new URL(name, STATIC), 'utf8');

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Constant-time comparison of the presented token with the configured one. */
export function tokenMatches(presented: string | undefined, expected: string | undefined): boolean {
  if (!expected || !presented) return false;
  return timingSafeEqual(digest(presented), digest(expected));
}

function bearer(req: http.IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  const match = header ? /^Bearer\s+(.+)$/i.exec(header) : null;
  return match?.[1]?.trim();
}

/** How long one readiness check, or collecting one metric, may take unless OpsServerOptions.checkTimeoutMs says otherwise. */
export const DEFAULT_CHECK_TIMEOUT_MS = 3000;

/** `promise`, or `fallback()` once `timeoutMs` has passed without it settling. */
async function bounded<T>(promise: Promise<T>, timeoutMs: number, fallback: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback()), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The registry in Prometheus text format, each metric collected on its own and bounded by
 * `timeoutMs`: a metric whose collect() fails or does not finish in time (the farm's database
 * gauges while the database is away) is left out and reported through `failed`, and the others
 * are answered. prom-client's registry.metrics() fails as a whole instead, so one unreachable
 * database would take every metric with it, blendfarm_ready{check="database"} 0 included: the
 * very sample that says what is wrong.
 */
export async function metricsText(registry: Registry, timeoutMs: number, failed: (name: string, reason: string | undefined) => void): Promise<string> {
  const names = registry.getMetricsAsArray().map((metric) => (metric as unknown as { name: string }).name);
  const parts = await Promise.all(
    names.map(async (name) => {
      const text = await bounded(
        registry.getSingleMetricAsString(name).catch((error: unknown) => {
          failed(name, describeDbError(error));
          return undefined;
        }),
        timeoutMs,
        () => {
          failed(name, `not collected within ${timeoutMs} ms`);
          return undefined;
        },
      );
      if (text !== undefined) failed(name, undefined);
      return text;
    }),
  );
  return `${parts.filter((p): p is string => p !== undefined).join('\n\n')}\n`;
}

/** Every check at once, each bounded by `timeoutMs`: [name, true or the reason] in the checks' order. What /readyz answers from. */
export function runReadiness(checks: readonly ReadinessCheck[], timeoutMs = DEFAULT_CHECK_TIMEOUT_MS): Promise<Array<readonly [string, true | string]>> {
  return Promise.all(checks.map(async (c) => [c.name, await runCheck(c, timeoutMs)] as const));
}

function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<true | string> {
  return bounded(
    check.check().catch((error: unknown) => (error as Error).message || String(error)),
    timeoutMs,
    () => `no answer within ${timeoutMs} ms`,
  );
}

export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const html = page('index.html');
  const script = page('app.js');
  const timeoutMs = options.checkTimeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  const sseClients = new Set<http.ServerResponse>();
  const maxEventClients = options.maxStatusEventClients ?? MAX_STATUS_EVENT_CLIENTS;
  const status = options.status;
  const snapshot = status ? sharedSnapshots((full: boolean) => status.snapshot(full), options.statusSnapshotMaxAgeMs ?? STATUS_SNAPSHOT_MAX_AGE_MS) : undefined;
  // Metrics left out of /metrics now: logged when one starts failing and when it is back, not per scrape.
  const failingMetrics = new Set<string>();
  const metricFailed = (name: string, reason: string | undefined) => {
    if (reason === undefined) {
      if (failingMetrics.delete(name)) options.log?.('info', { metric: name }, `/metrics: ${name} is collected again`);
    } else if (!failingMetrics.has(name)) {
      failingMetrics.add(name);
      options.log?.('warn', { metric: name }, `/metrics: ${name} left out (${reason}); the other metrics are served`);
    }
  };
  let unsubscribe: (() => Promise<void>) | undefined;
  if (options.status) {
    unsubscribe = await options.status.subscribe((event) => {
      const data = `event: job\ndata: ${JSON.stringify({ type: event.type, jobId: event.jobId })}\n\n`;
      for (const client of sseClients) client.write(data);
    });
  }
  // Keeps proxies and browsers from timing out an idle event stream.
  const keepAlive = setInterval(() => {
    for (const client of sseClients) client.write(': keep-alive\n\n');
  }, 15_000);
  keepAlive.unref();

  const send = (res: http.ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...extra });
    res.end(body);
  };
  const json = (res: http.ServerResponse, status: number, body: unknown) => send(res, status, 'application/json; charset=utf-8', JSON.stringify(body));

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain; charset=utf-8', 'Only GET: this server is read-only.\n', { allow: 'GET, HEAD' });
      return;
    }
    switch (url.pathname) {
      case '/metrics': {
        // A second longer than a readiness check: blendfarm_ready, which runs the checks, is always in.
        send(res, 200, options.registry.contentType, await metricsText(options.registry, timeoutMs + 1000, metricFailed));
        return;
      }
      case '/healthz':
        json(res, 200, { ok: true, role: options.role, uptimeSeconds: Math.round(process.uptime()) });
        return;
      case '/readyz': {
        const results = await runReadiness(options.readiness, timeoutMs);
        const failing = results.filter(([, r]) => r !== true);
        const checks = Object.fromEntries(results.map(([name, r]) => [name, r === true ? 'ok' : r]));
        json(res, failing.length ? 503 : 200, { ready: failing.length === 0, role: options.role, checks });
        return;
      }
      case '/':
        // A worker serves no status page: its / falls through to the list of what it does serve.
        if (!options.status) break;
        send(res, 302, 'text/plain; charset=utf-8', 'See /status\n', { location: '/status' });
        return;
      case '/status':
      case '/status/':
        if (!options.status) break;
        send(res, 200, 'text/html; charset=utf-8', html, { 'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:" });
        return;
      case '/status/app.js':
        if (!options.status) break;
        send(res, 200, 'text/javascript; charset=utf-8', script);
        return;
      case '/status/data': {
        if (!snapshot) break;
        const presented = bearer(req);
        if (presented !== undefined && !tokenMatches(presented, options.statusToken)) {
          json(res, 401, { error: options.statusToken ? 'The operator token is wrong; check BLENDFARM_STATUS_TOKEN.' : 'No operator token is configured on this server (BLENDFARM_STATUS_TOKEN); only the public view exists.' });
          return;
        }
        json(res, 200, await snapshot(presented !== undefined));
        return;
      }
      case '/status/events': {
        if (!options.status) break;
        if (sseClients.size >= maxEventClients) {
          send(res, 503, 'text/plain; charset=utf-8', `Too many live status pages open (${maxEventClients}); try again later. /status/data still answers.\n`, {
            'retry-after': String(EVENTS_RETRY_AFTER_SECONDS),
          });
          return;
        }
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
        res.write('retry: 2000\n\n');
        sseClients.add(res);
        req.on('close', () => sseClients.delete(res));
        return;
      }
    }
    send(res, 404, 'text/plain; charset=utf-8', `Nothing at ${url.pathname}. Try /metrics, /healthz, /readyz${options.status ? ' or /status' : ''}.\n`);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      // The error's code and message only: a failed query's text and parameters stay out of the
      // answer and the log (describeDbError).
      const reason = describeDbError(error);
      options.log?.('warn', { path: req.url }, `HTTP ${req.url} failed: ${reason}`);
      if (!res.headersSent) json(res, 500, { error: reason });
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        new Error(
          error.code === 'EADDRINUSE'
            ? `Port ${options.port} on ${options.host} is already in use; set BLENDFARM_HTTP_PORT to a free port (or 0 to pick one).`
            : `Could not listen on ${options.host}:${options.port} (${error.message}); check BLENDFARM_HTTP_HOST and BLENDFARM_HTTP_PORT.`,
        ),
      );
    });
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  options.log?.('info', { url }, `HTTP: ${url}/metrics, /healthz, /readyz${options.status ? ', /status' : ''}`);
  return {
    url,
    port: address.port,
    async close() {
      clearInterval(keepAlive);
      for (const client of sseClients) client.end();
      sseClients.clear();
      await unsubscribe?.().catch(() => {});
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
