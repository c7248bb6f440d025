// Farm-wide knobs. Each has a setting in config/settings.ts (its environment variable); the apps
// load them once with loadConfig() and build the FarmConfig from that result with farmConfigFrom.
// Tests pass overrides directly. The farm itself never reads the environment.
import type { Config } from '../config/index.ts';
import type { FarmDb } from '../db/client.ts';
import { defined } from './defined.ts';
import { type GuildCeilings, MAX_HELD_PICTURE_BYTES_PER_USER } from './limits.ts';
import { DEFAULT_POLICY_OPTIONS, type BudgetDefaults, type CostModel, type FarmPolicy, type PolicyOptions } from './policy/index.ts';

/** The lease and worker knobs here; the budget, cost and fairness options in policy/options.ts. */
export interface FarmConfig extends PolicyOptions {
  /** A running job whose lease is not renewed for this long is taken back and retried. Default 30. */
  leaseSeconds: number;
  /** How often a worker renews its leases (well under leaseSeconds). Default 10. */
  heartbeatSeconds: number;
  /** Minimum interval between progress writes per job (NOTIFY and UPDATE). Default 1000. */
  progressThrottleMs: number;
  /** Retry n waits n * this before the job can be claimed again. Default 5. */
  retryBackoffSeconds: number;
  /** Attempts before a job is failed. Default 3. */
  maxAttempts: number;
  /**
   * A running job on its last attempt whose lease expired is failed by the reaper only once the
   * lease has been expired this much longer (jobs with attempts left are re-queued at once). Until
   * then the job stays running under the expired lease, so a render its worker finished and
   * spooled (farm/spool.ts) is still completed under that lease when the worker reaches the
   * database again or restarts, instead of the job being failed and the render thrown away; its
   * own worker may also renew the lease. 0 = fail at once. Default 120: four default leases
   * (twelve heartbeats), time for a supervisor to restart a worker or for a database to fail
   * over, while a job whose worker really died is reported failed only two minutes later.
   */
  lastAttemptGraceSeconds: number;
  /** Idle workers re-check the queue this often even without a NOTIFY. Default 2000. */
  pollIntervalMs: number;
  /** A render that ignores abort for this long after a cancel gets its thread terminated. Default 10000. */
  abortGraceMs: number;
  /** Artifacts go to files here when set; into the database (bytea) otherwise. */
  artifactDir: string | undefined;
  /**
   * Workers write each finished video here before storing it and recover it from here after an
   * outage or a restart (farm/spool.ts); undefined = memory only. The apps get the setting's
   * default (BLENDFARM_SPOOL_DIR, ./data/spool); code that builds a FarmConfig itself gets none.
   */
  spoolDir: string | undefined;
  /** A render may run this many times its reserved GPU-seconds before it is stopped and failed (renderTimeLimitSeconds). Default 4. */
  renderTimeoutFactor: number;
  /** ... but at least this long. Default 600. */
  renderTimeoutMinSeconds: number;
  /**
   * A job that stays claimable but unclaimed this long fails as expired with a full refund; a
   * worker heartbeating within this long counts as known when a submission is checked against
   * the workers' capabilities. 0 = never. Default 21600 (6 h).
   */
  queueTimeoutSeconds: number;
  /** Retention (farm/retention.ts); 0 turns each rule off. */
  retention: RetentionOptions;
  /**
   * The most picture bytes one member's jobs may hold: waiting, running, or ended without a video
   * and not yet cleaned up (retention.unrenderedInputHours). Default MAX_HELD_PICTURE_BYTES_PER_USER
   * (200 MiB; BLENDFARM_MAX_HELD_PICTURE_BYTES).
   */
  maxHeldPictureBytes: number;
  /** Workers apply the retention rules this often; 0 = only `npm run farm -- prune`. Default 3600. */
  pruneIntervalSeconds: number;
}

export interface RetentionOptions {
  /** Videos of jobs finished longer ago are deleted (the job row stays). Default 30. */
  artifactDays: number;
  /** Jobs finished longer ago are deleted, with their events and video; ledger entries stay. Default 90. */
  jobDays: number;
  /** The oldest videos are deleted while all of them take more bytes than this. Default 0 (no cap). */
  maxArtifactBytes: number;
  /**
   * The pictures (job_inputs) of jobs that ended without a video (failed or cancelled) are deleted
   * this many hours after they ended; the job row stays, and a retry after that has none to render
   * from. A retry within the window still has them. Pictures of done jobs stay (re-roll and extend use
   * them) until the job goes. Default 24.
   */
  unrenderedInputHours: number;
}

/**
 * How long the farm waits for anything about a job: a queued job expires after
 * queueTimeoutSeconds, so a worker that heartbeated within it still counts as known (submissions
 * are checked against its capabilities) and a spooled render older than it is deleted unused. A
 * day when queued jobs never expire; never less than a lease plus lastAttemptGraceSeconds, the
 * time a job on its last attempt waits, running under its expired lease, for its spooled render
 * (a short queue timeout must not delete the render that grace keeps the job for).
 */
export function queueHorizonSeconds(config: Pick<FarmConfig, 'queueTimeoutSeconds' | 'leaseSeconds' | 'lastAttemptGraceSeconds'>): number {
  const queue = config.queueTimeoutSeconds > 0 ? config.queueTimeoutSeconds : 86_400;
  return Math.max(queue, config.leaseSeconds + config.lastAttemptGraceSeconds);
}

/**
 * How long a worker asked to stop ('finish': SIGTERM) lets running renders finish before it hands
 * them back (FarmWorker.stop's default; BLENDFARM_SHUTDOWN_GRACE_SECONDS, read by the worker app).
 */
export const DEFAULT_SHUTDOWN_GRACE_SECONDS = 30;

/** How long a render of a job with this reservation may run: max(min, reserved × factor) seconds. */
export function renderTimeLimitSeconds(config: Pick<FarmConfig, 'renderTimeoutFactor' | 'renderTimeoutMinSeconds'>, reservedGpuSeconds: number): number {
  return Math.max(config.renderTimeoutMinSeconds, Math.ceil(reservedGpuSeconds * config.renderTimeoutFactor));
}

/**
 * A render past its time limit that is still progressing runs on while its progress projects the
 * end within this many times the limit: a slow worker (a CPU one, or an older GPU, on a job
 * priced for the cost model's GPU) finishes instead of being stopped at 100 % minus a bit. The
 * time past the limit is not charged beyond the reservation (settlement caps the charge).
 */
export const RENDER_OVERTIME_FACTOR = 4;
/** "Still progressing": a progress report within this long (or within the limit, when shorter). */
export const RENDER_STALL_SECONDS = 120;

/**
 * At or past a render's time limit: `runOn`, how many more seconds it may run, or `stop`, why not.
 * `fraction` (0..1) and `secondsSinceProgress`: its latest progress report, if any. It runs on
 * only while it reported progress within RENDER_STALL_SECONDS (or the limit, if shorter) and its
 * pace (elapsed / fraction) ends it within RENDER_OVERTIME_FACTOR × the limit; `runOn` is the time
 * that pace still needs plus a tenth (at least a second), never past that cap. Asked again when
 * that runs out.
 */
export function renderOvertime(
  limitSeconds: number,
  elapsedSeconds: number,
  progress: { fraction: number; secondsSinceProgress: number } | undefined,
): { runOn: number } | { stop: string } {
  const cap = limitSeconds * RENDER_OVERTIME_FACTOR;
  if (elapsedSeconds >= cap) return { stop: `it reached ${RENDER_OVERTIME_FACTOR} × its limit (${cap} s)` };
  if (!progress || !(progress.fraction > 0)) return { stop: 'it reported no progress' };
  const stall = Math.min(RENDER_STALL_SECONDS, limitSeconds);
  if (progress.secondsSinceProgress > stall) return { stop: `it reported no progress in the last ${stall} s` };
  const fraction = Math.min(progress.fraction, 1);
  const projected = elapsedSeconds / fraction;
  if (projected > cap) return { stop: `at its pace (${Math.round(fraction * 100)} % done after ${Math.round(elapsedSeconds)} s) it would end after ${Math.round(projected)} s, past ${cap} s` };
  return { runOn: Math.min(cap - elapsedSeconds, Math.max(1, (projected - elapsedSeconds) * 1.1)) };
}

export const DEFAULT_FARM_CONFIG: FarmConfig = {
  leaseSeconds: 30,
  heartbeatSeconds: 10,
  progressThrottleMs: 1000,
  retryBackoffSeconds: 5,
  maxAttempts: 3,
  lastAttemptGraceSeconds: 120,
  pollIntervalMs: 2000,
  abortGraceMs: 10_000,
  artifactDir: undefined,
  spoolDir: undefined,
  renderTimeoutFactor: 4,
  renderTimeoutMinSeconds: 600,
  queueTimeoutSeconds: 21_600,
  maxHeldPictureBytes: MAX_HELD_PICTURE_BYTES_PER_USER,
  retention: { artifactDays: 30, jobDays: 90, maxArtifactBytes: 0, unrenderedInputHours: 24 },
  pruneIntervalSeconds: 3600,
  ...DEFAULT_POLICY_OPTIONS,
};

export type FarmConfigOverrides = Partial<Omit<FarmConfig, 'budget' | 'cost' | 'guildCeilings' | 'retention'>> & {
  budget?: Partial<BudgetDefaults>;
  cost?: Partial<CostModel>;
  guildCeilings?: Partial<GuildCeilings>;
  retention?: Partial<RetentionOptions>;
};

/** The settings (config/settings.ts) a FarmConfig is built from. */
export type FarmSettings = Pick<
  Config,
  | 'leaseSeconds'
  | 'heartbeatSeconds'
  | 'progressThrottleMs'
  | 'retryBackoffSeconds'
  | 'maxAttempts'
  | 'lastAttemptGraceSeconds'
  | 'fairnessHalfLife'
  | 'pollIntervalMs'
  | 'abortGraceMs'
  | 'artifactDir'
  | 'spoolDir'
  | 'refillGpuSeconds'
  | 'refillPeriodSeconds'
  | 'maxActiveJobs'
  | 'costPerMegapixelStep'
  | 'costPerUpscaledMegapixel'
  | 'guildMaxRefillGpuSeconds'
  | 'guildMinRefillPeriodSeconds'
  | 'guildMaxActiveJobs'
  | 'renderTimeoutFactor'
  | 'renderTimeoutMinSeconds'
  | 'queueTimeoutSeconds'
  | 'maxHeldPictureBytes'
  | 'retentionArtifactDays'
  | 'retentionJobDays'
  | 'retentionMaxArtifactBytes'
  | 'retentionUnrenderedInputHours'
  | 'pruneIntervalSeconds'
>;

/**
 * The farm's configuration from loadConfig()'s result (settings left unset keep their defaults),
 * then `overrides`. Throws when the heartbeat is not shorter than the lease.
 */
export function farmConfigFrom(settings: Partial<FarmSettings>, overrides: FarmConfigOverrides = {}): FarmConfig {
  const base = DEFAULT_FARM_CONFIG;
  const fromSettings = defined({
    leaseSeconds: settings.leaseSeconds,
    heartbeatSeconds: settings.heartbeatSeconds,
    progressThrottleMs: settings.progressThrottleMs,
    retryBackoffSeconds: settings.retryBackoffSeconds,
    maxAttempts: settings.maxAttempts,
    lastAttemptGraceSeconds: settings.lastAttemptGraceSeconds,
    fairnessHalfLifeSeconds: settings.fairnessHalfLife,
    pollIntervalMs: settings.pollIntervalMs,
    abortGraceMs: settings.abortGraceMs,
    artifactDir: settings.artifactDir || undefined,
    spoolDir: settings.spoolDir || undefined,
    renderTimeoutFactor: settings.renderTimeoutFactor,
    renderTimeoutMinSeconds: settings.renderTimeoutMinSeconds,
    queueTimeoutSeconds: settings.queueTimeoutSeconds,
    maxHeldPictureBytes: settings.maxHeldPictureBytes,
    pruneIntervalSeconds: settings.pruneIntervalSeconds,
  });
  const retention = defined({
    artifactDays: settings.retentionArtifactDays,
    jobDays: settings.retentionJobDays,
    maxArtifactBytes: settings.retentionMaxArtifactBytes,
    unrenderedInputHours: settings.retentionUnrenderedInputHours,
  });
  const budget = defined({
    refillGpuSeconds: settings.refillGpuSeconds,
    refillPeriodSeconds: settings.refillPeriodSeconds,
    maxActiveJobs: settings.maxActiveJobs,
  });
  const cost = defined({ secondsPerMegapixelStep: settings.costPerMegapixelStep, secondsPerUpscaledMegapixelFrame: settings.costPerUpscaledMegapixel });
  const guildCeilings = defined({
    maxRefillGpuSeconds: settings.guildMaxRefillGpuSeconds,
    minRefillPeriodSeconds: settings.guildMinRefillPeriodSeconds,
    maxActiveJobs: settings.guildMaxActiveJobs,
  });
  const config: FarmConfig = {
    ...base,
    ...fromSettings,
    ...defined({ ...overrides, budget: undefined, cost: undefined, guildCeilings: undefined, retention: undefined }),
    budget: { ...base.budget, ...budget, ...defined(overrides.budget ?? {}) },
    cost: { ...base.cost, ...cost, ...defined(overrides.cost ?? {}) },
    guildCeilings: { ...base.guildCeilings, ...guildCeilings, ...defined(overrides.guildCeilings ?? {}) },
    retention: { ...base.retention, ...retention, ...defined(overrides.retention ?? {}) },
  };
  if (config.heartbeatSeconds >= config.leaseSeconds) {
    throw new Error(`The heartbeat (${config.heartbeatSeconds}s) must be shorter than the lease (${config.leaseSeconds}s); lower BLENDFARM_HEARTBEAT_SECONDS.`);
  }
  return config;
}

/** What most farm functions need: the database and the configuration. */
export interface FarmContext {
  db: FarmDb;
  config: FarmConfig;
  /** The budget, cost and fair-order policy; default: defaultPolicy(config) (farm/policy/index.ts). */
  policy?: FarmPolicy;
}
