// A render worker: claims jobs that fit its renderer's capabilities, runs them through a p-queue
// with one slot per GPU, keeps their leases alive, writes throttled progress, and finishes each
// job with one lease-conditional transaction (artifact + settlement + event).
//
// Failure handling:
// - render throws           -> failAttempt: retried after a back-off, failed + refunded after max attempts;
//                              a RenderError with requestFault fails at once, charged the time it ran
// - job cancelled           -> the 'cancelled' event (or the next heartbeat) aborts the render
// - render runs too long    -> aborted after renderTimeLimitSeconds (a multiple of its reservation),
//                              or later while still progressing at a pace that ends it within
//                              RENDER_OVERTIME_FACTOR × that (renderOvertime), failed at once,
//                              charged for the time it ran (capped), the rest refunded
// - database down at the end -> the finished video is written to the spool (farm/spool.ts) and the
//                              completion retried until the lease would have expired (heartbeats renew
//                              it once the database is back); past that the spool entry stays, and this
//                              or any worker sharing the folder completes the job from it (at start and on
//                              every heartbeat) instead of rendering it again, also after a restart
// - completion's answer lost -> (the COMMIT went through, or may have) the retry or the check that
//                              follows asks the database (completionOf): a completion stored under
//                              this lease with this file counts as stored, its artifact file stays;
//                              one whose transaction is over unstored has its file deleted at once
//                              (the spool's entry, if any, stores the job later with a file of its
//                              own); one whose transaction may still commit, or that the database
//                              cannot be asked about, keeps its file until the next heartbeat asks
// - lease lost              -> the render is aborted; its result could not be stored anyway
// - worker killed (kill -9) -> its leases expire; any worker's reaper requeues the jobs (a job on its
//                              last attempt is failed, lastAttemptGraceSeconds after its lease ran out)
// - worker fault            -> (RenderError workerFault: the model's files, the execution provider, a missing
//                              ffmpeg on this worker) the job is handed back without using an attempt, and
//                              this worker claims no job needing the same (its model, upscales, or any job)
//                              for a pause (WORKER_FAULT_PAUSE: 5 s doubling up to 5 min) and says so in its
//                              log and faultCheck (/readyz); after the pause one claim tries again, and a
//                              render that succeeds ends the fault. Models the renderer says it cannot load
//                              (Renderer.unavailableModels) are not claimed at all.
// - stop('finish') (SIGTERM) stops claiming and lets running renders finish within a grace
//   period, then aborts them and hands the jobs back without using an attempt.
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import PQueue from 'p-queue';
import { dbFailureLine, describeDbError, loggableError } from '../db/errors.ts';
import { DEFAULT_SHUTDOWN_GRACE_SECONDS, type FarmContext, queueHorizonSeconds, RENDER_OVERTIME_FACTOR, renderOvertime, renderTimeLimitSeconds } from './config.ts';
import { onJobEvent } from './events.ts';
import { getArtifact, getJob, getJobInputs } from './jobs.ts';
import { movieImageInputs, movieOf } from './movie.ts';
import { every, pruneOnce, sweepQueue } from './housekeeping.ts';
import { claimJob, type CompletedArtifact, completeJob, completionOf, CompletionUnknownError, failAttempt, handBackForWorkerFault, type Lease, releaseJob, renewLeases, reportProgress, takeBackJobsOf } from './queue.ts';
import { isPermanentRenderError, isRequestFault, MIME_TYPES, RenderError, type Renderer, type RenderResult, userMessageOf, withResultWarnings, workerFaultOf } from './renderer.ts';
import type { ClaimedJob, JobProgress, WorkerCapabilities } from './types.ts';
import { claimWorkerId, heartbeatWorker, holderText, markWorkerStopped, pidNamespace, registerWorker, releaseWorkerId, type WorkerIdHolder } from './worker-registry.ts';
import { jobDigest, recoverHeld, recoverSpool, Spool, type SpoolRecovery } from './spool.ts';
import { delay, monotonicNow, startInterval, startTimeout, type Timer } from './timers.ts';

export interface FarmWorkerOptions {
  farm: FarmContext;
  renderer: Renderer;
  /** Unique per worker process; default host-pid-random. */
  id?: string;
  /** Concurrent renders (one per GPU). Default 1. */
  concurrency?: number;
  /** Where the worker's lines go; `level` is given for the lines that need attention (default: guessed by the logger). */
  log?: (line: string, level?: 'info' | 'warn' | 'error') => void;
  /**
   * How long a stop of the worker's own (its id taken) lets running renders finish before they are
   * handed back. Default DEFAULT_SHUTDOWN_GRACE_SECONDS (apps/worker: BLENDFARM_SHUTDOWN_GRACE_SECONDS).
   */
  graceMs?: number;
  /**
   * Called once when another process has taken this worker's id since it started (it was started
   * under the same BLENDFARM_WORKER_ID): the worker logs it and is already stopping ('finish'),
   * so a process can end. Default: none.
   */
  onIdTaken?: (holder: WorkerIdHolder) => void;
  /** How long a worker fault keeps the worker from claiming what it could not do; default WORKER_FAULT_PAUSE. */
  faultPause?: { firstMs: number; maxMs: number };
  /** This process's monotonic clock in ms (default monotonicNow): what fault pauses and the progress throttle are measured on. Tests bring their own. */
  monotonicNow?: () => number;
}

/** After a worker fault, the worker claims no job needing the same for 5 s, doubling after each further fault up to 5 min. */
export const WORKER_FAULT_PAUSE = { firstMs: 5_000, maxMs: 300_000 } as const;

/** One thing this worker found it cannot do (a worker fault): what, why, and until when it claims no job needing it. */
interface WorkerFault {
  /** What it rules out, for the log and /readyz: 'model "sdxl"', 'upscales', 'any job'. */
  what: string;
  reason: string;
  /** The worker's monotonic clock (monotonicNow) until which no job needing it is claimed; past it, one claim tries again. */
  until: number;
  pauseMs: number;
  /** Faults in a row. */
  count: number;
  /** The job trying again after the pause, while it runs: no other job needing the same is claimed meanwhile. */
  probe?: number;
}

export type StopMode = 'finish' | 'release';
type AbortReason = 'cancelled' | 'lease-lost' | 'shutdown' | 'timeout';

interface RunningJob {
  job: ClaimedJob;
  controller: AbortController;
  reason?: AbortReason;
  /** performance.now() by which the lease runs out unless renewed (claim, heartbeats, progress writes push it). */
  leaseUntil: number;
  /** The renderer's latest progress report: its fraction, and performance.now() when it came (the time limit's overtime rule). */
  lastProgress?: { fraction: number; at: number };
}

/** A finished render's description, apart from its bytes. */
interface ResultInfo {
  format: string;
  mime: string;
  meta: Record<string, unknown>;
}

/** A completion whose answer was lost and that the database could not tell about yet (FarmWorker.store). */
interface UnsettledCompletion {
  lease: Lease;
  /** The artifact file it wrote (name inside the artifact folder, and full path); none for bytes stored in the database. */
  fileName?: string;
  filePath?: string;
}

export interface WorkerStats {
  claimed: number;
  completed: number;
  failedAttempts: number;
  /** Renders whose result was discarded because the lease was gone (cancelled or taken back). */
  discarded: number;
  released: number;
  /** Jobs completed from the spool (farm/spool.ts) instead of being rendered again. */
  recovered: number;
}

/** Why a render was abandoned before it finished, and what became of it and the job, for the log (not 'shutdown': the job is handed back). */
const ABANDONED_BECAUSE: Record<Exclude<AbortReason, 'shutdown'>, string> = {
  cancelled: 'the job was cancelled (by its owner or the operator); nothing is stored',
  'lease-lost': 'its lease was lost (the farm gave the job to another worker or failed it); its result could not be stored',
  timeout: 'it ran past its time limit',
};

/** What failAttempt did with a job, in words: queued again, failed for good (and why), or nothing (the lease was gone). */
function attemptOutcomeText(job: ClaimedJob, outcome: 'retrying' | 'failed' | 'lost', permanent: boolean, requestFault = false): string {
  if (outcome === 'lost') return "nothing recorded: the job's lease was already gone (cancelled, or taken back by the farm)";
  if (outcome === 'retrying') return `queued again for attempt ${job.attempt + 1} of ${job.maxAttempts}`;
  const why = permanent ? 'this error is not retried' : 'that was its last attempt';
  return `the job failed (${why}), ${requestFault ? 'charged for the time it ran' : 'refunded in full'}`;
}

export function defaultWorkerId(): string {
  return `${os.hostname()}-${process.pid}-${randomBytes(2).toString('hex')}`;
}

/**
 * The file a failed read of a stored video could not read (getArtifact wraps the file system's error
 * as its cause): its path and error code; undefined for any other failure (the database's).
 */
function unreadableFile(error: unknown): { path: string; code: string } | undefined {
  const cause = error instanceof Error ? (error.cause as NodeJS.ErrnoException | undefined) : undefined;
  return cause && typeof cause.path === 'string' && typeof cause.code === 'string' ? { path: cause.path, code: cause.code } : undefined;
}

/** Writes at most one progress update per interval (on `now`, a monotonic clock), always the latest, never two at once. */
export class ProgressThrottle {
  private latest: JobProgress | undefined;
  private lastWrite = -Infinity;
  private timer: Timer | undefined;
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly intervalMs: number,
    private readonly write: (progress: JobProgress) => Promise<void>,
    private readonly now: () => number = monotonicNow,
  ) {}

  push(progress: JobProgress): void {
    if (this.stopped) return;
    this.latest = progress;
    if (this.timer) return;
    const wait = Math.max(0, this.lastWrite + this.intervalMs - this.now());
    this.timer = startTimeout(() => {
      this.timer = undefined;
      const value = this.latest;
      this.latest = undefined;
      if (!value || this.stopped) return;
      this.lastWrite = this.now();
      this.chain = this.chain.then(() => this.write(value));
    }, wait);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.clear();
    await this.chain;
  }
}

export class FarmWorker {
  readonly id: string;
  readonly concurrency: number;
  /** This process's hold on the worker id (the row's `instance`). */
  private readonly instance = randomUUID();
  private readonly onIdTaken: ((holder: WorkerIdHolder) => void) | undefined;
  private readonly graceMs: number;
  /** Set once another process has taken the id (heartbeat). */
  private idTaken = false;
  readonly stats: WorkerStats = { claimed: 0, completed: 0, failedAttempts: 0, discarded: 0, released: 0, recovered: 0 };

  private readonly farm: FarmContext;
  private readonly renderer: Renderer;
  private readonly capabilities: WorkerCapabilities;
  private readonly log: (line: string, level?: 'info' | 'warn' | 'error') => void;
  private readonly queue: PQueue;
  private readonly running = new Map<number, RunningJob>();
  private stopping = false;
  private wakeUp: (() => void) | undefined;
  private loopDone: Promise<void> | undefined;
  private stopPromise: Promise<void> | undefined;
  private heartbeatTimer: Timer | undefined;
  /** The heartbeat under way, if any (stop waits for it). */
  private heartbeating: Promise<void> | undefined;
  private stopPruning: (() => Promise<void>) | undefined;
  private unsubscribe: (() => Promise<void>) | undefined;
  /** BLENDFARM_SPOOL_DIR; undefined: finished videos are kept in memory only. */
  private readonly spool: Spool | undefined;
  private recovering: Promise<void> | undefined;
  private readonly spoolReported = new Map<string, string>();
  private spoolProblem: string | undefined;
  /** Completions whose answer was lost, waiting for the database to say whether they were stored (store). */
  private readonly unsettled: UnsettledCompletion[] = [];
  /** Worker faults by what they rule out: 'model:<id>', 'upscale' or 'worker' (faultKey). */
  private readonly faults = new Map<string, WorkerFault>();
  private readonly faultPause: { firstMs: number; maxMs: number };
  private readonly now: () => number;
  /** The models the renderer said it cannot render at the last claim, to log a change once. */
  private unavailableSaid = '';

  constructor(options: FarmWorkerOptions) {
    this.farm = options.farm;
    this.renderer = options.renderer;
    this.capabilities = options.renderer.capabilities();
    this.id = options.id ?? defaultWorkerId();
    this.concurrency = Math.max(1, options.concurrency ?? 1);
    this.queue = new PQueue({ concurrency: this.concurrency });
    this.log = options.log ?? ((line) => console.log(`[worker ${this.id}] ${line}`));
    this.onIdTaken = options.onIdTaken;
    this.graceMs = options.graceMs ?? DEFAULT_SHUTDOWN_GRACE_SECONDS * 1000;
    this.spool = this.farm.config.spoolDir ? new Spool(this.farm.config.spoolDir) : undefined;
    this.faultPause = options.faultPause ?? WORKER_FAULT_PAUSE;
    this.now = options.monotonicNow ?? monotonicNow;
  }

  /**
   * The /readyz check of what this worker can render: true, or the worker faults whose pause is
   * running (what it does not claim, why, and for how long).
   */
  faultCheck(): true | string {
    const now = this.now();
    const active = [...this.faults.values()].filter((f) => f.until > now);
    if (active.length === 0) return true;
    return active.map((f) => `claims no ${f.what === 'any job' ? 'job' : `job on ${f.what}`} for ${Math.max(1, Math.ceil((f.until - now) / 1000))} s: ${f.reason}`).join('; ');
  }

  /**
   * What the next claim may take: the capabilities without the models the renderer cannot load now
   * and without what a worker fault rules out; undefined when nothing is left.
   */
  private claimCapabilities(): WorkerCapabilities | undefined {
    const now = this.now();
    // Paused, or past the pause with one job trying again: one job at a time tries, whatever the concurrency.
    const paused = (key: string) => {
      const fault = this.faults.get(key);
      return fault !== undefined && (fault.until > now || fault.probe !== undefined);
    };
    if (paused('worker')) return undefined;
    const unavailable = new Set(this.renderer.unavailableModels?.() ?? []);
    const said = [...unavailable].sort().join(', ');
    if (said !== this.unavailableSaid) {
      this.log(said ? `claiming no job on ${said}: the renderer says the model did not load (upscales and other models are still claimed)` : `claiming jobs on every model again`, said ? 'warn' : 'info');
      this.unavailableSaid = said;
    }
    const caps = this.capabilities;
    const models = unavailable.has('*') ? [] : caps.models.filter((m) => !unavailable.has(m) && !paused(`model:${m}`));
    const upscalers = paused('upscale') ? [] : caps.upscalers;
    if (models.length === caps.models.length && upscalers === caps.upscalers) return caps;
    if (models.length === 0 && (upscalers ?? []).length === 0) return undefined;
    const abilities = caps.modelAbilities && Object.fromEntries(Object.entries(caps.modelAbilities).filter(([m]) => models.includes(m)));
    return { ...caps, models, ...(abilities ? { modelAbilities: abilities } : {}), ...(upscalers ? { upscalers } : {}) };
  }

  /** Which worker fault a job's failure sets: what the job needed (its model, or upscales) or the whole worker. */
  private static faultKey(job: ClaimedJob, scope: 'model' | 'worker'): { key: string; what: string } {
    if (scope === 'worker') return { key: 'worker', what: 'any job' };
    return job.kind === 'upscale' ? { key: 'upscale', what: 'upscales' } : { key: `model:${job.model}`, what: `model "${job.model}"` };
  }

  /**
   * A worker fault in a render: the job goes back to the queue without using an attempt (another
   * worker renders it), and this worker claims nothing needing the same for a pause that doubles
   * while the fault lasts (no claim-and-release loop).
   */
  private async workerFault(job: ClaimedJob, scope: 'model' | 'worker', message: string): Promise<void> {
    const { key, what } = FarmWorker.faultKey(job, scope);
    const before = this.faults.get(key);
    // The pause doubles once per failed try (the job claimed after a pause), not once per job
    // that was already rendering when the fault showed: those fail within the running pause.
    const now = this.now();
    const tried = before !== undefined && (before.probe === job.id || before.until <= now);
    const pauseMs = before === undefined ? this.faultPause.firstMs : tried ? Math.min(before.pauseMs * 2, this.faultPause.maxMs) : before.pauseMs;
    const until = before === undefined || tried ? now + pauseMs : before.until;
    this.faults.set(key, { what, reason: message, until, pauseMs, count: (before?.count ?? 0) + 1 });
    const outcome = await this.retryWrite(() => handBackForWorkerFault(this.farm, job, this.id, `worker ${this.id} cannot render it: ${message}`)).catch(() => false as const);
    if (outcome === 'released') this.stats.released++;
    if (outcome === 'failed') this.stats.failedAttempts++;
    const said =
      outcome === 'released'
        ? 'handed back to the queue without using an attempt, for another worker'
        : outcome === 'failed'
          ? 'the job failed, refunded in full: every online worker able to run it has handed it back so, as many times as it has attempts'
          : 'its lease was already gone, nothing recorded';
    this.log(
      `job ${job.id}: this worker cannot render it (${message}); ${said}` +
        `. This worker claims no ${what === 'any job' ? 'job' : `job on ${what}`} for ${Math.ceil((until - now) / 1000)} s (fault ${before ? before.count + 1 : 1} in a row), then tries one again`,
      'error',
    );
  }

  /** A job claimed past a fault's pause is that fault's one try: nothing else needing the same is claimed until it ends. */
  private markProbe(job: ClaimedJob): void {
    for (const key of ['worker', FarmWorker.faultKey(job, 'model').key]) {
      const fault = this.faults.get(key);
      if (fault && fault.probe === undefined) fault.probe = job.id;
    }
  }

  /** The try ended some other way than a success or a worker fault (a failure of its own, a cancel): the next job may try. */
  private endProbe(job: ClaimedJob): void {
    for (const fault of this.faults.values()) if (fault.probe === job.id) fault.probe = undefined;
  }

  /** A render that succeeded ends the fault of what it needed (and a worker-wide one). */
  private clearFaults(job: ClaimedJob): void {
    for (const key of ['worker', FarmWorker.faultKey(job, 'model').key]) {
      const fault = this.faults.get(key);
      if (!fault) continue;
      this.faults.delete(key);
      this.log(`${fault.what === 'any job' ? 'jobs' : fault.what} render${fault.what === 'any job' ? '' : 's'} again on this worker (job ${job.id} succeeded): claiming them again`);
    }
  }

  /** Ids of the jobs rendering right now. */
  get runningJobIds(): number[] {
    return [...this.running.keys()];
  }

  async start(): Promise<void> {
    // Refused (WorkerIdInUseError) while another process runs under the same id.
    const claim = await claimWorkerId(this.farm, this.registration(), this.log);
    this.unsubscribe = await onJobEvent(this.farm.db, (event) => {
      if (event.type === 'cancelled') this.abort(event.jobId, 'cancelled');
      // A job taken back may be one whose video waits in the spool: claimed from there before its
      // retry back-off ends and another worker could render it again (no waiting for the heartbeat).
      if (event.type === 'retrying') void this.recoverSpool();
      if (event.type === 'queued' || event.type === 'retrying' || event.type === 'released') this.wake();
    });
    await this.probeSpool();
    // Renders left in the spool by an outage or a previous run are stored before anything new is
    // claimed, so the claim loop does not pick up one of their jobs and render it again.
    await this.removeSpoolStrays();
    await this.recoverSpool();
    // A pass an event started meanwhile is not waited for by recoverSpool: this waits for it too.
    await this.recovering;
    // The jobs a process known to have ended was rendering go back to the queue now, not when their
    // leases run out; not those whose render waits in this spool (completed from it later). A holder
    // that only stopped heartbeating may still be rendering, cut off: its jobs keep their leases.
    if (claim.tookOver && claim.ended) {
      const spooled = await this.spooledLeaseTokens();
      const taken = await takeBackJobsOf(this.farm, this.id, `the process that held worker id ${this.id} (${holderText(claim.from)})`, spooled);
      if (taken > 0) this.log(`took back ${taken} job(s) the previous holder of this id was rendering`);
    }
    this.heartbeatTimer = startInterval(() => {
      this.heartbeating = this.heartbeat();
    }, this.farm.config.heartbeatSeconds * 1000);
    this.stopPruning = every(this.farm.config.pruneIntervalSeconds, () => this.prune());
    this.loopDone = this.claimLoop();
    this.log(`started: ${this.concurrency} slot(s), models ${this.capabilities.models.join(', ')}, up to ${this.capabilities.maxPixels} px, ${this.capabilities.executionProvider}, spool ${this.spool?.dir ?? 'off'}`);
  }

  /**
   * 'finish': stop claiming, let running renders finish (up to graceMs), then hand back what is
   * left. 'release': abort running renders now and hand their jobs back. Calling again with
   * 'release' while a 'finish' stop is under way escalates it.
   */
  stop(mode: StopMode = 'finish', graceMs = DEFAULT_SHUTDOWN_GRACE_SECONDS * 1000): Promise<void> {
    if (mode === 'release') this.abortAll('shutdown');
    if (this.stopPromise) return this.stopPromise;
    this.stopping = true;
    this.wake();
    this.stopPromise = (async () => {
      await this.loopDone;
      const graceTimer = startTimeout(() => this.abortAll('shutdown'), mode === 'release' ? 0 : graceMs);
      // A render that ignores its abort must not keep the process alive forever.
      const abortDeadline = (mode === 'release' ? 0 : graceMs) + this.farm.config.abortGraceMs + 1000;
      await Promise.race([this.queue.onIdle(), delay(abortDeadline, { ref: false })]);
      graceTimer.clear();
      for (const entry of this.running.values()) await this.handBack(entry.job).catch(() => {});
      this.heartbeatTimer?.clear();
      // A heartbeat under way would mark the row online again after it is marked stopped.
      await this.heartbeating;
      await this.recovering;
      await this.settleUnknown();
      for (const c of this.unsettled) {
        if (c.filePath) this.log(`job ${c.lease.id}: stopping before the database could tell whether its result was stored; ${c.filePath} is kept (delete it if the job's video is another file)`);
      }
      await this.stopPruning?.();
      await this.unsubscribe?.().catch(() => {});
      // Only while the row is this process's: a newer holder of the id stays online.
      await markWorkerStopped(this.farm, this.id, this.instance).catch(() => {});
      releaseWorkerId(this.instance);
      this.log(`stopped (${this.stats.completed} completed, ${this.stats.released} handed back)`);
    })();
    return this.stopPromise;
  }

  /**
   * Whether the spool folder takes files, found at start rather than at the first finished job: a
   * folder it cannot write is one warning line (the worker still starts; its results are then kept
   * in memory only).
   */
  private async probeSpool(): Promise<void> {
    if (!this.spool) return;
    try {
      await this.spool.probe();
    } catch (error) {
      this.log(
        `spool folder ${this.spool.dir} cannot be written (${(error as Error).message}): finished videos are kept in memory only, ` +
          'so a database outage at the end of a render, longer than the lease, or a restart before the result is stored loses that render; ' +
          'give the worker a writable folder with room for a few videos in BLENDFARM_SPOOL_DIR',
        'warn',
      );
    }
  }

  /** The lease tokens of the renders waiting in this worker's spool (none without one, or when it cannot be read). */
  private async spooledLeaseTokens(): Promise<string[]> {
    const spool = this.spool;
    if (!spool) return [];
    try {
      const entries = await Promise.all((await spool.names()).map((name) => spool.read(name)));
      return entries.flatMap(({ entry }) => (entry ? [entry.leaseToken] : []));
    } catch {
      return [];
    }
  }

  private registration() {
    return { id: this.id, host: os.hostname(), pid: process.pid, pidNamespace: pidNamespace(), capabilities: this.capabilities, concurrency: this.concurrency, instance: this.instance };
  }

  /**
   * The worker's own row: renewed, registered again if it is gone, or — when another process has
   * taken the id since — this worker stops claiming, finishes what it runs (its leases are its
   * own) and leaves the row to the newer process.
   */
  private async heartbeatRow(): Promise<void> {
    if (this.idTaken) return;
    const beat = await heartbeatWorker(this.farm, this.registration());
    if (beat === 'held') return;
    if (beat === 'gone') {
      await registerWorker(this.farm, this.registration());
      return;
    }
    this.idTaken = true;
    this.log(
      `another worker took this worker's id since it started (${holderText(beat)}): two processes must not share one BLENDFARM_WORKER_ID. ` +
        'This one stops claiming jobs and stops once its running renders end; give each worker its own id.',
      'error',
    );
    void this.stop('finish', this.graceMs);
    this.onIdTaken?.(beat);
  }

  private wake(): void {
    const wake = this.wakeUp;
    this.wakeUp = undefined;
    wake?.();
  }

  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = startTimeout(() => {
        this.wakeUp = undefined;
        resolve();
      }, ms);
      this.wakeUp = () => {
        timer.clear();
        resolve();
      };
    });
  }

  private async claimLoop(): Promise<void> {
    while (!this.stopping) {
      if (this.running.size >= this.concurrency) {
        await this.idle(this.farm.config.pollIntervalMs);
        continue;
      }
      // Not what the renderer cannot load now, nor what a worker fault rules out for now.
      const capabilities = this.claimCapabilities();
      if (!capabilities) {
        await this.idle(this.farm.config.pollIntervalMs);
        continue;
      }
      let job: ClaimedJob | undefined;
      try {
        job = await claimJob(this.farm, this.id, capabilities);
      } catch (error) {
        const why = dbFailureLine(error); // unreachable database: logged once by the handle
        if (why) this.log(`claim failed: ${why}; retrying`);
        await this.idle(1000);
        continue;
      }
      if (!job) {
        await this.idle(this.farm.config.pollIntervalMs);
        continue;
      }
      this.stats.claimed++;
      this.markProbe(job);
      if (this.stopping) {
        await this.handBack(job).catch(() => {});
        break;
      }
      this.log(`job ${job.id}: attempt ${job.attempt} of ${job.maxAttempts} started (${job.kind}, user ${job.userId})`);
      const entry: RunningJob = { job, controller: new AbortController(), leaseUntil: performance.now() + this.farm.config.leaseSeconds * 1000 };
      this.running.set(job.id, entry);
      this.queue.add(() => this.run(entry)).catch((error: unknown) => this.log(`job ${entry.job.id}: ${(error as Error).message}`));
    }
  }

  private abort(jobId: number, reason: AbortReason): void {
    const entry = this.running.get(jobId);
    if (!entry || entry.reason) return;
    entry.reason = reason;
    const why = { cancelled: 'job cancelled', 'lease-lost': 'lease lost', shutdown: 'worker shutting down', timeout: 'render time limit reached' }[reason];
    entry.controller.abort(new Error(why));
  }

  private abortAll(reason: AbortReason): void {
    for (const jobId of this.running.keys()) this.abort(jobId, reason);
  }

  private async heartbeat(): Promise<void> {
    try {
      // Only jobs asked about can be judged: one claimed during the query is not in the answer.
      const asked = [...this.running.values()];
      const sent = performance.now();
      await this.heartbeatRow();
      const held = await renewLeases(this.farm, this.id, asked.map((entry) => entry.job.leaseToken));
      for (const entry of asked) {
        if (held.has(entry.job.leaseToken)) entry.leaseUntil = sent + this.farm.config.leaseSeconds * 1000;
        // A job that finished meanwhile is no longer in `running`.
        if (!held.has(entry.job.leaseToken) && this.running.get(entry.job.id) === entry) this.abort(entry.job.id, 'lease-lost');
      }
      // The database answers: completions whose answer was lost are settled, then spooled renders,
      // before the sweep below could take back a job whose lease ran out during the outage while
      // its video waits in the spool.
      await this.settleUnknown();
      await this.recoverSpool();
      const { reaped } = await sweepQueue(this.farm, this.log);
      if (reaped > 0) this.wake();
    } catch (error) {
      const why = dbFailureLine(error);
      if (why) this.log(`heartbeat failed: ${why}`);
    }
  }

  /** Retention, and the spool's leftovers from crashed writes (both rare, slow-moving clean-ups). */
  private async prune(): Promise<void> {
    await this.removeSpoolStrays();
    await pruneOnce(this.farm, this.log);
  }

  /** Spool files no entry will claim (crashed writes, entries past the queue horizon); a failure is logged, not fatal. */
  private async removeSpoolStrays(): Promise<void> {
    await this.spool?.removeStrays(queueHorizonSeconds(this.farm.config) * 1000).catch((error: unknown) => this.log(`spool folder ${this.spool?.dir}: could not clean up (${(error as Error).message})`));
  }

  private async handBack(job: ClaimedJob): Promise<void> {
    if (await releaseJob(this.farm, job)) this.stats.released++;
  }

  private async run(entry: RunningJob): Promise<void> {
    const { job, controller } = entry;
    const progress = new ProgressThrottle(this.farm.config.progressThrottleMs, async (value) => {
      try {
        const sent = performance.now();
        if (await reportProgress(this.farm, job, value)) entry.leaseUntil = Math.max(entry.leaseUntil, sent + this.farm.config.leaseSeconds * 1000);
        else this.abort(job.id, 'lease-lost');
      } catch (error) {
        const why = dbFailureLine(error);
        if (why) this.log(`job ${job.id}: progress write failed: ${why}`);
      }
    }, this.now);
    const started = performance.now();
    // A hung render would hold its slot forever (the heartbeat keeps renewing the lease): past its
    // time limit it is aborted and the job failed, unless it is still progressing at a pace that
    // ends it within RENDER_OVERTIME_FACTOR × the limit (renderOvertime: a slow worker).
    const limitSeconds = renderTimeLimitSeconds(this.farm.config, job.reservedGpuSeconds);
    let overtime = false;
    /** Why the render was stopped at or past its limit (renderOvertime), for the log. */
    let stoppedBecause = '';
    const atLimit = (): void => {
      const now = performance.now();
      const last = entry.lastProgress;
      const decision = renderOvertime(limitSeconds, (now - started) / 1000, last && { fraction: last.fraction, secondsSinceProgress: (now - last.at) / 1000 });
      if ('stop' in decision) {
        stoppedBecause = decision.stop;
        this.abort(job.id, 'timeout');
        return;
      }
      if (!overtime) this.log(`job ${job.id}: past its time limit (${limitSeconds} s) but still progressing (${Math.round(last!.fraction * 100)} % done): letting it run on, up to ${limitSeconds * RENDER_OVERTIME_FACTOR} s`);
      overtime = true;
      limitTimer = startTimeout(atLimit, decision.runOn * 1000);
    };
    // However long (a huge reservation × the factor can pass the 24.8 days one Node timer takes).
    let limitTimer = startTimeout(atLimit, limitSeconds * 1000);
    try {
      await this.attachParent(job);
      // The pictures stored with the job (job_inputs): the renderer cannot fetch them itself.
      const inputs = await getJobInputs(this.farm, job.id);
      if (Object.keys(inputs).length) job.inputs = inputs;
      const rendering = this.renderer.render(job, {
        signal: controller.signal,
        onProgress: (p) => {
          entry.lastProgress = { fraction: p.fraction, at: performance.now() };
          progress.push(p);
        },
      });
      const result = await this.untilAbandoned(rendering, controller.signal);
      limitTimer.clear();
      await progress.stop();
      // Even after a shutdown abort, a finished render is worth storing (the lease is still ours).
      this.clearFaults(job);
      await this.finish(entry, result, (performance.now() - started) / 1000);
    } catch (error) {
      limitTimer.clear();
      await progress.stop();
      const message = error instanceof Error ? error.message : String(error);
      if (entry.reason === 'timeout') {
        this.stats.failedAttempts++;
        const ranSeconds = Math.round((performance.now() - started) / 1000);
        const limitText =
          (overtime
            ? `The render ran ${ranSeconds} s, past its limit of ${limitSeconds} s for a job reserving ${job.reservedGpuSeconds} GPU-seconds, and was stopped: it stopped progressing, or too slowly to end within ${limitSeconds * RENDER_OVERTIME_FACTOR} s; `
            : `The render took longer than ${limitSeconds} s, the limit for a job reserving ${job.reservedGpuSeconds} GPU-seconds, and was stopped; `) +
          'it was charged for the time it ran and the rest refunded. Try a smaller, shorter or lower-quality render.';
        const outcome = await this.retryWrite(() => failAttempt(this.farm, job, limitText, { timedOut: true, userError: limitText }));
        this.log(
          `job ${job.id}: render abandoned after ${overtime ? `${ranSeconds} s, past` : `${limitSeconds} s,`} its time limit${overtime ? ` of ${limitSeconds} s` : ''} (${stoppedBecause}): ` +
            (outcome === 'lost' ? attemptOutcomeText(job, outcome, true) : 'the job failed, charged for the time it ran and the rest refunded (a render past its time limit is not retried)'),
        );
      } else if (entry.reason === 'shutdown') {
        await this.retryWrite(() => this.handBack(job));
      } else if (entry.reason) {
        this.log(`job ${job.id}: render abandoned: ${ABANDONED_BECAUSE[entry.reason]}`);
        this.stats.discarded++;
      } else if (workerFaultOf(error)) {
        // This worker's fault, not the job's: another worker renders it, attempt unused.
        await this.workerFault(job, workerFaultOf(error)!, message);
      } else {
        this.stats.failedAttempts++;
        // The request's own fault (a video that cannot fit its maxBytes...) is charged the time it ran: a render that fails late is not free.
        const permanent = isPermanentRenderError(error);
        const outcome = await this.retryWrite(() => failAttempt(this.farm, job, message, { permanent, requestFault: isRequestFault(error), userError: userMessageOf(error) }));
        this.log(`job ${job.id}: attempt ${job.attempt} of ${job.maxAttempts} failed (${message}): ${attemptOutcomeText(job, outcome, permanent || isRequestFault(error), isRequestFault(error))}`);
      }
    } finally {
      this.endProbe(job);
      this.running.delete(job.id);
      this.wake();
    }
  }

  /** Extend jobs continue from the parent's movie and finished video, upscale jobs upscale that video: the renderer cannot fetch them itself. */
  private async attachParent(job: ClaimedJob): Promise<void> {
    if ((job.kind !== 'extend' && job.kind !== 'upscale') || job.parentJobId === null) return;
    const parent = await getJob(this.farm, job.parentJobId);
    if (!parent) return;
    // An extension continues the whole movie (following its chain) and recovers its last frame,
    // which the movie's pictures shape; an upscale needs only the finished video.
    const movie = job.kind === 'extend' ? await movieOf(this.farm.db.db, parent) : undefined;
    const pictures = movie?.images ? await movieImageInputs(this.farm.db.db, movie) : undefined;
    const artifact = await getArtifact(this.farm, parent.id).catch((error: unknown) => {
      const file = unreadableFile(error);
      if (!file) throw error;
      // This worker's storage, not the job: the video is stored as a file (BLENDFARM_ARTIFACT_DIR)
      // that this machine cannot read (the folder not shared here, or set otherwise). A worker
      // fault: handed back without using an attempt, for a worker that can read it.
      throw new RenderError(
        `cannot read the video of job ${parent.id} that it ${job.kind === 'upscale' ? 'upscales' : 'continues'}: ${file.path} (${file.code}); ` +
          `set BLENDFARM_ARTIFACT_DIR on this worker to the folder the farm keeps videos in (${this.farm.config.artifactDir ? `it is ${this.farm.config.artifactDir} here` : 'it is unset here'}), one folder every machine reads and writes`,
        { workerFault: 'model', cause: error },
      );
    });
    job.parent = {
      id: parent.id,
      params: parent.params,
      ...(movie ? { movie } : {}),
      ...(pictures ? { pictures } : {}),
      ...(artifact ? { artifact: { format: artifact.format, bytes: new Uint8Array(artifact.bytes), meta: artifact.meta } } : {}),
    };
  }

  /**
   * The render's result, or its error; once `signal` is aborted, a render that has not settled
   * within abortGraceMs is given up on (a thread renderer terminates its thread by then; an
   * in-process one that ignores the abort is left behind) so the slot and the job are freed.
   */
  private untilAbandoned<T>(rendering: Promise<T>, signal: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timer: Timer | undefined;
      const onAbort = () => {
        timer = startTimeout(() => reject(new Error(`render did not stop within ${this.farm.config.abortGraceMs} ms of being aborted`)), this.farm.config.abortGraceMs + 100);
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      rendering.then(resolve, reject).finally(() => {
        signal.removeEventListener('abort', onAbort);
        timer?.clear();
      });
    });
  }

  private async finish(entry: RunningJob, result: RenderResult, wallSeconds: number): Promise<void> {
    const { job } = entry;
    const video = Buffer.from(result.video.buffer, result.video.byteOffset, result.video.byteLength);
    const info: ResultInfo = { format: result.format, mime: result.mime ?? MIME_TYPES[result.format] ?? 'application/octet-stream', meta: withResultWarnings(result.metadata, result.warnings) };
    const gpuSeconds = Number.isFinite(result.gpuSeconds) && result.gpuSeconds >= 0 ? result.gpuSeconds : wallSeconds;
    // On disk before the first try: from here on the render outlives an outage past the lease and a restart.
    const spooled = await this.spoolResult(entry, video, info, gpuSeconds);
    let stored: boolean;
    try {
      stored = await this.store(job, video, info, gpuSeconds, (write) => this.retryUntilLeaseExpires(entry, write, spooled ? 'in the spool' : 'in memory'));
    } catch (error) {
      const why = loggableError(error);
      if (this.spool && spooled) {
        this.spool.release(spooled);
        this.log(
          `job ${job.id}: finished, but the database did not take the result before the lease ran out (${why}); ` +
            `the video stays in the spool (${this.spool.videoPath(spooled)}) and the job is completed from there once the database answers`,
        );
        return;
      }
      this.stats.discarded++;
      this.log(`job ${job.id}: finished, but the database did not take the result before the lease ran out (${why}); the job will be rendered again`);
      return;
    }
    if (stored) {
      if (this.spool && spooled) await this.spool.remove(spooled).catch((error: unknown) => this.log(`job ${job.id}: could not delete spooled render ${spooled} (${(error as Error).message})`));
      this.stats.completed++;
      this.log(`job ${job.id}: done in ${wallSeconds.toFixed(1)} s (${gpuSeconds.toFixed(1)} GPU-seconds)`);
    } else if (this.spool && spooled) {
      // The lease is gone: cancelled, or taken back while the database did not answer. The spool's
      // rules decide whether the video is still wanted (a job back in the queue is claimed again),
      // and it is stored from memory (the spooled file is there for a restart).
      const outcome = await recoverHeld(this.spoolRecovery(this.spool), spooled, { video }).catch((error: unknown) => {
        this.spool?.release(spooled);
        this.log(`job ${job.id}: result kept in the spool, the job was taken back meanwhile and could not be checked (${loggableError(error)})`);
        return 'waiting' as const;
      });
      if (outcome === 'completed') this.stats.recovered++;
      if (outcome === 'dropped') this.stats.discarded++;
    } else {
      this.stats.discarded++;
      this.log(`job ${job.id}: result discarded, the job was cancelled or taken back meanwhile`);
    }
  }

  /** Writes a finished render to the spool; undefined (logged) when there is none or the write failed. */
  private async spoolResult(entry: RunningJob, video: Buffer, info: ResultInfo, gpuSeconds: number): Promise<string | undefined> {
    if (!this.spool) return undefined;
    const { job } = entry;
    try {
      const queuing = job.queuedEventId === undefined ? {} : { queuedEventId: job.queuedEventId };
      return await this.spool.put({ jobId: job.id, attempt: job.attempt, leaseToken: job.leaseToken, workerId: this.id, ...info, gpuSeconds, jobDigest: jobDigest(job), ...queuing }, video);
    } catch (error) {
      this.log(
        `job ${job.id}: could not write the finished video to the spool folder ${this.spool.dir} (${(error as Error).message}); it is kept in memory only, ` +
          'so a database outage longer than the lease or a restart would cost this render: give the worker a writable folder with room for a few videos in BLENDFARM_SPOOL_DIR',
      );
      return undefined;
    }
  }

  /**
   * Stores a finished video as the job's result under `lease` (as a file in the artifact folder
   * first, when there is one) with `attempt`, which calls the completion once or retries it; the
   * file is deleted again unless the completion was stored. A completion whose answer was lost
   * (CompletionUnknownError) may have been stored all the same: completionOf asks the database,
   * and a completion found stored counts as stored (its file stays); one found not stored (its
   * transaction is over) has its file deleted; one still in doubt (its transaction may still
   * commit, or the database does not answer) keeps its file until settleUnknown can tell.
   */
  private async store(lease: Lease, video: Buffer, info: ResultInfo, gpuSeconds: number, attempt: (write: () => Promise<boolean>) => Promise<boolean>): Promise<boolean> {
    const artifact: CompletedArtifact = { format: info.format, mime: info.mime, meta: info.meta, sizeBytes: video.byteLength };
    let filePath: string | undefined;
    if (this.farm.config.artifactDir) {
      const name = `job-${lease.id}-attempt-${lease.attempt}-${randomUUID().slice(0, 8)}.${info.format}`;
      filePath = path.resolve(this.farm.config.artifactDir, name);
      await fs.mkdir(path.dirname(filePath), { recursive: true });
      await fs.writeFile(filePath, video);
      artifact.path = name;
    } else {
      artifact.data = video;
    }
    const unsettled: UnsettledCompletion = { lease, fileName: artifact.path, filePath };
    let answerLost: unknown;
    let outcome: 'stored' | 'not-stored' | 'unknown' = 'not-stored';
    try {
      const stored = await attempt(async () => {
        try {
          return await completeJob(this.farm, lease, { artifact, gpuSeconds, progress: { stage: 'done', fraction: 1 } });
        } catch (error) {
          if (error instanceof CompletionUnknownError) answerLost = error;
          throw error;
        }
      });
      // A later try finding the lease gone may be finding an earlier try's commit.
      outcome = stored ? 'stored' : answerLost ? await this.completionAfterLostAnswer(unsettled, answerLost) : 'not-stored';
      return outcome === 'stored';
    } catch (error) {
      if (!answerLost) throw error;
      outcome = await this.completionAfterLostAnswer(unsettled, answerLost);
      if (outcome === 'stored') return true;
      throw error;
    } finally {
      if (outcome === 'not-stored' && filePath) await fs.rm(filePath, { force: true });
      if (outcome === 'unknown') this.unsettled.push(unsettled);
    }
  }

  /** completionOf for a completion whose answer was lost: 'unknown' when the database cannot tell yet (a transaction holds the job, or it does not answer). */
  private async completionAfterLostAnswer(c: UnsettledCompletion, answerLost: unknown): Promise<'stored' | 'not-stored' | 'unknown'> {
    let state: 'stored' | 'pending' | 'not-stored';
    try {
      state = await completionOf(this.farm, c.lease, c.fileName);
    } catch {
      state = 'pending';
    }
    const why = describeDbError((answerLost as Error).cause ?? answerLost);
    if (state === 'stored') {
      this.log(`job ${c.lease.id}: the database stored the result although its answer was lost (${why})`);
      return 'stored';
    }
    if (state === 'not-stored') return 'not-stored';
    if (c.filePath) this.log(`job ${c.lease.id}: no answer to storing the result (${why}), and the database cannot tell yet whether it was stored; its file ${c.filePath} is kept until it can (checked at every heartbeat)`);
    return 'unknown';
  }

  /**
   * Completions whose answer was lost and the database could not tell about at once: asked again
   * (at every heartbeat that reached the database, and at stop); a file no stored completion
   * refers to is deleted. Never throws.
   */
  private async settleUnknown(): Promise<void> {
    for (const c of [...this.unsettled]) {
      let state: 'stored' | 'pending' | 'not-stored';
      try {
        state = await completionOf(this.farm, c.lease, c.fileName);
      } catch {
        return; // the next heartbeat asks again
      }
      if (state === 'pending') continue;
      this.unsettled.splice(this.unsettled.indexOf(c), 1);
      if (state === 'stored') this.log(`job ${c.lease.id}: its result had been stored after all, although the database's answer was lost`);
      else if (c.filePath) await fs.rm(c.filePath, { force: true }).catch((error: unknown) => this.log(`job ${c.lease.id}: could not delete unused video file ${c.filePath} (${(error as Error).message})`));
    }
  }

  /** How the spool's recovery (farm/spool.ts) reaches this worker: its identity and its way of storing a result. */
  private spoolRecovery(spool: Spool): SpoolRecovery {
    return {
      farm: this.farm,
      spool,
      workerId: this.id,
      capabilities: this.capabilities,
      log: this.log,
      reported: this.spoolReported,
      // One try: a failure leaves the entry for the next heartbeat.
      complete: (lease, entry, video) => this.store(lease, video, entry, entry.gpuSeconds, (write) => write()),
    };
  }

  /**
   * One pass over the spool (farm/spool.ts): at start, then on every heartbeat that reached the
   * database. Never two at once (a pass under way is not waited for), none once stopping; never throws.
   */
  private recoverSpool(): Promise<void> {
    const spool = this.spool;
    if (!spool || this.recovering || this.stopping) return Promise.resolve();
    this.recovering = (async () => {
      try {
        const counts = await recoverSpool(this.spoolRecovery(spool));
        this.stats.recovered += counts.completed;
        this.spoolProblem = undefined;
      } catch (error) {
        // A folder the worker cannot read is said once, not at every heartbeat.
        const why = (error as Error).message;
        if (why !== this.spoolProblem) this.log(`spool folder ${spool.dir}: ${why}; renders left there are not recovered until it can be read: fix its permissions or set BLENDFARM_SPOOL_DIR`);
        this.spoolProblem = why;
      } finally {
        this.recovering = undefined;
      }
    })();
    return this.recovering;
  }

  /**
   * A finished render is worth waiting for: its completion is retried (the video kept `where`)
   * with a growing pause for as long as the lease holds — heartbeats renew it once the database
   * answers again, so a short outage costs nothing. Throws the last error once the lease has run
   * out locally (then the spool completes the job later, or without one it is rendered again).
   */
  private async retryUntilLeaseExpires<T>(entry: RunningJob, write: () => Promise<T>, where: string): Promise<T> {
    let pauseMs = 100;
    for (let attempt = 1; ; attempt++) {
      try {
        return await write();
      } catch (error) {
        const leftMs = entry.leaseUntil - performance.now();
        if (leftMs <= 0) throw error;
        // One line per job (an unreachable database is logged once by the handle itself).
        if (attempt === 1) this.log(`job ${entry.job.id}: storing the result failed (${dbFailureLine(error) ?? 'database unreachable'}); keeping it ${where} and retrying while the lease holds (${Math.round(leftMs / 1000)} s)`);
        await delay(Math.min(pauseMs, leftMs));
        pauseMs = Math.min(pauseMs * 2, 2000);
      }
    }
  }

  /**
   * Terminal writes are retried briefly (a database blip must not waste a finished render); if
   * they keep failing the lease simply expires and the job is retried elsewhere.
   */
  private async retryWrite<T>(write: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await write();
      } catch (error) {
        if (attempt >= 3) throw error;
        const why = dbFailureLine(error);
        if (why) this.log(`database write failed (${why}); retrying`);
        await delay(500 * attempt);
      }
    }
  }
}

export async function startWorker(options: FarmWorkerOptions): Promise<FarmWorker> {
  const worker = new FarmWorker(options);
  await worker.start();
  return worker;
}
