// A completion whose COMMIT went through but whose answer never reached the worker (the connection
// dropped, or the client's query timeout fired while the server committed), with the videos kept as
// files (BLENDFARM_ARTIFACT_DIR), on both back ends: the retry that finds the lease gone recognises
// the earlier try's commit (the job is done under this lease with this file) and keeps the file the
// artifact row points to; a lease really lost (cancelled, or completed by another worker with its own
// file) still deletes this worker's file; the spool's one-try completion is treated the same way; a
// completion the database cannot tell about yet keeps its file until it can.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { type FarmDb, queryRows } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { FakeRenderer } from '../../farm/fake-renderer.ts';
import { cancelJob, getArtifact, getJob, submitJob } from '../../farm/jobs.ts';
import { auditBalance } from '../../farm/policy/budget.ts';
import { claimJob, completeJob, completionOf, CompletionUnknownError, reapExpiredLeases } from '../../farm/queue.ts';
import { jobDigest, Spool } from '../../farm/spool.ts';
import { waitForJob } from '../../farm/wait.ts';
import { FarmWorker } from '../../farm/worker.ts';
import { registerWorker } from '../../farm/worker-registry.ts';
import { BACKENDS, CHEAP_BLEND, countRows, expireLease, GENEROUS_BUDGET, testConfig } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';
import { useTempDir } from '../helpers/temp-dir.ts';

async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await condition())) await sleep(10);
}

const connectionDrop = () => new Error('Connection terminated unexpectedly');

/**
 * The same database behind a handle whose next completing transaction loses its answer:
 * 'committed' — it commits, then the caller gets a dropped connection; 'rolled back' — its work is
 * done but it never commits (the connection died before the COMMIT), and `meanwhile` runs before the
 * caller gets the dropped connection. `failQueries` more plain queries after that fail as an
 * unreachable database does (the check that follows cannot get an answer).
 */
function losingAnswers(real: FarmDb, plan: { mode: 'committed' | 'rolled back'; meanwhile?: () => Promise<void>; failQueries?: number }) {
  const state = { armed: true, lost: 0, failQueries: 0 };
  const rollback = new Error('test: roll back');
  const db = new Proxy(real.db, {
    get(target, prop) {
      if (prop === 'transaction') {
        return async (fn: (tx: unknown) => Promise<unknown>, ...rest: unknown[]) => {
          if (!state.armed) return (target.transaction as (...a: unknown[]) => Promise<unknown>)(fn, ...rest);
          let result: unknown;
          try {
            result = await (target.transaction as (...a: unknown[]) => Promise<unknown>)(
              async (tx: unknown) => {
                const r = await fn(tx);
                if (r === true && plan.mode === 'rolled back') throw rollback;
                return r;
              },
              ...rest,
            );
          } catch (error) {
            if (error !== rollback) throw error;
            result = true;
          }
          if (result !== true) return result;
          state.armed = false;
          state.lost++;
          state.failQueries = plan.failQueries ?? 0;
          await plan.meanwhile?.();
          throw connectionDrop();
        };
      }
      if (prop === 'execute') {
        return (...args: unknown[]) => {
          if (state.failQueries > 0) {
            state.failQueries--;
            return Promise.reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432 (test)'), { code: 'ECONNREFUSED' }));
          }
          return (target.execute as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      const value = Reflect.get(target, prop) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  const handle: FarmDb = { kind: real.kind, db, location: real.location, listen: (channel, handler) => real.listen(channel, handler), close: async () => {} };
  return { db: handle, state };
}

const files = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => !f.startsWith('.')).sort() : []);
const CAPS = { models: ['*'], maxPixels: 1 << 20, executionProvider: 'cpu' };

describe.each(BACKENDS)('a completion whose answer was lost, on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;
  let tmp: string;
  useTestFarm(backend, { budget: GENEROUS_BUDGET }, async (t) => {
    ({ db, farm } = t);
    // Known to take any model, so jobs can be submitted for the workers these tests play by hand.
    await registerWorker(farm, { id: 'w-any', host: 'test', pid: 1, concurrency: 1, capabilities: CAPS });
  });
  useTempDir('blendfarm-lost-answer-', (dir) => (tmp = dir));

  function setUp(name: string, plan: Parameters<typeof losingAnswers>[1], options: { spool?: boolean } = {}) {
    const artifactDir = path.join(tmp, name, 'artifacts');
    const spoolDir = options.spool ? path.join(tmp, name, 'spool') : undefined;
    const config = testConfig({ budget: GENEROUS_BUDGET, artifactDir, spoolDir });
    const lossy = losingAnswers(db, plan);
    const lines: string[] = [];
    const worker = new FarmWorker({ farm: { db: lossy.db, config }, renderer: new FakeRenderer({ models: [name], steps: 2, stepMs: 5 }), id: `w-${name}`, log: (l) => lines.push(l) });
    // What the bot reads with: the same folder.
    const reader: FarmContext = { db, config };
    return { artifactDir, spoolDir, config, lossy, lines, worker, reader };
  }

  /**
   * Starts `worker`, submits a blend job of model `name` (its id handed to `submitted`, for a plan's
   * `meanwhile`), waits until the worker has finished with it, and stops the worker.
   */
  async function renderOne(name: string, worker: FarmWorker, submitted?: (jobId: number) => void) {
    await worker.start();
    const job = await submitJob(farm, { kind: 'blend', userId: `u-${name}`, params: { ...CHEAP_BLEND, model: name } });
    submitted?.(job.id);
    const done = await waitForJob(farm, job.id, { timeoutMs: 20_000 });
    await until(() => worker.stats.completed + worker.stats.discarded > 0);
    await worker.stop();
    return { job, done };
  }

  it('the retry that finds the lease gone recognises the committed try: the job is done and its video file stays', async () => {
    const { artifactDir, lossy, lines, worker, reader } = setUp('committed', { mode: 'committed' });
    const { job, done } = await renderOne('committed', worker);

    expect(lossy.state.lost).toBe(1);
    expect(done.status).toBe('done');
    const artifact = await getArtifact(reader, job.id);
    expect(artifact?.bytes.byteLength).toBeGreaterThan(0);
    expect(files(artifactDir)).toHaveLength(1);
    expect(worker.stats).toMatchObject({ completed: 1, discarded: 0 });
    expect(lines.some((l) => l.startsWith(`job ${job.id}: the database stored the result although its answer was lost (`))).toBe(true);
    expect(lines.some((l) => l.includes('result discarded'))).toBe(false);
    const audit = await auditBalance(db.db, 'u-committed');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
  });

  it('with a spool too: the entry is deleted and the file stays', async () => {
    const { artifactDir, spoolDir, lossy, worker, reader } = setUp('committed-spool', { mode: 'committed' }, { spool: true });
    const { job } = await renderOne('committed-spool', worker);

    expect(lossy.state.lost).toBe(1);
    expect((await getArtifact(reader, job.id))?.bytes.byteLength).toBeGreaterThan(0);
    expect(files(artifactDir)).toHaveLength(1);
    expect(files(spoolDir!)).toEqual([]);
    expect(worker.stats).toMatchObject({ completed: 1, discarded: 0, recovered: 0 });
  });

  it('a lease really lost (another worker completed the job with its own file) still deletes this worker\'s file', async () => {
    const theirs = Buffer.from('the other worker rendered it');
    let jobId = 0;
    const { artifactDir, lossy, lines, worker, reader } = setUp('taken', {
      mode: 'rolled back',
      meanwhile: async () => {
        // While the answer is missing, the job is taken back and another worker completes it.
        await expireLease(db, jobId);
        await reapExpiredLeases(farm);
        const other = await claimJob(farm, 'w-other', CAPS);
        fs.writeFileSync(path.join(artifactDir, 'theirs.mp4'), theirs);
        expect(await completeJob(farm, other!, { artifact: { format: 'mp4', mime: 'video/mp4', sizeBytes: theirs.byteLength, meta: {}, path: 'theirs.mp4' }, gpuSeconds: 1 })).toBe(true);
      },
    });
    const { job } = await renderOne('taken', worker, (id) => (jobId = id));

    expect(lossy.state.lost).toBe(1);
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'done', workerId: 'w-other' });
    expect((await getArtifact(reader, job.id))!.bytes.toString()).toBe(theirs.toString());
    expect(files(artifactDir)).toEqual(['theirs.mp4']);
    expect(worker.stats).toMatchObject({ completed: 0, discarded: 1 });
    expect(lines.some((l) => l.includes('although its answer was lost'))).toBe(false);
  });

  it('a job cancelled while the answer was missing: the file is deleted', async () => {
    let jobId = 0;
    const { artifactDir, lossy, worker } = setUp('cancelled', { mode: 'rolled back', meanwhile: async () => void (await cancelJob(farm, jobId)) });
    const { job } = await renderOne('cancelled', worker, (id) => (jobId = id));

    expect(lossy.state.lost).toBe(1);
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'cancelled' });
    expect(files(artifactDir)).toEqual([]);
    expect(worker.stats).toMatchObject({ completed: 0, discarded: 1 });
  });

  /** A spool entry for `model`'s job, claimed by a worker that died after spooling it (its lease still live). */
  async function spooled(model: string, spoolDir: string) {
    const job = await submitJob(farm, { kind: 'blend', userId: `u-${model}`, params: { ...CHEAP_BLEND, model } });
    const claimed = await claimJob({ db, config: testConfig({ budget: GENEROUS_BUDGET, leaseSeconds: 300 }) }, 'w-dead', CAPS);
    expect(claimed?.id).toBe(job.id);
    const video = Buffer.from(`the spooled render of ${model}`);
    const spool = new Spool(spoolDir);
    const name = await spool.put({ jobId: job.id, attempt: claimed!.attempt, leaseToken: claimed!.leaseToken, workerId: 'w-dead', format: 'mp4', mime: 'video/mp4', meta: {}, gpuSeconds: 0.5, jobDigest: jobDigest(claimed!) }, video);
    spool.release(name);
    return { job, video };
  }

  it('the spool\'s completion whose answer was lost: recognised as stored, the file stays', async () => {
    const { artifactDir, spoolDir, lossy, lines, worker, reader } = setUp('spool-recovery', { mode: 'committed' }, { spool: true });
    const { job, video } = await spooled('spool-recovery', spoolDir!);
    await worker.start(); // recovers the entry before claiming anything
    await worker.stop();

    expect(lossy.state.lost).toBe(1);
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'done', spentGpuSeconds: 0.5 });
    expect((await getArtifact(reader, job.id))!.bytes.toString()).toBe(video.toString());
    expect(files(artifactDir)).toHaveLength(1);
    expect(files(spoolDir!)).toEqual([]);
    expect(worker.stats).toMatchObject({ recovered: 1, claimed: 0 });
    expect(lines.some((l) => l.startsWith(`job ${job.id}: completed from the spool (attempt 1, rendered by worker w-dead`))).toBe(true);
  });

  it('a completion the database cannot tell about at once keeps its file until it can: stored → kept', async () => {
    const { artifactDir, spoolDir, lossy, lines, worker, reader } = setUp('unknown-stored', { mode: 'committed', failQueries: 1 }, { spool: true });
    const { job, video } = await spooled('unknown-stored', spoolDir!);
    await worker.start();
    await until(() => lines.some((l) => l.startsWith(`job ${job.id}: its result had been stored after all`)));
    await until(() => files(spoolDir!).length === 0);
    await worker.stop();

    expect(lossy.state.lost).toBe(1);
    expect(lines.some((l) => l.startsWith(`job ${job.id}: no answer to storing the result (`) && l.includes('is kept until it can'))).toBe(true);
    expect((await getArtifact(reader, job.id))!.bytes.toString()).toBe(video.toString());
    expect(files(artifactDir)).toHaveLength(1);
  });

  it('… not stored → the job is completed again from the spool and the unused file deleted', async () => {
    const { artifactDir, spoolDir, lossy, lines, worker, reader } = setUp('unknown-lost', { mode: 'rolled back', failQueries: 1 }, { spool: true });
    const { job, video } = await spooled('unknown-lost', spoolDir!);
    await worker.start();
    await waitForJob(farm, job.id, { timeoutMs: 20_000 });
    const [stored] = await queryRows<{ path: string }>(db.db, sql`select path from artifacts where job_id = ${job.id}`);
    await until(() => files(artifactDir).length === 1);
    await worker.stop();

    expect(lossy.state.lost).toBe(1);
    expect(lines.some((l) => l.includes('is kept until it can'))).toBe(true);
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'done', attempts: 1 });
    expect((await getArtifact(reader, job.id))!.bytes.toString()).toBe(video.toString());
    expect(files(artifactDir)).toEqual([stored.path]);
    expect(files(spoolDir!)).toEqual([]);
  });

  /**
   * A spool entry for `model`'s job on its last attempt, whose lease a reaper took back after the
   * grace: the job is failed and refunded, and keeps the spooled lease's token (a completion under it
   * still makes it done).
   */
  async function failedUnderSpooledLease(model: string, spoolDir: string) {
    const lastAttempt: FarmContext = { db, config: testConfig({ budget: GENEROUS_BUDGET, maxAttempts: 1, lastAttemptGraceSeconds: 0 }) };
    const job = await submitJob(lastAttempt, { kind: 'blend', userId: `u-${model}`, params: { ...CHEAP_BLEND, model } });
    const claimed = (await claimJob(lastAttempt, 'w-dead', CAPS))!;
    expect(claimed.id).toBe(job.id);
    const video = Buffer.from(`the spooled render of ${model}`);
    const spool = new Spool(spoolDir);
    const name = await spool.put({ jobId: job.id, attempt: claimed.attempt, leaseToken: claimed.leaseToken, workerId: 'w-dead', format: 'mp4', mime: 'video/mp4', meta: {}, gpuSeconds: 0.5, jobDigest: jobDigest(claimed), queuedEventId: claimed.queuedEventId }, video);
    spool.release(name);
    await expireLease(db, job.id);
    expect(await reapExpiredLeases(lastAttempt)).toBe(1);
    const [row] = await queryRows<{ status: string; held: boolean }>(db.db, sql`select status, lease_token::text = ${claimed.leaseToken} as held from jobs where id = ${job.id}`);
    expect(row).toEqual({ status: 'failed', held: true });
    return { job, video, name, claimed };
  }

  it('a failed job (token kept) whose spooled completion lost its answer and did not commit: the file goes at once, the entry completes the job next', async () => {
    const { artifactDir, spoolDir, lossy, lines, worker, reader } = setUp('failed-lost', { mode: 'rolled back' }, { spool: true });
    const { job, video } = await failedUnderSpooledLease('failed-lost', spoolDir!);
    await worker.start();
    // The first try's file is not referenced and cannot be: deleted while the worker runs.
    expect(lossy.state.lost).toBe(1);
    expect(files(artifactDir)).toEqual([]);
    await waitForJob(farm, job.id, { timeoutMs: 20_000 });
    await until(() => files(spoolDir!).length === 0);
    await worker.stop();

    expect(await getJob(farm, job.id)).toMatchObject({ status: 'done', attempts: 1 });
    const [stored] = await queryRows<{ path: string }>(db.db, sql`select path from artifacts where job_id = ${job.id}`);
    expect(files(artifactDir)).toEqual([stored.path]);
    expect((await getArtifact(reader, job.id))!.bytes.toString()).toBe(video.toString());
    const [done] = await queryRows<{ data: { afterFailure?: boolean } }>(db.db, sql`select data from job_events where job_id = ${job.id} and type = 'done'`);
    expect(done.data.afterFailure).toBe(true);
    expect(lines.some((l) => l.includes('is kept until it can') || l.includes('is kept (delete it'))).toBe(false);
  });

  it('… and when that entry ages out before a pass can use it: entry and file are both deleted while the worker runs, the job stays failed and refunded', async () => {
    let spoolDir = '';
    const { artifactDir, lossy, lines, worker } = setUp(
      'failed-aged',
      {
        mode: 'rolled back',
        // While the answer is missing, the entry passes the spool's horizon.
        meanwhile: async () => {
          // Its video file written two days ago, as the folder's file system tells (Spool.ageMs).
          const spool = new Spool(spoolDir);
          for (const name of await spool.names()) {
            const videoFile = path.join(spoolDir, `${name}.video`);
            const twoDaysAgo = (fs.statSync(videoFile).mtimeMs - 2 * 86_400_000) / 1000;
            fs.utimesSync(videoFile, twoDaysAgo, twoDaysAgo);
          }
        },
      },
      { spool: true },
    );
    spoolDir = path.join(tmp, 'failed-aged', 'spool');
    const { job } = await failedUnderSpooledLease('failed-aged', spoolDir);
    await worker.start();
    await until(() => files(spoolDir).length === 0);
    // Nothing of this completion is left on disk while the worker still runs.
    expect(files(artifactDir)).toEqual([]);
    await worker.stop();

    expect(lossy.state.lost).toBe(1);
    expect(files(artifactDir)).toEqual([]);
    expect(lines.some((l) => l.startsWith(`job ${job.id}: spooled render `) && l.includes('deleted: it is older than'))).toBe(true);
    expect(lines.some((l) => l.includes('is kept until it can') || l.includes('is kept (delete it'))).toBe(false);
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'failed' });
    expect(await countRows(db, 'artifacts', sql`job_id = ${job.id}`)).toBe(0);
    const audit = await auditBalance(db.db, 'u-failed-aged');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
  });

  it.skipIf(backend === 'pglite')('completionOf: pending while a transaction holds the job (its commit may still land), then stored or not-stored for good', async () => {
    // PGlite has one connection: no transaction can be open while completionOf asks, so it never answers pending there.
    const job = await submitJob(farm, { kind: 'blend', userId: 'u-inflight', params: { ...CHEAP_BLEND, model: 'inflight' } });
    const lease = (await claimJob(farm, 'w-inflight', CAPS))!;
    expect(lease.id).toBe(job.id);
    // A completion whose transaction did its work and waits before its COMMIT (its answer lost meanwhile).
    let commit!: () => void;
    let worked!: () => void;
    const gate = new Promise<void>((resolve) => (commit = resolve));
    const working = new Promise<void>((resolve) => (worked = resolve));
    const slow = new Proxy(db.db, {
      get(target, prop) {
        if (prop !== 'transaction') return Reflect.get(target, prop) as unknown;
        return (fn: (tx: unknown) => Promise<unknown>) =>
          target.transaction(async (tx) => {
            const r = await fn(tx);
            worked();
            await gate;
            return r;
          });
      },
    });
    const artifact = { format: 'mp4', mime: 'video/mp4', sizeBytes: 1, meta: {}, path: 'inflight.mp4' };
    const completing = completeJob({ db: { ...db, db: slow }, config: farm.config }, lease, { artifact, gpuSeconds: 1 });
    await working;
    expect(await completionOf(farm, lease, 'inflight.mp4')).toBe('pending');
    commit();
    expect(await completing).toBe(true);
    expect(await completionOf(farm, lease, 'inflight.mp4')).toBe('stored');
    expect(await completionOf(farm, lease, 'other.mp4')).toBe('not-stored');
  });

  it('completionOf: not-stored while the job runs under the lease with no transaction open, stored under it with its file, not-stored otherwise; completeJob marks an unknown commit', async () => {
    const job = await submitJob(farm, { kind: 'blend', userId: 'u-of', params: { ...CHEAP_BLEND, model: 'of' } });
    const lease = (await claimJob(farm, 'w-of', CAPS))!;
    expect(lease.id).toBe(job.id);
    expect(await completionOf(farm, lease, 'mine.mp4')).toBe('not-stored');
    const lossy = losingAnswers(db, { mode: 'committed' });
    const artifact = { format: 'mp4', mime: 'video/mp4', sizeBytes: 1, meta: {}, path: 'mine.mp4' };
    const error = await completeJob({ db: lossy.db, config: farm.config }, lease, { artifact, gpuSeconds: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CompletionUnknownError);
    expect(await completionOf(farm, lease, 'mine.mp4')).toBe('stored');
    expect(await completionOf(farm, lease)).toBe('stored');
    expect(await completionOf(farm, lease, 'another.mp4')).toBe('not-stored');
    expect(await completionOf(farm, { ...lease, leaseToken: '00000000-0000-4000-8000-000000000000' })).toBe('not-stored');
    expect(await completionOf(farm, { ...lease, id: 987_654_321 })).toBe('not-stored');
  });
});
