// Workers announce themselves (capabilities, concurrency) and heartbeat, so `farm status` and
// the bot can tell whether anything online can run a job.
import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import { workers } from '../db/schema.ts';
import type { FarmContext } from './config.ts';
import type { WorkerCapabilities } from './types.ts';

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
    capabilities: worker.capabilities as unknown as WorkerCapabilities,
    concurrency: worker.concurrency,
    startedAt: worker.startedAt,
    heartbeatAt: worker.heartbeatAt,
    stoppedAt: worker.stoppedAt,
    online: isOnline,
    runningJobs,
  }));
}

export function canRun(capabilities: WorkerCapabilities, model: string, pixels: number): boolean {
  return (capabilities.models.includes('*') || capabilities.models.includes(model)) && pixels <= capabilities.maxPixels;
}

export async function findCapableWorkers(farm: FarmContext, model: string, pixels: number): Promise<{ capable: WorkerInfo[]; online: number }> {
  const online = await listWorkers(farm, { onlineOnly: true });
  return { capable: online.filter((w) => canRun(w.capabilities, model, pixels)), online: online.length };
}
