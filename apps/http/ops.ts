// Composition of the operations side of a process: one prom-client registry (process metrics,
// the farm's metrics, the role's own), readiness checks, the status page on the farm's job
// events, and the HTTP server that serves them. apps/bot/main.ts and apps/worker/main.ts call
// startOps when BLENDFARM_HTTP_PORT is set.
import type { Client } from 'discord.js';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { checkDatabase } from '../../db/health.ts';
import { type FarmContext, farmActivity, onJobEvent, registerFarmMetrics, type FarmMetrics } from '../../farm/index.ts';
import type { Logger } from '../log.ts';
import { DEFAULT_CHECK_TIMEOUT_MS, type OpsServer, type ReadinessCheck, runReadiness, startOpsServer } from './server.ts';

export interface OpsOptions {
  role: 'bot' | 'worker';
  farm: FarmContext;
  host: string;
  port: number;
  statusToken?: string;
  logger: Logger;
  /** Register the database gauges (queue depth, workers); default true. */
  gauges?: boolean;
  /** Count the job-event metrics (wait, render, failures, charges): one process per farm. */
  countJobEvents: boolean;
  /** Serve the status page (the bot does; a worker serves metrics and health only). */
  statusPage: boolean;
  /** Role-specific readiness (gateway connected, renderer loaded); the database check is always there. */
  readiness?: ReadinessCheck[];
  /**
   * How long one readiness check may take, in /readyz and in the blendfarm_ready gauge alike (the
   * server bounds each metric a second longer, so the gauge is always in). Default DEFAULT_CHECK_TIMEOUT_MS.
   */
  checkTimeoutMs?: number;
  /** How long a status snapshot is served again (OpsServerOptions.statusSnapshotMaxAgeMs; default STATUS_SNAPSHOT_MAX_AGE_MS). */
  statusSnapshotMaxAgeMs?: number;
}

export interface Ops {
  registry: Registry;
  server: OpsServer;
  farmMetrics: FarmMetrics;
  /** Adds a readiness check after start (e.g. once the gateway client exists). */
  addReadiness(check: ReadinessCheck): void;
  stop(): Promise<void>;
}

/** The registry with Node's process metrics; each role adds its own metrics to it. */
export function createRegistry(role: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  collectDefaultMetrics({ register: registry });
  return registry;
}

export async function startOps(options: OpsOptions, registry: Registry = createRegistry(options.role)): Promise<Ops> {
  const { farm, logger } = options;
  const checkTimeoutMs = options.checkTimeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  const farmMetrics = await registerFarmMetrics(farm, {
    registry,
    gauges: options.gauges,
    countJobEvents: options.countJobEvents,
    // One structured line per job event, with the numbers the metrics got.
    onEvent: (seen) => {
      const { event, error, ...fields } = seen;
      const level = event === 'failed' || event === 'retrying' ? 'warn' : 'info';
      logger[level]({ ...fields, event, ...(error ? { error } : {}) }, `job ${seen.jobId} ${event}`);
    },
    onError: (error) => logger.warn({ err: error }, `job event metrics: ${error.message}`),
  });
  const readiness: ReadinessCheck[] = [
    {
      name: 'database',
      async check() {
        const health = await checkDatabase(farm.db);
        return health.ok ? true : health.reason;
      },
    },
    ...(options.readiness ?? []),
  ];
  // The same checks as a gauge, so Prometheus can alert on a process that answers but is not ready
  // (ops/prometheus.yml's BlendfarmNotReady); `up` alone says only that /metrics answered.
  new Gauge({
    name: 'blendfarm_ready',
    help: 'Readiness checks of this process, as /readyz runs them: 1 when the check passes, 0 when not, by check (database, discord, model)',
    labelNames: ['check'] as const,
    registers: [registry],
    async collect() {
      const results = await runReadiness(readiness, checkTimeoutMs);
      this.reset();
      for (const [name, result] of results) this.set({ check: name }, result === true ? 1 : 0);
    },
  });
  const server = await startOpsServer({
    host: options.host,
    port: options.port,
    registry,
    readiness,
    checkTimeoutMs,
    role: options.role,
    statusToken: options.statusToken,
    statusSnapshotMaxAgeMs: options.statusSnapshotMaxAgeMs,
    status: options.statusPage
      ? {
          snapshot: (full) => farmActivity(farm, { full }),
          subscribe: (listener) => onJobEvent(farm.db, (event) => listener({ type: event.type, jobId: event.jobId })),
        }
      : undefined,
    log: (level, fields, message) => logger[level](fields, message),
  });
  return {
    registry,
    server,
    farmMetrics,
    addReadiness: (check) => readiness.push(check),
    async stop() {
      await server.close();
      await farmMetrics.stop();
    },
  };
}

/**
 * Discord REST metrics for the bot: 429 responses (by scope: user, global, shared) and
 * 413 "payload too large" responses (each makes the bot re-encode the upload smaller).
 */
export function discordRestMetrics(registry: Registry): { response(status: number, scope: string | null): void; rateLimited(global: boolean): void } {
  const tooMany = new Counter({
    name: 'blendfarm_discord_rest_429_total',
    help: 'Discord REST answers with status 429 (rate limited), by scope (user, global, shared)',
    labelNames: ['scope'] as const,
    registers: [registry],
  });
  const tooLarge = new Counter({
    name: 'blendfarm_discord_upload_too_large_total',
    help: 'Discord REST answers with status 413: the upload was too large and is re-encoded smaller',
    registers: [registry],
  });
  const waits = new Counter({
    name: 'blendfarm_discord_rate_limit_waits_total',
    help: 'Requests discord.js held back to respect a rate limit, by whether the limit was global',
    labelNames: ['global'] as const,
    registers: [registry],
  });
  for (const scope of ['user', 'global', 'shared']) tooMany.inc({ scope }, 0);
  return {
    response(status, scope) {
      if (status === 429) tooMany.inc({ scope: scope === 'global' || scope === 'shared' ? scope : 'user' });
      if (status === 413) tooLarge.inc();
    },
    rateLimited(global) {
      waits.inc({ global: String(global) });
    },
  };
}

/**
 * Counts a discord.js client's REST answers and rate-limit waits (discordRestMetrics). Attach it
 * before the client logs in (startBot's onClient) so 429s during login are counted too.
 */
export function watchDiscordRest(rest: Client['rest'], registry: Registry): void {
  const discord = discordRestMetrics(registry);
  rest.on('response', (_request, response) => discord.response(response.status, response.headers.get('x-ratelimit-scope')));
  rest.on('rateLimited', (info) => discord.rateLimited(info.global));
}
