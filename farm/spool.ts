// The workers' disk spool for finished renders (BLENDFARM_SPOOL_DIR; farm/README.md "Limits and
// failure behaviour"). A render costs GPU minutes, a disk write milliseconds: before a worker first
// tries to store a finished render it writes it here, and deletes it once the completion is stored
// or the job no longer wants it. If the database stays down past the lease, or the worker dies
// meanwhile, the entry stays and recoverSpool completes the job from it later (at worker start, on
// every heartbeat and when a job goes back to the queue) instead of the job being rendered again:
//
//   job row                                    entry
//   missing, done, failed or cancelled      -> deleted
//   params changed (jobDigest differs)      -> deleted, never stored
//   retried by its owner since the render   -> deleted, never stored (SpoolEntry.queuedEventId differs:
//     (after a cancel or a failure)            the retry asked for a fresh render)
//   running under the spooled lease token   -> completed under that lease (even once it expired)
//   failed by a reaper under that token     -> completed under that lease: done after all, charged again
//     (not queued again since)
//   queued (the lease ran out, reaped)      -> claimed again for this worker (claimSpecificJob), completed
//   running under another worker's lease    -> kept until that ends (checked again next heartbeat)
//   entry older than queueHorizonSeconds    -> deleted (the queue timeout, at least lease + last-attempt grace)
//
// A job on its last attempt is not reaped at once (reapExpiredLeases): it stays running under the
// expired lease for lastAttemptGraceSeconds, so the "spooled lease token" row applies if this or a
// worker sharing the folder reaches the database within that; after it the job is failed and
// refunded, and the entry, found later, still completes it (failed -> done, charged again, its
// delivery done again) unless its owner has retried it meanwhile.
//
// The worker that wrote an entry and still has the video in memory (its completion found the lease
// gone) recovers it at once with those bytes (recoverHeld's `video`): the file is read back only by
// a pass over the folder, i.e. after an outage past the lease or a restart.
//
// Layout: job-<id>-attempt-<n>-<random>.video (the bytes) and .json (its SpoolEntry). Each
// is written under a temporary name, flushed and renamed, the sidecar last: an entry exists once
// its sidecar does, and deleting goes the other way round. Several workers may share a folder
// (every write to the job is lease-conditional, so a job is still completed at most once), but
// one folder serves one farm: an entry whose job id means another job in this database is deleted.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { dbFailureLine, loggableError } from '../db/errors.ts';
import { type FarmContext, queueHorizonSeconds } from './config.ts';
import { claimSpecificJob, type Lease, leaseStateOf } from './queue.ts';
import type { ClaimedJob, WorkerCapabilities } from './types.ts';

/** The sidecar of a spooled render: everything needed to store it later, and to know whether it still may be. */
export interface SpoolEntry {
  version: 1;
  jobId: number;
  /** The attempt and lease it was rendered under, or re-claimed under by recovery. */
  attempt: number;
  leaseToken: string;
  workerId: string;
  format: string;
  mime: string;
  sizeBytes: number;
  /** sha256 of the video file, hex: a damaged file is deleted, never stored. */
  sha256: string;
  meta: Record<string, unknown>;
  /** The GPU time the render really took: what the job is settled with. */
  gpuSeconds: number;
  /** jobDigest of the job as claimed. */
  jobDigest: string;
  /**
   * ClaimedJob.queuedEventId of the claim that rendered it: the queuing of the job the video belongs
   * to. A job its owner retried since (after a cancel or a failure) has another, and the entry is
   * deleted: the retry asked for a fresh render. Absent in entries written before it was recorded.
   */
  queuedEventId?: number;
  /** ISO time the entry was written, on the writer's clock (for the log; its age, which queueHorizonSeconds bounds, is the video file's: Spool.ageMs). */
  createdAt: string;
}

const VIDEO = '.video';
const SIDECAR = '.json';

/** JSON with object keys sorted, so equal values give equal text whatever order jsonb returned them in. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** What a video was rendered from: the job's id, owner, kind, model and parameters. */
export function jobDigest(job: Pick<ClaimedJob, 'id' | 'kind' | 'userId' | 'model' | 'params'>): string {
  const rendered = { id: job.id, kind: job.kind, userId: job.userId, model: job.model, params: job.params };
  return createHash('sha256').update(canonicalJson(rendered)).digest('hex');
}

/**
 * Whether a spooled render's digest is this job's: as the job stands or, for an extension whose
 * movieHasPictures was added after the render (migration 0003 flagged extensions stored by an older
 * version), without that flag. The flag is derived from the movie the extension continues, which
 * does not change, so it says nothing new about what was rendered.
 */
function renderedFor(job: Pick<ClaimedJob, 'id' | 'kind' | 'userId' | 'model' | 'params'>, digest: string): boolean {
  if (jobDigest(job) === digest) return true;
  if (job.kind !== 'extend' || !job.params.movieHasPictures) return false;
  const { movieHasPictures: _derived, ...params } = job.params;
  return jobDigest({ ...job, params }) === digest;
}

function parseEntry(text: string): SpoolEntry | undefined {
  let value: Partial<SpoolEntry>;
  try {
    value = JSON.parse(text) as Partial<SpoolEntry>;
  } catch {
    return undefined;
  }
  const ok =
    value &&
    value.version === 1 &&
    Number.isSafeInteger(value.jobId) &&
    Number.isSafeInteger(value.attempt) &&
    typeof value.leaseToken === 'string' &&
    typeof value.workerId === 'string' &&
    typeof value.format === 'string' &&
    typeof value.mime === 'string' &&
    Number.isSafeInteger(value.sizeBytes) &&
    typeof value.sha256 === 'string' &&
    typeof value.meta === 'object' &&
    value.meta !== null &&
    typeof value.gpuSeconds === 'number' &&
    Number.isFinite(value.gpuSeconds) &&
    typeof value.jobDigest === 'string' &&
    (value.queuedEventId === undefined || Number.isSafeInteger(value.queuedEventId)) &&
    typeof value.createdAt === 'string' &&
    Number.isFinite(Date.parse(value.createdAt));
  return ok ? (value as SpoolEntry) : undefined;
}

/** Entries some worker of this process is storing right now (absolute sidecar paths): recovery leaves them alone. */
const inUse = new Set<string>();

/** One spool folder. */
export class Spool {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
  }

  /** Where an entry's video lies (for log lines). */
  videoPath(name: string): string {
    return path.join(this.dir, name + VIDEO);
  }

  /** Marks an entry as handled by this process; false when it already is. */
  hold(name: string): boolean {
    const key = path.join(this.dir, name);
    if (inUse.has(key)) return false;
    inUse.add(key);
    return true;
  }

  release(name: string): void {
    inUse.delete(path.join(this.dir, name));
  }

  /** Writes an entry (video, then sidecar, each atomically) and holds it; returns its name. */
  async put(entry: Omit<SpoolEntry, 'version' | 'sizeBytes' | 'sha256' | 'createdAt'>, video: Uint8Array): Promise<string> {
    // The suffix keeps names unique even if an attempt number comes round again.
    const name = `job-${entry.jobId}-attempt-${entry.attempt}-${randomBytes(3).toString('hex')}`;
    const full: SpoolEntry = {
      version: 1,
      ...entry,
      sizeBytes: video.byteLength,
      sha256: createHash('sha256').update(video).digest('hex'),
      createdAt: new Date().toISOString(),
    };
    this.hold(name);
    try {
      await fs.mkdir(this.dir, { recursive: true });
      await this.writeAtomically(name + VIDEO, video);
      await this.writeAtomically(name + SIDECAR, JSON.stringify(full, null, 2));
    } catch (error) {
      await this.remove(name);
      throw error;
    }
    return name;
  }

  /**
   * Whether the folder takes a file: creates it if need be, writes a small temporary file and
   * deletes it. Throws what failed (a read-only or missing mount, a file in its place).
   */
  async probe(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    const temp = path.join(this.dir, `.probe-${randomBytes(4).toString('hex')}.tmp`);
    try {
      await fs.writeFile(temp, 'blendfarm spool probe\n');
    } finally {
      await fs.rm(temp, { force: true }).catch(() => {});
    }
  }

  /** Replaces an entry's sidecar (recovery claimed the job again: a new attempt and lease). */
  async rewrite(name: string, entry: SpoolEntry): Promise<void> {
    await this.writeAtomically(name + SIDECAR, JSON.stringify(entry, null, 2));
  }

  /** Deletes an entry, sidecar first, and lets go of it. */
  async remove(name: string): Promise<void> {
    try {
      await fs.rm(path.join(this.dir, name + SIDECAR), { force: true });
      await fs.rm(path.join(this.dir, name + VIDEO), { force: true });
    } finally {
      this.release(name);
    }
  }

  /** The entries' names, oldest name first; a missing folder has none. */
  async names(): Promise<string[]> {
    const files = await fs.readdir(this.dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [] as string[];
      throw error;
    });
    return files.filter((f) => f.endsWith(SIDECAR) && !f.startsWith('.')).map((f) => f.slice(0, -SIDECAR.length)).sort();
  }

  /** An entry's sidecar; undefined when it is gone (another worker took it) or unreadable (then `broken`). */
  async read(name: string): Promise<{ entry?: SpoolEntry; broken?: string }> {
    const text = await fs.readFile(path.join(this.dir, name + SIDECAR), 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (text === undefined) return {};
    const entry = parseEntry(text);
    return entry ? { entry } : { broken: 'its sidecar is not a spool entry this version understands' };
  }

  /** The entry's video, or why it cannot be used (missing, another size, another checksum). */
  async video(name: string, entry: SpoolEntry): Promise<{ bytes?: Buffer; broken?: string }> {
    const bytes = await fs.readFile(path.join(this.dir, name + VIDEO)).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (!bytes) return { broken: 'its video file is missing' };
    if (bytes.byteLength !== entry.sizeBytes) return { broken: `its video file has ${bytes.byteLength} bytes, not ${entry.sizeBytes}` };
    if (createHash('sha256').update(bytes).digest('hex') !== entry.sha256) return { broken: 'its video file does not match its checksum' };
    return { bytes };
  }

  /**
   * Deletes files no entry owns that are older than `maxAgeMs`: temporary files and videos left
   * by a worker that died while writing or deleting an entry (so workers run it at start and with
   * retention, not on every recovery pass).
   */
  async removeStrays(maxAgeMs: number): Promise<number> {
    const files = await fs.readdir(this.dir).catch(() => [] as string[]);
    const now = files.length > 0 ? await this.folderNow() : 0;
    const sidecars = new Set(files.filter((f) => f.endsWith(SIDECAR) && !f.startsWith('.')));
    let removed = 0;
    for (const file of files) {
      if (sidecars.has(file) || (file.endsWith(VIDEO) && sidecars.has(file.slice(0, -VIDEO.length) + SIDECAR))) continue;
      if (!file.startsWith('.') && !file.endsWith(VIDEO)) continue; // not ours
      const stat = await fs.stat(path.join(this.dir, file)).catch(() => undefined);
      if (!stat?.isFile() || now - stat.mtimeMs < maxAgeMs) continue;
      await fs.rm(path.join(this.dir, file), { force: true });
      removed++;
    }
    return removed;
  }

  /**
   * How long ago the entry's video was written (ms), on one clock: its modification time against a
   * file written now in the same folder, both stamped by the folder's file system — not the
   * sidecar's createdAt (the writer's clock, perhaps another machine's sharing the folder) against
   * this machine's. Undefined: no video file (the entry's check says so).
   */
  async ageMs(name: string): Promise<number | undefined> {
    const video = await fs.stat(path.join(this.dir, name + VIDEO)).catch(() => undefined);
    if (!video) return undefined;
    return Math.max(0, (await this.folderNow()) - video.mtimeMs);
  }

  /** Now as the folder's file system stamps files (a probe file's modification time); this machine's clock if it cannot write one. */
  private async folderNow(): Promise<number> {
    const probe = path.join(this.dir, `.clock-${randomBytes(4).toString('hex')}.tmp`);
    try {
      await fs.writeFile(probe, '');
      return (await fs.stat(probe)).mtimeMs;
    } catch {
      return Date.now();
    } finally {
      await fs.rm(probe, { force: true }).catch(() => {});
    }
  }

  private async writeAtomically(file: string, data: Uint8Array | string): Promise<void> {
    const temp = path.join(this.dir, `.${file}.${randomBytes(4).toString('hex')}.tmp`);
    const handle = await fs.open(temp, 'w');
    try {
      try {
        await handle.writeFile(data);
        // Flushed before the rename: after a power cut the name never points at a half-written file.
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(temp, path.join(this.dir, file));
    } catch (error) {
      // Whatever failed (a full disk fails the write or the flush), the partial file goes: left
      // behind, it would keep a full spool full and fail every later write.
      await fs.rm(temp, { force: true }).catch(() => {});
      throw error;
    }
  }
}

type RecoveryOutcome = 'completed' | 'dropped' | 'waiting' | 'busy';

export interface SpoolRecovery {
  farm: FarmContext;
  spool: Spool;
  workerId: string;
  capabilities: WorkerCapabilities;
  log(line: string): void;
  /**
   * Stores the video as the job's result under `lease`, settled with entry.gpuSeconds: completeJob's
   * answer, or true when that answer was lost but the database shows the job stored by it (completionOf).
   */
  complete(lease: Lease, entry: SpoolEntry, video: Buffer): Promise<boolean>;
  /** Names whose "kept" line was logged (one line per entry and reason, not one per heartbeat). */
  reported: Map<string, string>;
}

/**
 * One pass over the spool: every entry not in use in this process is completed, deleted or kept
 * (the table at the top). Stops at the first database failure (the next heartbeat tries again).
 */
export async function recoverSpool(r: SpoolRecovery): Promise<Record<RecoveryOutcome, number>> {
  const counts: Record<RecoveryOutcome, number> = { completed: 0, dropped: 0, waiting: 0, busy: 0 };
  const maxAgeMs = queueHorizonSeconds(r.farm.config) * 1000;
  const names = await r.spool.names();
  for (const name of names) {
    if (!r.spool.hold(name)) {
      counts.busy++;
      continue;
    }
    try {
      counts[await recoverHeld(r, name, { maxAgeMs })]++;
    } catch (error) {
      r.spool.release(name);
      const why = dbFailureLine(error); // unreachable database: logged once by the handle
      if (why) r.log(`spool entry ${name}: recovery failed (${why}); trying again at the next heartbeat`);
      break;
    }
  }
  // Entries gone before this pass (another process stored or deleted them) are forgotten.
  const present = new Set(names);
  for (const name of r.reported.keys()) if (!present.has(name)) r.reported.delete(name);
  return counts;
}

export interface RecoverHeldOptions {
  /** Entries older than this are deleted unused; default queueHorizonSeconds. */
  maxAgeMs?: number;
  /**
   * The entry's video as the worker that spooled it still holds it in memory: stored as it is,
   * the file (kept for a restart) is not read back. Without it the file is read and checked
   * against the sidecar's size and checksum.
   */
  video?: Buffer;
}

/**
 * Recovers one entry that this process already holds (Spool.hold): completes, deletes or keeps it
 * and lets go of it, except on a database failure, which is thrown with the entry still held.
 */
export async function recoverHeld(r: SpoolRecovery, name: string, options: RecoverHeldOptions = {}): Promise<Exclude<RecoveryOutcome, 'busy'>> {
  const maxAgeMs = options.maxAgeMs ?? queueHorizonSeconds(r.farm.config) * 1000;
  const drop = async (jobId: number | string, why: string) => {
    await r.spool.remove(name);
    r.reported.delete(name);
    r.log(`job ${jobId}: spooled render ${name} deleted: ${why}`);
    return 'dropped' as const;
  };
  const keep = (jobId: number, why: string) => {
    r.spool.release(name);
    if (r.reported.get(name) !== why) r.log(`job ${jobId}: spooled render ${name} kept: ${why}; checking again at every heartbeat`);
    r.reported.set(name, why);
    return 'waiting' as const;
  };

  const { entry, broken } = await r.spool.read(name);
  if (broken) return drop(/^job-(\d+)-/.exec(name)?.[1] ?? '?', broken);
  if (!entry) {
    r.spool.release(name); // deleted meanwhile by a worker of another process sharing the folder
    return 'dropped';
  }
  const ageMs = await r.spool.ageMs(name);
  // Not a guess about the job (not asked): a job failed under this entry's lease would still have taken it.
  if (ageMs !== undefined && ageMs > maxAgeMs) return drop(entry.jobId, `it is older than ${Math.round(maxAgeMs / 1000)} s (BLENDFARM_QUEUE_TIMEOUT_SECONDS, a day when that is 0, at least the lease plus BLENDFARM_LAST_ATTEMPT_GRACE_SECONDS), the longest a spooled render is kept`);
  const state = await leaseStateOf(r.farm, entry.jobId);
  if (!state) return drop(entry.jobId, 'the job no longer exists');
  const { job } = state;
  // Failed by a reaper when the spooled lease ran out (its token kept, not queued again since): the
  // render exists, so it is completed under that lease after all (queue.ts completeLocked).
  const failedUnderLease = job.status === 'failed' && state.leaseToken === entry.leaseToken;
  if (job.status === 'done' || (job.status === 'failed' && !failedUnderLease) || job.status === 'cancelled') return drop(job.id, `the job is ${job.status} already`);
  if (!renderedFor(job, entry.jobDigest)) return drop(job.id, 'the job is not the one rendered (its parameters differ); it is never stored with this video');
  // Same id, owner and parameters, but queued again by its owner since (a retry after a cancel or
  // a failure): the retry asked for a fresh render, and the cancelled run was charged already.
  if (entry.queuedEventId !== undefined && state.queuedEventId !== entry.queuedEventId) {
    return drop(job.id, 'the job was queued again by a retry since it was rendered (after a cancel or a failure); it is rendered afresh');
  }
  const held = (job.status === 'running' && state.leaseToken === entry.leaseToken) || failedUnderLease;
  if (job.status === 'running' && !held) {
    return keep(job.id, state.leaseLive ? `worker ${job.workerId ?? '?'} holds the job now` : `the lease of worker ${job.workerId ?? '?'} ran out and the job is not back in the queue yet`);
  }
  let bytes = options.video;
  if (!bytes) {
    const read = await r.spool.video(name, entry);
    if (!read.bytes) return drop(job.id, read.broken ?? 'its video file is unreadable');
    bytes = read.bytes;
  }

  let lease: Lease = { id: job.id, leaseToken: entry.leaseToken, userId: job.userId, attempt: entry.attempt };
  let current = entry;
  if (!held) {
    const claimed = await claimSpecificJob(r.farm, r.workerId, job.id, r.capabilities, entry.queuedEventId);
    if (!claimed) return keep(job.id, 'the job is queued but could not be claimed for this worker (another worker took it first, or this worker cannot run its model or size)');
    lease = claimed;
    current = { ...entry, attempt: claimed.attempt, leaseToken: claimed.leaseToken, workerId: r.workerId };
    // The new lease goes to disk first: if storing fails now, the next pass completes under it.
    await r.spool.rewrite(name, current).catch((error: unknown) => r.log(`job ${job.id}: could not update spooled render ${name} (${loggableError(error)})`));
  }
  const stored = await r.complete(lease, current, bytes);
  if (!stored) return drop(job.id, 'the job was cancelled or taken back while it was being stored');
  await r.spool.remove(name);
  r.reported.delete(name);
  r.log(
    `job ${job.id}: completed from the spool (${held ? `attempt ${entry.attempt}` : `claimed again as attempt ${lease.attempt}`}, rendered by worker ${entry.workerId} at ${entry.createdAt}, ` +
      `${entry.gpuSeconds.toFixed(1)} GPU-seconds) instead of being rendered again` +
      (failedUnderLease ? '; it had been failed and refunded when its lease ran out, and is done now, charged again' : ''),
  );
  return 'completed';
}
