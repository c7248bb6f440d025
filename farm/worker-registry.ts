// Workers announce themselves (capabilities, concurrency) and heartbeat, so `farm status` and
// the bot can tell whether anything online can run a job.
import { randomUUID } from 'node:crypto';
import { and, asc, eq, isNull, sql, type SQL } from 'drizzle-orm';
import type { Queryable } from '../db/client.ts';
import { isProcessAlive } from '../db/pglite-lock.ts';
import { pidNamespace } from '../db/process-identity.ts';
import { workers, type JobKind } from '../db/schema.ts';
import type { FarmContext } from './config.ts';
import { type JobParams, MODEL_ABILITIES, type ModelAbility, modelAbilityFor, outputPixels } from './job-params.ts';
import { DEFAULT_UPSCALE_FACTOR, nearestSides, sideMultipleFor, UPSCALE_FACTORS, upscalerMakes } from './limits.ts';
import { delay } from './timers.ts';
import type { JobNeeds, WorkerCapabilities } from './types.ts';

export interface WorkerRegistration {
  id: string;
  host: string;
  pid: number;
  capabilities: WorkerCapabilities;
  concurrency: number;
  /** This process's hold on the id (claimWorkerId); default a new random one. */
  instance?: string;
  /** The process's pid namespace (pidNamespace()); default unknown. */
  pidNamespace?: string;
  /**
   * The worker's own lease in seconds (its BLENDFARM_LEASE_SECONDS): readers count it online while
   * it heartbeated within this (workerOnline), not within their own setting. Default: the
   * registering process's farm.config.leaseSeconds.
   */
  leaseSeconds?: number;
}

export interface WorkerInfo extends WorkerRegistration {
  startedAt: Date;
  heartbeatAt: Date;
  stoppedAt: Date | null;
  online: boolean;
  runningJobs: number;
}

/**
 * Whether a worker row counts as online: not stopped, and heartbeated (on the database's clock)
 * within the worker's own lease (its lease_seconds), so every reader agrees whatever its own
 * BLENDFARM_LEASE_SECONDS; a row from before the column existed is judged by the reader's lease.
 */
export function workerOnline(farm: FarmContext): SQL<boolean> {
  return sql<boolean>`(${workers.stoppedAt} is null and ${workers.heartbeatAt} > now() - make_interval(secs => coalesce(${workers.leaseSeconds}, ${farm.config.leaseSeconds}::float8)))`;
}

/** Registers (or re-registers) a worker under its id; the row is then `worker.instance`'s. */
export async function registerWorker(farm: FarmContext, worker: WorkerRegistration): Promise<void> {
  const values = {
    ...worker,
    instance: worker.instance ?? randomUUID(),
    pidNamespace: worker.pidNamespace ?? null,
    leaseSeconds: worker.leaseSeconds ?? farm.config.leaseSeconds,
    capabilities: worker.capabilities as unknown as Record<string, unknown>,
  };
  await farm.db.db
    .insert(workers)
    .values(values)
    .onConflictDoUpdate({
      target: workers.id,
      set: { ...values, startedAt: sql`now()`, heartbeatAt: sql`now()`, stoppedAt: null },
    });
}

/** Marks a worker stopped; with `instance`, only while the row is still that process's (not a newer holder's of the id). */
export async function markWorkerStopped(farm: FarmContext, workerId: string, instance?: string): Promise<void> {
  await farm.db.db
    .update(workers)
    .set({ stoppedAt: sql`now()` })
    .where(and(eq(workers.id, workerId), instance === undefined ? undefined : eq(workers.instance, instance)));
}

/** Who holds a worker id (the row's process). */
export interface WorkerIdHolder {
  host: string;
  pid: number;
  pidNamespace: string | null;
  instance: string | null;
  heartbeatAt: Date;
  stoppedAt: Date | null;
  /** Seconds since its last heartbeat, on the database's clock. */
  heartbeatAgoSeconds: number;
  /** Heartbeated within its lease (workerOnline) and not stopped. */
  live: boolean;
}

async function holderOf(farm: FarmContext, workerId: string): Promise<WorkerIdHolder | undefined> {
  const [row] = await farm.db.db
    .select({
      host: workers.host,
      pid: workers.pid,
      pidNamespace: workers.pidNamespace,
      instance: workers.instance,
      heartbeatAt: workers.heartbeatAt,
      stoppedAt: workers.stoppedAt,
      heartbeatAgoSeconds: sql<number>`greatest(0, extract(epoch from now() - ${workers.heartbeatAt}))::float8`,
      live: workerOnline(farm),
    })
    .from(workers)
    .where(eq(workers.id, workerId));
  return row;
}

/** "host h, pid p" */
export function holderText(holder: Pick<WorkerIdHolder, 'host' | 'pid'>): string {
  return `host ${holder.host}, pid ${holder.pid}`;
}

/** Another process (or another worker of this one) runs under the worker id a worker was started with. */
export class WorkerIdInUseError extends Error {
  constructor(
    readonly workerId: string,
    readonly holder: WorkerIdHolder,
    sameProcess = false,
  ) {
    super(
      `worker id "${workerId}" is in use: ${sameProcess ? 'another worker of this process runs under it' : `the worker on ${holderText(holder)} still heartbeats under it`}. ` +
        'Give each worker its own BLENDFARM_WORKER_ID (the farm tells workers apart by it: their status, their jobs), or stop that worker first.',
    );
    this.name = 'WorkerIdInUseError';
  }
}

/** Where this process's pid means something (db/process-identity.ts, shared with the PGlite lock). */
export { pidNamespace };

/** Instances of the workers this process started and has not stopped (claimWorkerId, releaseWorkerId). */
const runningHere = new Set<string>();

/**
 * How a worker came to hold its id: nobody live held it, or taken over from a holder that was gone.
 * `ended`: known to have ended (its pid no longer runs on this machine, or an earlier worker of this
 * process); otherwise it only stopped heartbeating, and may still be rendering cut off from the
 * database, so its jobs are left to their leases.
 */
export type WorkerIdClaim = { tookOver: false } | { tookOver: true; from: WorkerIdHolder; ended: boolean };

/**
 * Registers a starting worker under its id, unless another live worker holds it. The row's holder
 * counts as live while it heartbeated within the lease and did not stop. Then:
 * - the same process (host, pid namespace and pid all this one's): a worker of this process still
 *   running under the id refuses this one; an earlier one that ended without stopping is replaced;
 * - the same machine (host and pid namespace) with a pid that no longer runs: taken over at once
 *   (a restart after a crash or kill -9);
 * - otherwise (another machine, another container, or a pid that runs): its heartbeat is watched
 *   for two heartbeat periods plus a second. A heartbeat meanwhile: WorkerIdInUseError, nothing is
 *   written. None: the holder is gone, and the id is taken over.
 * Two workers starting at the same moment can both pass; the heartbeat (heartbeatWorker) then tells
 * the earlier one its id was taken.
 */
export async function claimWorkerId(farm: FarmContext, worker: WorkerRegistration & { instance: string }, log: (line: string) => void): Promise<WorkerIdClaim> {
  const holder = await holderOf(farm, worker.id);
  let claim: WorkerIdClaim = { tookOver: false };
  if (holder?.live && holder.instance !== worker.instance) {
    const sameMachine = holder.host === worker.host && holder.pidNamespace !== null && holder.pidNamespace === (worker.pidNamespace ?? null);
    if (sameMachine && holder.pid === worker.pid) {
      if (holder.instance !== null && runningHere.has(holder.instance)) throw new WorkerIdInUseError(worker.id, holder, true);
      log(`taking over worker id "${worker.id}" from an earlier worker of this process that ended without stopping`);
      claim = { tookOver: true, from: holder, ended: true };
    } else if (sameMachine && !isProcessAlive(holder.pid)) {
      log(`taking over worker id "${worker.id}" from pid ${holder.pid} on this machine, which no longer runs (it ended without stopping)`);
      claim = { tookOver: true, from: holder, ended: true };
    } else {
      const watchMs = Math.round((2 * farm.config.heartbeatSeconds + 1) * 1000);
      const ago = Math.round(Number(holder.heartbeatAgoSeconds));
      log(
        `worker id "${worker.id}" is held by the worker on ${holderText(holder)} (last heartbeat ${ago} s ago); ` +
          `watching its heartbeat for ${watchMs / 1000} s: this worker starts only if that one has stopped`,
      );
      await delay(watchMs);
      const now = await holderOf(farm, worker.id);
      if (now && now.instance === holder.instance && now.stoppedAt === null && now.heartbeatAt.getTime() > holder.heartbeatAt.getTime()) throw new WorkerIdInUseError(worker.id, now);
      if (now && now.instance !== holder.instance && now.live) throw new WorkerIdInUseError(worker.id, now);
      log(`taking over worker id "${worker.id}": the worker on ${holderText(holder)} ${now?.stoppedAt ? 'has stopped' : 'stopped heartbeating'}`);
      claim = { tookOver: true, from: holder, ended: false };
    }
  }
  await registerWorker(farm, worker);
  runningHere.add(worker.instance);
  return claim;
}

/** A worker of this process stopped: its instance no longer holds the id here (claimWorkerId). */
export function releaseWorkerId(instance: string): void {
  runningHere.delete(instance);
}

/**
 * A worker's heartbeat on its row, which also restores what the row says of it (online, host, pid,
 * capabilities: an older worker version under the same id may have overwritten them or marked the
 * row stopped). 'held': renewed. 'gone': no row (register again). Otherwise the row is another
 * process's (it started under the same id since): who holds it.
 */
export async function heartbeatWorker(farm: FarmContext, worker: WorkerRegistration & { instance: string }): Promise<'held' | 'gone' | WorkerIdHolder> {
  const renewed = await farm.db.db
    .update(workers)
    .set({
      heartbeatAt: sql`now()`,
      stoppedAt: null,
      host: worker.host,
      pid: worker.pid,
      pidNamespace: worker.pidNamespace ?? null,
      leaseSeconds: worker.leaseSeconds ?? farm.config.leaseSeconds,
      capabilities: worker.capabilities as unknown as Record<string, unknown>,
      concurrency: worker.concurrency,
    })
    .where(and(eq(workers.id, worker.id), eq(workers.instance, worker.instance)))
    .returning({ id: workers.id });
  if (renewed.length > 0) return 'held';
  return (await holderOf(farm, worker.id)) ?? 'gone';
}

/**
 * A worker counts as online while it has heartbeated within its own lease (workerOnline). `q`: where to read
 * (an open transaction, so a check inside it reads nothing outside it); default the database.
 */
export async function listWorkers(farm: FarmContext, options: { onlineOnly?: boolean; q?: Queryable } = {}): Promise<WorkerInfo[]> {
  const online = workerOnline(farm);
  const rows = await (options.q ?? farm.db.db)
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
    capabilities: withAbilities({ upscalers: [], ...(worker.capabilities as unknown as WorkerCapabilities) }),
    concurrency: worker.concurrency,
    startedAt: worker.startedAt,
    heartbeatAt: worker.heartbeatAt,
    stoppedAt: worker.stoppedAt,
    online: isOnline,
    runningJobs,
  }));
}

/** A model online workers offer (offeredModels): what it can do, and on how many workers of which kind. */
export interface OfferedModel {
  /** The model id a job names (JobParams.model). */
  id: string;
  /** What it can do on at least one of those workers (abilitiesOf), in MODEL_ABILITIES order. */
  abilities: ModelAbility[];
  /** Online workers offering it, busy or not. */
  workers: number;
  /** Those workers by device kind (providerKind). */
  devices: Record<ReturnType<typeof providerKind>, number>;
}

/**
 * The models online workers offer, by id (the order of ids), read as /queue and the status page
 * read the workers table (listWorkers, online only). "*" (a test double's "any model") names no
 * model, so it is not listed.
 */
export async function offeredModels(farm: FarmContext, q?: Queryable): Promise<OfferedModel[]> {
  const byId = new Map<string, OfferedModel>();
  for (const worker of await listWorkers(farm, { onlineOnly: true, q })) {
    for (const id of worker.capabilities.models) {
      if (id === '*') continue;
      const model = byId.get(id) ?? { id, abilities: [], workers: 0, devices: { GPU: 0, CPU: 0, other: 0 } };
      const abilities = new Set([...model.abilities, ...abilitiesOf(worker.capabilities, id)]);
      model.abilities = MODEL_ABILITIES.filter((a) => abilities.has(a));
      model.workers += 1;
      model.devices[providerKind(worker.capabilities.executionProvider)] += 1;
      byId.set(id, model);
    }
  }
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Execution providers that render on a GPU (engine/onnx/session.ts executionProviders). */
const GPU_PROVIDERS = new Set(['cuda', 'webgpu', 'tensorrt', 'rocm', 'dml', 'coreml']);

/** What kind of device a worker renders on, as members and the public status page are told: GPU, CPU or other. */
export function providerKind(provider: string): 'GPU' | 'CPU' | 'other' {
  return GPU_PROVIDERS.has(provider) ? 'GPU' : provider === 'cpu' ? 'CPU' : 'other';
}

export function jobNeeds(kind: JobKind, params: JobParams): JobNeeds {
  const size = kind === 'upscale' ? {} : { width: params.width, height: params.height };
  return { kind, model: params.model, ability: modelAbilityFor(kind, params), pixels: outputPixels(params), ...size, upscaleFactor: params.upscaleFactor, upscaler: params.upscaler };
}

/**
 * Whether a worker can run a job: the output fits its maxPixels, and it has the job's model, able to
 * do what the job needs at its frame size (sides that are multiples of sizeMultipleOf) or, for an
 * upscale job (which upscales the parent's finished video and needs no diffusion model), the
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
  const multiple = sizeMultipleOf(capabilities, need.model);
  if ((need.width ?? 0) % multiple !== 0 || (need.height ?? 0) % multiple !== 0) return false;
  if (capabilities.models.includes('*')) return true;
  return capabilities.models.includes(need.model) && abilitiesOf(capabilities, need.model).includes(need.ability);
}

/** Capabilities with every model's abilities listed (the default filled in). */
function withAbilities(capabilities: WorkerCapabilities): WorkerCapabilities {
  return { ...capabilities, modelAbilities: Object.fromEntries(capabilities.models.map((m) => [m, abilitiesOf(capabilities, m)])) };
}

/** What a worker's model can do; a model without an entry (older workers) does text only. */
export function abilitiesOf(capabilities: WorkerCapabilities, model: string): ModelAbility[] {
  const listed = capabilities.modelAbilities && Object.hasOwn(capabilities.modelAbilities, model) ? capabilities.modelAbilities[model] : undefined;
  return listed ?? ['text'];
}

/** The family a worker advertises for its model (WorkerCapabilities.modelFamilies), or undefined. */
export function familyOf(capabilities: WorkerCapabilities, model: string): string | undefined {
  const family = capabilities.modelFamilies && Object.hasOwn(capabilities.modelFamilies, model) ? capabilities.modelFamilies[model] : undefined;
  return typeof family === 'string' ? family : undefined;
}

/**
 * The multiple a worker's model needs a frame's sides to be (sideMultipleFor: the farm's floor,
 * LIMITS.side.multipleOf, and what the worker advertises for the model in modelSizeMultiples); a
 * model without an entry (older workers, "*") takes the floor alone, so their jobs are claimed as
 * before.
 */
export function sizeMultipleOf(capabilities: WorkerCapabilities, model: string): number {
  const listed = capabilities.modelSizeMultiples && Object.hasOwn(capabilities.modelSizeMultiples, model) ? capabilities.modelSizeMultiples[model] : undefined;
  return sideMultipleFor(typeof listed === 'number' ? listed : undefined);
}

/**
 * Why a job's frame size is refused when no worker of `workers` can run it but some could at
 * another size (their model needs sides that are multiples of more than the farm's floor:
 * sizeMultipleOf): each side that is not a multiple, with the nearest sides that are (nearestSides),
 * e.g. 'width 520 px is not a multiple of 64, which model "sd15" needs; use 512 or 576'. The
 * multiple named is the smallest among those workers' (the one that leaves the most sizes). []
 * when a worker can run it, when the size is not what stops them, and for upscale jobs.
 */
export function sizeMultipleIssues(need: JobNeeds, workers: readonly Pick<WorkerInfo, 'capabilities'>[]): string[] {
  if (need.kind === 'upscale' || workers.some((w) => canRun(w.capabilities, need))) return [];
  const { width, height, ...anySize } = need;
  const otherwise = workers.filter((w) => canRun(w.capabilities, anySize));
  if (otherwise.length === 0) return [];
  const multiple = Math.min(...otherwise.map((w) => sizeMultipleOf(w.capabilities, need.model)));
  return (
    [
      ['width', width],
      ['height', height],
    ] as const
  ).flatMap(([side, value]) => {
    if (value === undefined || value % multiple === 0) return [];
    const near = nearestSides(value, multiple);
    return [`${side} ${value} px is not a multiple of ${multiple}, which model "${need.model}" needs; ${near.length ? `use ${near.join(' or ')}` : 'pick another model'}`];
  });
}

/** modelAbilityFor(kind, params) on a jobs row aliased `j`. */
const ABILITY_SQL = sql.raw(
  `case when j.kind = 'vary' then 'variation' when j.params ? 'inpaint' then 'inpaint' ` +
    `when jsonb_array_length(coalesce(j.params -> 'images', '[]'::jsonb)) > 0 or j.params @> '{"movieHasPictures": true}'::jsonb then 'picture' else 'text' end`,
);

/** canRun as a condition on a jobs row aliased `j` (kind, model, pixels, params), for the claim. */
export function capableSql(capabilities: WorkerCapabilities): SQL {
  const anyModel = capabilities.models.includes('*');
  const upscalers = capabilities.upscalers ?? [];
  const anyUpscaler = upscalers.includes('*');
  // Factors this worker makes with some upscaler: an upscale job naming none needs one of them.
  // Each model's abilities (modelAbilityFor in SQL below: the ability the row needs).
  const abilities = Object.fromEntries(capabilities.models.map((m) => [m, abilitiesOf(capabilities, m)]));
  const factors = UPSCALE_FACTORS.filter((f) => anyUpscaler || upscalers.some((u) => upscalerMakes(u, f)));
  return sql`(j.pixels <= ${capabilities.maxPixels}::bigint and case
    when j.kind = 'upscale' then ${anyUpscaler}::boolean or coalesce(case
      when j.params ? 'upscaler' then ${JSON.stringify(upscalers)}::jsonb @> (j.params -> 'upscaler')
      else ${JSON.stringify(factors)}::jsonb @> (j.params -> 'upscaleFactor') end, false)
    else ${sizeSql(capabilities)} and (${anyModel}::boolean or coalesce((${JSON.stringify(abilities)}::jsonb -> j.model) ? (${ABILITY_SQL}), false)) end)`;
}

/**
 * sizeMultipleOf as a condition on a (non-upscale) jobs row aliased `j`: its width and height are
 * multiples of what the worker's model needs. A worker whose models all take the farm's floor
 * (older workers, test doubles) needs no condition: every stored job's sides are multiples of it.
 */
function sizeSql(capabilities: WorkerCapabilities): SQL {
  const floor = sideMultipleFor(undefined);
  const multiples = Object.fromEntries(capabilities.models.map((m) => [m, sizeMultipleOf(capabilities, m)] as const).filter(([, multiple]) => multiple !== floor));
  if (Object.keys(multiples).length === 0) return sql`true`;
  const multiple = sql`coalesce((${JSON.stringify(multiples)}::jsonb ->> j.model)::numeric, ${floor}::numeric)`;
  return sql`coalesce(mod((j.params ->> 'width')::numeric, ${multiple}) = 0 and mod((j.params ->> 'height')::numeric, ${multiple}) = 0, true)`;
}

export async function findCapableWorkers(farm: FarmContext, need: JobNeeds, q: Queryable = farm.db.db): Promise<{ capable: WorkerInfo[]; online: WorkerInfo[] }> {
  const online = await listWorkers(farm, { onlineOnly: true, q });
  return { capable: online.filter((w) => canRun(w.capabilities, need)), online };
}

/**
 * The workers the farm knows — those that heartbeated within `withinSeconds`, stopped since or
 * not (a worker restarting for an upgrade still counts) — and those of them that can run `need`.
 */
export async function findKnownWorkers(farm: FarmContext, need: JobNeeds, withinSeconds: number, q: Queryable = farm.db.db): Promise<{ capable: WorkerInfo[]; known: WorkerInfo[] }> {
  const recent = await q
    .select({ id: workers.id })
    .from(workers)
    .where(sql`${workers.heartbeatAt} > now() - make_interval(secs => ${withinSeconds}::float8)`);
  const ids = new Set(recent.map((r) => r.id));
  const known = (await listWorkers(farm, { q })).filter((w) => ids.has(w.id));
  return { capable: known.filter((w) => canRun(w.capabilities, need)), known };
}
