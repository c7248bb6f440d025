// Farm-wide knobs. Every value has an environment variable so operators can tune a deployment
// without code changes; tests pass overrides directly.

import type { FarmDb } from '../db/client.ts';

export interface BudgetDefaults {
  /** Each period the balance is topped up to this many GPU-seconds (not accumulated). */
  refillGpuSeconds: number;
  refillPeriodSeconds: number;
  /** Queued + running jobs one user may have at once. */
  maxActiveJobs: number;
}

export interface CostModel {
  /** Fixed GPU-seconds per job: model load, prompt encoding, video encoding. */
  overheadSeconds: number;
  /** GPU-seconds for one UNet step on one megapixel of output. */
  secondsPerMegapixelStep: number;
  /** GPU-seconds to decode one output frame of one megapixel. */
  secondsPerMegapixelFrame: number;
}

export interface FarmConfig {
  /** A running job whose lease is not renewed for this long is taken back and retried. */
  leaseSeconds: number;
  /** How often a worker renews its leases (well under leaseSeconds). */
  heartbeatSeconds: number;
  /** Minimum interval between progress writes per job (NOTIFY and UPDATE). */
  progressThrottleMs: number;
  /** Retry n waits n * this before the job can be claimed again. */
  retryBackoffSeconds: number;
  maxAttempts: number;
  /** Half-life of a user's recent usage in the fair claim order. */
  fairnessHalfLifeSeconds: number;
  /** Idle workers re-check the queue this often even without a NOTIFY. */
  pollIntervalMs: number;
  /** A render that ignores abort for this long after a cancel gets its thread terminated. */
  abortGraceMs: number;
  /** Artifacts go to files here when set; into the database (bytea) otherwise. */
  artifactDir: string | undefined;
  budget: BudgetDefaults;
  cost: CostModel;
}

export const DEFAULT_FARM_CONFIG: FarmConfig = {
  leaseSeconds: 30,
  heartbeatSeconds: 10,
  progressThrottleMs: 1000,
  retryBackoffSeconds: 5,
  maxAttempts: 3,
  fairnessHalfLifeSeconds: 3600,
  pollIntervalMs: 2000,
  abortGraceMs: 10_000,
  artifactDir: undefined,
  budget: { refillGpuSeconds: 600, refillPeriodSeconds: 86_400, maxActiveJobs: 3 },
  cost: { overheadSeconds: 2, secondsPerMegapixelStep: 0.25, secondsPerMegapixelFrame: 0.02 },
};

export type FarmConfigOverrides = Partial<Omit<FarmConfig, 'budget' | 'cost'>> & {
  budget?: Partial<BudgetDefaults>;
  cost?: Partial<CostModel>;
};

function envNumber(env: NodeJS.ProcessEnv, name: string, min: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) throw new Error(`${name} must be a number >= ${min} (got "${raw}").`);
  return value;
}

function defined<T extends object>(values: T): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function loadFarmConfig(env: NodeJS.ProcessEnv = process.env, overrides: FarmConfigOverrides = {}): FarmConfig {
  const base = DEFAULT_FARM_CONFIG;
  const fromEnv = defined({
    leaseSeconds: envNumber(env, 'BLENDFARM_LEASE_SECONDS', 1),
    heartbeatSeconds: envNumber(env, 'BLENDFARM_HEARTBEAT_SECONDS', 0.1),
    progressThrottleMs: envNumber(env, 'BLENDFARM_PROGRESS_THROTTLE_MS', 0),
    retryBackoffSeconds: envNumber(env, 'BLENDFARM_RETRY_BACKOFF_SECONDS', 0),
    maxAttempts: envNumber(env, 'BLENDFARM_MAX_ATTEMPTS', 1),
    fairnessHalfLifeSeconds: envNumber(env, 'BLENDFARM_FAIRNESS_HALF_LIFE_SECONDS', 1),
    pollIntervalMs: envNumber(env, 'BLENDFARM_POLL_INTERVAL_MS', 10),
    abortGraceMs: envNumber(env, 'BLENDFARM_ABORT_GRACE_MS', 0),
    artifactDir: env.BLENDFARM_ARTIFACT_DIR || undefined,
  });
  const budgetEnv = defined({
    refillGpuSeconds: envNumber(env, 'BLENDFARM_REFILL_GPU_SECONDS', 0),
    refillPeriodSeconds: envNumber(env, 'BLENDFARM_REFILL_PERIOD_SECONDS', 1),
    maxActiveJobs: envNumber(env, 'BLENDFARM_MAX_ACTIVE_JOBS', 1),
  });
  const costEnv = defined({
    secondsPerMegapixelStep: envNumber(env, 'BLENDFARM_GPU_SECONDS_PER_MEGAPIXEL_STEP', 0),
  });
  const config: FarmConfig = {
    ...base,
    ...fromEnv,
    ...defined({ ...overrides, budget: undefined, cost: undefined }),
    budget: { ...base.budget, ...budgetEnv, ...defined(overrides.budget ?? {}) },
    cost: { ...base.cost, ...costEnv, ...defined(overrides.cost ?? {}) },
  } as FarmConfig;
  if (config.heartbeatSeconds >= config.leaseSeconds) {
    throw new Error(`The heartbeat (${config.heartbeatSeconds}s) must be shorter than the lease (${config.leaseSeconds}s); lower BLENDFARM_HEARTBEAT_SECONDS.`);
  }
  return config;
}

/** What most farm functions need: the database and the configuration. */
export interface FarmContext {
  db: FarmDb;
  config: FarmConfig;
}
