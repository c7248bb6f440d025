// Workers announce themselves (capabilities, concurrency) and heartbeat, so `farm status` and
// the bot can tell whether anything online can run a job.
import { and, asc, eq, isNull, sql, type SQL } from 'drizzle-orm';
import { workers, type JobKind } from '../db/schema.ts';
import type { FarmContext } from './config.ts';
import { type JobParams, outputPixels } from './job-params.ts';
import { DEFAULT_UPSCALE_FACTOR, UPSCALE_FACTORS, upscalerMakes } from './limits.ts';
import type { JobNeeds, WorkerCapabilities } from './types.ts';

export interface WorkerRegistration {
  id: string;
  host: string;
  pid: number;
  capabilities: WorkerCapabilities;
  concurrency: number;
}

export interface WorkerInfo extends WorkerRegistration {
  startedAt: Date;
  heartbeatAt: Date;
  stoppedAt: Date | null;
  online: boolean;
  runningJobs: number;
}

export async function registerWorker(farm: FarmContext, worker: WorkerRegistration): Promise<void> {
  const values = { ...worker, capabilities: worker.capabilities as unknown as Record<string, unknown> };
  await farm.db.db
    .insert(workers)
    .values(values)
    .onConflictDoUpdate({
      target: workers.id,
      set: { ...values, startedAt: sql`now()`, heartbeatAt: sql`now()`, stoppedAt: null },
    });
}

export async function markWorkerStopped(farm: FarmContext, workerId: string): Promise<void> {
  await farm.db.db.update(workers).set({ stoppedAt: sql`now()` }).where(eq(workers.id, workerId));
}

/** A worker counts as online while it has heartbeated within one lease period. */
export async function listWorkers(farm: FarmContext, options: { onlineOnly?: boolean } = {}): Promise<WorkerInfo[]> {
  const online = sql<boolean>`(${workers.stoppedAt} is null and ${workers.heartbeatAt} > now() - make_interval(secs => ${farm.config.leaseSeconds}))`;
  const rows = await farm.db.db
    .select({
      worker: workers,
      online,
      // Qualified by hand: drizzle leaves column names bare inside a correlated subquery.
      runningJobs: sql<number>`(select count(*)::int from jobs j where j.worker_id = "workers"."id" and j.status = 'running')`,
    })
    .from(workers)
    .where(options.onlineOnly ? and(online, isNull(workers.stoppedAt)) : undefined)
    .orderBy(asc(workers.id));
  return rows.map(({ worker, online: isOnline, runningJobs }) => ({
    id: worker.id,
    host: worker.host,
    pid: worker.pid,
    capabilities: { upscalers: [], ...(worker.capabilities as unknown as WorkerCapabilities) },
    concurrency: worker.concurrency,
    startedAt: worker.startedAt,
    heartbeatAt: worker.heartbeatAt,
    stoppedAt: worker.stoppedAt,
    online: isOnline,
    runningJobs,
  }));
}

export function jobNeeds(kind: JobKind, params: JobParams): JobNeeds {
  return { kind, model: params.model, pixels: outputPixels(params), upscaleFactor: params.upscaleFactor, upscaler: params.upscaler };
}

/**
 * Whether a worker can run a job: the output fits its maxPixels, and it has the job's model or, for
 * an upscale job (which upscales the parent's finished video and needs no diffusion model), the
 * upscaler named or, when none is named, one that makes the factor. The claim (capableSql) is the
 * same rule in SQL.
 */
export function canRun(capabilities: WorkerCapabilities, need: JobNeeds): boolean {
  if (need.pixels > capabilities.maxPixels) return false;
  if (need.kind === 'upscale') {
    const upscalers = capabilities.upscalers ?? [];
    if (upscalers.includes('*')) return true;
    if (need.upscaler !== undefined) return upscalers.includes(need.upscaler);
    return upscalers.some((u) => upscalerMakes(u, need.upscaleFactor ?? DEFAULT_UPSCALE_FACTOR));
  }
  return capabilities.models.includes('*') || capabilities.models.includes(need.model);
}

/** canRun as a condition on a jobs row aliased `j` (kind, model, pixels, params), for the claim. */
export function capableSql(capabilities: WorkerCapabilities): SQL {
  const anyModel = capabilities.models.includes('*');
  const upscalers = capabilities.upscalers ?? [];
  const anyUpscaler = upscalers.includes('*');
  // Factors this worker makes with some upscaler: an upscale job naming none needs one of them.
  const factors = UPSCALE_FACTORS.filter((f) => anyUpscaler || upscalers.some((u) => upscalerMakes(u, f)));
  return sql`(j.pixels <= ${capabilities.maxPixels}::bigint and case
    when j.kind = 'upscale' then ${anyUpscaler}::boolean or coalesce(case
      when j.params ? 'upscaler' then ${JSON.stringify(upscalers)}::jsonb @> (j.params -> 'upscaler')
      else ${JSON.stringify(factors)}::jsonb @> (j.params -> 'upscaleFactor') end, false)
    else ${anyModel}::boolean or j.model in (select jsonb_array_elements_text(${JSON.stringify(capabilities.models)}::jsonb)) end)`;
}

export async function findCapableWorkers(farm: FarmContext, need: JobNeeds): Promise<{ capable: WorkerInfo[]; online: WorkerInfo[] }> {
  const online = await listWorkers(farm, { onlineOnly: true });
  return { capable: online.filter((w) => canRun(w.capabilities, need)), online };
}
