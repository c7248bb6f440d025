// The workers' disk spool (farm/spool.ts), on both back ends: a render finished while the database
// is unreachable past the lease is kept on disk and completed from there — by the same worker once
// the database answers, or by a new worker after a restart — without being rendered again, settled
// with the GPU time the render took; an entry whose job was cancelled, changed or retried by its owner
// is deleted unused, and a job another worker holds is left alone until it ends.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FarmDb, openDatabase, queryRows } from '../../db/client.ts';
import { type FarmContext, farmConfigFrom } from '../../farm/config.ts';
import { FakeRenderer } from '../../farm/fake-renderer.ts';
import { cancelJob, getArtifact, getJob, markDelivered, retryJob, submitJob } from '../../farm/jobs.ts';
import { auditBalance, grantBudget } from '../../farm/policy/budget.ts';
import { claimJob, claimSpecificJob, completeJob, reapExpiredLeases, releaseJob } from '../../farm/queue.ts';
import type { Renderer, RenderResult } from '../../farm/renderer.ts';
import type { Job } from '../../farm/types.ts';
import { waitForJob } from '../../farm/wait.ts';
import { jobDigest, Spool } from '../../farm/spool.ts';
import { FarmWorker } from '../../farm/worker.ts';
import { loadConfig } from '../../config/index.ts';
import { BACKENDS, CHEAP_BLEND, createTestDatabase, expireLease, GENEROUS_BUDGET, type TestDatabase, testConfig } from '../helpers/db.ts';
import { type FlakyProxy, proxyInFrontOf } from '../helpers/flaky-proxy.ts';
import { useTestFarm } from '../helpers/farm.ts';
import { useTempDir } from '../helpers/temp-dir.ts';

/** Resolves once `condition` holds (checked every 10 ms); the test timeout bounds the wait. */
async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await condition())) await sleep(10);
}

/**
 * A handle on the same database that can be unplugged: while `down`, every use of it fails as an
 * unreachable server does (on both back ends; PGlite has no network to cut).
 */
function unpluggable(real: FarmDb): { db: FarmDb; state: { down: boolean } } {
  const state = { down: false };
  const db: FarmDb = {
    kind: real.kind,
    location: real.location,
    get db() {
      if (state.down) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432 (test: database unplugged)'), { code: 'ECONNREFUSED' });
      return real.db;
    },
    listen: (channel, handler) => real.listen(channel, handler),
    close: async () => {},
  };
  return { db, state };
}

/** A renderer that counts its renders and returns `video` with `gpuSeconds`; `after` runs as each render finishes. */
function countingRenderer(model: string, video: Buffer, gpuSeconds: number, after: () => void = () => {}): Renderer & { renders: number } {
  const inner = new FakeRenderer({ models: [model], steps: 2, stepMs: 5 });
  const renderer = {
    renders: 0,
    capabilities: () => inner.capabilities(),
    async render(job, ctx): Promise<RenderResult> {
      const result = await inner.render(job, ctx);
      renderer.renders++;
      after();
      return { ...result, video, gpuSeconds };
    },
  } satisfies Renderer & { renders: number };
  return renderer;
}

const spoolFiles = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []);

describe('BLENDFARM_SPOOL_DIR', () => {
  it('defaults to ./data/spool for the apps, off turns it off, tests and code get none unless they ask', () => {
    expect(farmConfigFrom(loadConfig({})).spoolDir).toBe('./data/spool');
    expect(farmConfigFrom(loadConfig({ BLENDFARM_SPOOL_DIR: '/var/spool/blendfarm' })).spoolDir).toBe('/var/spool/blendfarm');
    expect(farmConfigFrom(loadConfig({ BLENDFARM_SPOOL_DIR: 'off' })).spoolDir).toBeUndefined();
    expect(farmConfigFrom({}).spoolDir).toBeUndefined();
  });
});

describe('BLENDFARM_LAST_ATTEMPT_GRACE_SECONDS', () => {
  it('defaults to 120 s, 0 turns the grace off, a negative value is refused', () => {
    expect(farmConfigFrom(loadConfig({})).lastAttemptGraceSeconds).toBe(120);
    expect(farmConfigFrom({}).lastAttemptGraceSeconds).toBe(120);
    expect(farmConfigFrom(loadConfig({ BLENDFARM_LAST_ATTEMPT_GRACE_SECONDS: '0' })).lastAttemptGraceSeconds).toBe(0);
    expect(farmConfigFrom(loadConfig({ BLENDFARM_LAST_ATTEMPT_GRACE_SECONDS: '600' })).lastAttemptGraceSeconds).toBe(600);
    expect(() => loadConfig({ BLENDFARM_LAST_ATTEMPT_GRACE_SECONDS: '-1' })).toThrow(/BLENDFARM_LAST_ATTEMPT_GRACE_SECONDS/);
  });
});

describe.each(BACKENDS)('the render spool on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;
  let tmp: string;
  useTestFarm(backend, { budget: GENEROUS_BUDGET }, (t) => ({ db, farm } = t));
  useTempDir('blendfarm-spool-', (dir) => (tmp = dir));

  /** 4 KiB no renderer would make by chance: the video a worker spooled. */
  const spooledVideo = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256));
  const SPOOLED_GPU_SECONDS = 0.75;

  /**
   * Worker "w-a" renders a job of `model`; the database goes away as the render finishes and stays
   * away past the lease; the worker is then stopped, as a process dying during the outage would be.
   * Returns the job and the spool folder with the entry left in it.
   */
  async function spoolDuringOutage(model: string, { maxAttempts }: { maxAttempts?: number } = {}) {
    const spoolDir = path.join(tmp, model);
    const unplug = unpluggable(db);
    const renderer = countingRenderer(model, spooledVideo, SPOOLED_GPU_SECONDS, () => (unplug.state.down = true));
    const lines: string[] = [];
    const worker = new FarmWorker({ farm: { db: unplug.db, config: testConfig({ budget: GENEROUS_BUDGET, spoolDir }) }, renderer, id: `w-a-${model}`, log: (l) => lines.push(l) });
    await worker.start();
    const submitter = maxAttempts === undefined ? farm : { db, config: { ...farm.config, maxAttempts } };
    const job = await submitJob(submitter, { kind: 'blend', userId: `user-${model}`, params: { ...CHEAP_BLEND, model } });
    await until(() => lines.some((l) => l.startsWith(`job ${job.id}: finished, but the database did not take the result before the lease ran out`)));
    await worker.stop('release');
    expect(renderer.renders).toBe(1);
    expect(lines.find((l) => l.startsWith(`job ${job.id}: storing the result failed`))).toContain('keeping it in the spool');
    expect(lines.find((l) => l.includes('lease ran out'))).toContain(`the video stays in the spool (${path.resolve(spoolDir)}${path.sep}job-${job.id}-attempt-1-`);
    expect(spoolFiles(spoolDir)).toHaveLength(2);
    const row = await getJob(farm, job.id);
    expect(row).toMatchObject({ status: 'running', attempts: 1 });
    return { job, spoolDir };
  }

  function restartedWorker(model: string, spoolDir: string) {
    const lines: string[] = [];
    const renderer = countingRenderer(model, Buffer.from('rendered again'), 5);
    const worker = new FarmWorker({ farm: { db, config: testConfig({ budget: GENEROUS_BUDGET, spoolDir }) }, renderer, id: `w-b-${model}`, log: (l) => lines.push(l) });
    return { worker, renderer, lines };
  }

  /** A restarted worker started and stopped again: the spool is recovered at start, before anything is claimed. */
  async function restartedAndStopped(model: string, spoolDir: string) {
    const restarted = restartedWorker(model, spoolDir);
    await restarted.worker.start();
    await restarted.worker.stop();
    return restarted;
  }

  async function expectSettledWithSpooledTime(job: Pick<Job, 'id' | 'userId'>) {
    const done = await getJob(farm, job.id);
    expect(done).toMatchObject({ status: 'done', spentGpuSeconds: SPOOLED_GPU_SECONDS, chargedGpuSeconds: SPOOLED_GPU_SECONDS });
    const artifact = await getArtifact(farm, job.id);
    expect(Buffer.compare(artifact!.bytes, spooledVideo)).toBe(0);
    const audit = await auditBalance(db.db, job.userId);
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
    // The settlement gave back what the spooled render did not use.
    const [{ returned }] = await queryRows<{ returned: string | number }>(db.db, sql`select coalesce(sum(amount_ms), 0) as returned from budget_ledger where job_id = ${job.id} and kind = 'settle'`);
    expect(Number(returned)).toBe(Math.round(done!.reservedGpuSeconds * 1000) - SPOOLED_GPU_SECONDS * 1000);
    return done!;
  }

  it('a restarted worker claims the job the reaper took back and completes it from the spool, without rendering it', async () => {
    const { job, spoolDir } = await spoolDuringOutage('restart');
    // The database is back; a reaper took the job back (its lease ran out long ago).
    expect(await reapExpiredLeases(farm)).toBeGreaterThanOrEqual(1);
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'queued', attempts: 1 });

    const { worker, renderer, lines } = await restartedAndStopped('restart', spoolDir);

    expect(renderer.renders).toBe(0);
    const done = await expectSettledWithSpooledTime(job);
    expect(done).toMatchObject({ attempts: 2, workerId: 'w-b-restart', error: null });
    expect(worker.stats).toMatchObject({ recovered: 1, claimed: 0, completed: 0 });
    expect(spoolFiles(spoolDir)).toEqual([]);
    expect(lines.some((l) => l.startsWith(`job ${job.id}: completed from the spool (claimed again as attempt 2, rendered by worker w-a-restart`))).toBe(true);
    const events = await queryRows<{ type: string; data: Record<string, unknown> }>(db.db, sql`select type, data from job_events where job_id = ${job.id} order by id`);
    expect(events.map((e) => e.type)).toEqual(['queued', 'claimed', 'retrying', 'claimed', 'done']);
    expect(events[3].data).toMatchObject({ workerId: 'w-b-restart', attempt: 2, fromSpool: true });
  });

  it('a restarted worker completes a job still running under the spooled lease with that lease', async () => {
    const { job, spoolDir } = await spoolDuringOutage('same-lease');
    const { renderer, lines } = await restartedAndStopped('same-lease', spoolDir);

    expect(renderer.renders).toBe(0);
    const done = await expectSettledWithSpooledTime(job);
    // The attempt that rendered it, not a new one.
    expect(done.attempts).toBe(1);
    expect(spoolFiles(spoolDir)).toEqual([]);
    expect(lines.some((l) => l.startsWith(`job ${job.id}: completed from the spool (attempt 1,`))).toBe(true);
  });

  it('the same worker completes it from the spool once the database answers again', async () => {
    const model = 'comeback';
    const spoolDir = path.join(tmp, model);
    const unplug = unpluggable(db);
    const renderer = countingRenderer(model, spooledVideo, SPOOLED_GPU_SECONDS, () => (unplug.state.down = true));
    const lines: string[] = [];
    const worker = new FarmWorker({ farm: { db: unplug.db, config: testConfig({ budget: GENEROUS_BUDGET, spoolDir }) }, renderer, id: 'w-comeback', log: (l) => lines.push(l) });
    await worker.start();
    const job = await submitJob(farm, { kind: 'blend', userId: 'user-comeback', params: { ...CHEAP_BLEND, model } });
    await until(() => lines.some((l) => l.startsWith(`job ${job.id}: finished, but the database did not take the result before the lease ran out`)));
    expect(spoolFiles(spoolDir)).toHaveLength(2);
    unplug.state.down = false;
    await waitForJob(farm, job.id, { timeoutMs: 20_000 });
    await until(() => spoolFiles(spoolDir).length === 0);
    await worker.stop();

    expect(renderer.renders).toBe(1);
    expect((await expectSettledWithSpooledTime(job)).attempts).toBe(1);
    expect(worker.stats).toMatchObject({ recovered: 1, discarded: 0 });
  });

  it('the worker that finds its job taken back completes it again from the video in memory, not the file', async () => {
    const model = 'taken-back';
    const spoolDir = path.join(tmp, model);
    const unplug = unpluggable(db);
    const renderer = countingRenderer(model, spooledVideo, SPOOLED_GPU_SECONDS, () => (unplug.state.down = true));
    const lines: string[] = [];
    // A long lease: the worker keeps retrying the completion while the test takes the job back.
    const config = testConfig({ budget: GENEROUS_BUDGET, spoolDir, leaseSeconds: 30 });
    const worker = new FarmWorker({ farm: { db: unplug.db, config }, renderer, id: 'w-taken-back', log: (l) => lines.push(l) });
    await worker.start();
    const job = await submitJob(farm, { kind: 'blend', userId: 'user-taken-back', params: { ...CHEAP_BLEND, model } });
    await until(() => lines.some((l) => l.startsWith(`job ${job.id}: storing the result failed`)));
    // The spooled file is damaged: only the bytes the worker holds in memory are still right.
    const videoFile = spoolFiles(spoolDir).find((f) => f.endsWith('.video'))!;
    fs.writeFileSync(path.join(spoolDir, videoFile), Buffer.alloc(spooledVideo.byteLength, 0));
    // Meanwhile the job is taken back (a back-off keeps the claim loop from rendering it again).
    await expireLease(db, job.id);
    expect(await reapExpiredLeases({ db, config: testConfig({ budget: GENEROUS_BUDGET, retryBackoffSeconds: 300 }) })).toBe(1);
    unplug.state.down = false;
    await waitForJob(farm, job.id, { timeoutMs: 20_000 });
    await until(() => spoolFiles(spoolDir).length === 0);
    await worker.stop();

    expect(renderer.renders).toBe(1);
    const done = await expectSettledWithSpooledTime(job);
    expect(done).toMatchObject({ attempts: 2, workerId: 'w-taken-back' });
    expect(worker.stats).toMatchObject({ recovered: 1, discarded: 0, completed: 0 });
    expect(lines.some((l) => l.startsWith(`job ${job.id}: completed from the spool (claimed again as attempt 2`))).toBe(true);
  });

  it('a job on its last attempt is not failed by a reaper within the grace; a restarted worker completes it from the spool', async () => {
    const { job, spoolDir } = await spoolDuringOutage('last-attempt', { maxAttempts: 1 });
    // Its lease ran out well into the grace, by the database's clock; every worker's reaper leaves it running.
    await expireLease(db, job.id, farm.config.lastAttemptGraceSeconds - 10);
    await reapExpiredLeases(farm);
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'running', attempts: 1, maxAttempts: 1, workerId: 'w-a-last-attempt', error: null });

    const { worker, renderer, lines } = await restartedAndStopped('last-attempt', spoolDir);

    expect(renderer.renders).toBe(0);
    const done = await expectSettledWithSpooledTime(job);
    expect(done).toMatchObject({ attempts: 1, error: null });
    expect(worker.stats).toMatchObject({ recovered: 1, claimed: 0 });
    expect(spoolFiles(spoolDir)).toEqual([]);
    expect(lines.some((l) => l.startsWith(`job ${job.id}: completed from the spool (attempt 1, rendered by worker w-a-last-attempt`))).toBe(true);
    const events = await queryRows<{ type: string }>(db.db, sql`select type from job_events where job_id = ${job.id} order by id`);
    expect(events.map((e) => e.type)).toEqual(['queued', 'claimed', 'done']);
    const ledger = await queryRows<{ kind: string }>(db.db, sql`select kind from budget_ledger where job_id = ${job.id} order by id`);
    expect(ledger.map((e) => e.kind)).toEqual(['reserve', 'settle']);
  });

  /** A job on its last attempt whose spooled render outlived the grace: failed by a reaper and refunded in full. */
  async function failedPastGrace(model: string) {
    const { job, spoolDir } = await spoolDuringOutage(model, { maxAttempts: 1 });
    await expireLease(db, job.id, farm.config.lastAttemptGraceSeconds + 1);
    expect(await reapExpiredLeases(farm)).toBeGreaterThanOrEqual(1);
    const failed = await getJob(farm, job.id);
    expect(failed).toMatchObject({ status: 'failed', attempts: 1, chargedGpuSeconds: 0 });
    expect(failed?.error).toMatch(new RegExp(`worker w-a-${model} stopped renewing its lease during attempt 1`));
    const audit = await auditBalance(db.db, job.userId);
    expect(audit.balanceMs).toBe(GENEROUS_BUDGET.refillGpuSeconds * 1000);
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
    return { job, spoolDir };
  }

  it('past the grace a job on its last attempt is failed and refunded; its spooled render, found later, makes it done after all, charged again and delivered again', async () => {
    const { job, spoolDir } = await failedPastGrace('grace-over');
    // The bot posted the failure.
    expect(await markDelivered(farm, job.id, { status: 'failed' })).toBe(true);

    const { worker, renderer, lines } = await restartedAndStopped('grace-over', spoolDir);

    expect(renderer.renders).toBe(0);
    expect(worker.stats).toMatchObject({ recovered: 1, claimed: 0 });
    const done = await getJob(farm, job.id);
    expect(done).toMatchObject({ status: 'done', attempts: 1, error: null, spentGpuSeconds: SPOOLED_GPU_SECONDS, chargedGpuSeconds: SPOOLED_GPU_SECONDS, deliveredAt: null });
    expect(Buffer.compare((await getArtifact(farm, job.id))!.bytes, spooledVideo)).toBe(0);
    expect(spoolFiles(spoolDir)).toEqual([]);
    expect(lines.some((l) => l.startsWith(`job ${job.id}: completed from the spool (attempt 1, rendered by worker w-a-grace-over`) && l.endsWith('it had been failed and refunded when its lease ran out, and is done now, charged again'))).toBe(true);
    // Charged again through the ledger: the refund stays, the render's GPU-seconds are taken.
    const ledger = await queryRows<{ kind: string; amount_ms: string | number }>(db.db, sql`select kind, amount_ms from budget_ledger where job_id = ${job.id} order by id`);
    const reserved = Math.round(done!.reservedGpuSeconds * 1000);
    expect(ledger.map((e) => [e.kind, Number(e.amount_ms)])).toEqual([['reserve', -reserved], ['refund', reserved], ['settle', -SPOOLED_GPU_SECONDS * 1000]]);
    const audit = await auditBalance(db.db, job.userId);
    expect(audit.balanceMs).toBe(GENEROUS_BUDGET.refillGpuSeconds * 1000 - SPOOLED_GPU_SECONDS * 1000);
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
    const events = await queryRows<{ type: string; data: Record<string, unknown> }>(db.db, sql`select type, data from job_events where job_id = ${job.id} order by id`);
    expect(events.map((e) => e.type)).toEqual(['queued', 'claimed', 'failed', 'delivered', 'done']);
    expect(events[4].data).toMatchObject({ afterFailure: true, spentGpuSeconds: SPOOLED_GPU_SECONDS });
    // The failure's delivery is over; the video is delivered once more. A bot that posted the
    // failure while it became done cannot mark it delivered.
    expect(await markDelivered(farm, job.id, { status: 'failed' })).toBe(false);
    expect(await markDelivered(farm, job.id, { status: 'done' })).toBe(true);
    expect(await markDelivered(farm, job.id)).toBe(false);
  });

  it('a job failed past the grace and retried by its owner since: the spooled render is deleted and the retry rendered afresh', async () => {
    const { job, spoolDir } = await failedPastGrace('grace-retried');
    await retryJob(farm, job.id);
    const { worker, renderer, lines } = restartedWorker('grace-retried', spoolDir);
    await worker.start();
    await waitForJob(farm, job.id, { timeoutMs: 20_000 });
    await worker.stop();

    expect(renderer.renders).toBe(1);
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'done', spentGpuSeconds: 5 });
    expect((await getArtifact(farm, job.id))!.bytes.toString()).toBe('rendered again');
    expect(spoolFiles(spoolDir)).toEqual([]);
    expect(lines.some((l) => l.startsWith(`job ${job.id}: spooled render job-${job.id}-attempt-1-`) && l.endsWith('deleted: the job was queued again by a retry since it was rendered (after a cancel or a failure); it is rendered afresh'))).toBe(true);
    const audit = await auditBalance(db.db, job.userId);
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
  });

  it('a job failed past the grace whose owner spent the refund meanwhile: charged what the balance holds, never below zero', async () => {
    const { job, spoolDir } = await failedPastGrace('grace-spent');
    // All but 0.3 GPU-seconds spent elsewhere (taken away here).
    const left = 300;
    await grantBudget(farm, job.userId, -(GENEROUS_BUDGET.refillGpuSeconds * 1000 - left) / 1000);

    const { renderer } = await restartedAndStopped('grace-spent', spoolDir);

    expect(renderer.renders).toBe(0);
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'done', spentGpuSeconds: SPOOLED_GPU_SECONDS, chargedGpuSeconds: left / 1000 });
    const audit = await auditBalance(db.db, job.userId);
    expect(audit).toEqual({ balanceMs: 0, ledgerSumMs: 0 });
    const [settle] = await queryRows<{ amount_ms: string | number; note: string }>(db.db, sql`select amount_ms, note from budget_ledger where job_id = ${job.id} and kind = 'settle'`);
    expect(Number(settle.amount_ms)).toBe(-left);
    expect(settle.note).toContain('all the balance held');
  });

  it('deletes the entry of a job cancelled meanwhile and never completes it', async () => {
    const { job, spoolDir } = await spoolDuringOutage('cancelled');
    await cancelJob(farm, job.id);
    const { renderer, lines } = await restartedAndStopped('cancelled', spoolDir);

    expect(renderer.renders).toBe(0);
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'cancelled' });
    expect(await getArtifact(farm, job.id)).toBeUndefined();
    expect(spoolFiles(spoolDir)).toEqual([]);
    expect(lines.some((l) => l.startsWith(`job ${job.id}: spooled render job-${job.id}-attempt-1-`) && l.endsWith('deleted: the job is cancelled already'))).toBe(true);
  });

  it('deletes the entry of a job cancelled and then retried by its owner, and renders the retry afresh (charged once for each render)', async () => {
    const { job, spoolDir } = await spoolDuringOutage('retried');
    const cancelled = await cancelJob(farm, job.id);
    const chargedForCancel = cancelled.job.chargedGpuSeconds!;
    // Same id, owner and parameters: the digest alone cannot tell the retry from the job rendered.
    const retried = await retryJob(farm, job.id);
    expect(retried).toMatchObject({ status: 'queued', attempts: 0 });
    const { worker, renderer, lines } = restartedWorker('retried', spoolDir);
    await worker.start();
    const done = await waitForJob(farm, job.id, { timeoutMs: 20_000 });
    await worker.stop();

    expect(
      lines.some(
        (l) => l.startsWith(`job ${job.id}: spooled render job-${job.id}-attempt-1-`) && l.endsWith('deleted: the job was queued again by a retry since it was rendered (after a cancel or a failure); it is rendered afresh'),
      ),
    ).toBe(true);
    expect(lines.some((l) => l.includes('completed from the spool'))).toBe(false);
    expect(renderer.renders).toBe(1);
    expect(worker.stats).toMatchObject({ recovered: 0, claimed: 1, completed: 1 });
    expect(done).toMatchObject({ status: 'done', attempts: 1, workerId: 'w-b-retried', spentGpuSeconds: 5 });
    expect((await getArtifact(farm, job.id))!.bytes.toString()).toBe('rendered again');
    expect(spoolFiles(spoolDir)).toEqual([]);
    // Charged for the cancelled run and for the fresh render, never for the spooled video again.
    const ledger = await queryRows<{ kind: string; amount_ms: string | number }>(db.db, sql`select kind, amount_ms from budget_ledger where job_id = ${job.id} order by id`);
    expect(ledger.map((e) => e.kind)).toEqual(['reserve', 'refund', 'reserve', 'settle']);
    const charged = -ledger.reduce((sum, e) => sum + Number(e.amount_ms), 0) / 1000;
    expect(charged).toBeCloseTo(chargedForCancel + Math.min(5, retried.reservedGpuSeconds), 3);
    const audit = await auditBalance(db.db, job.userId);
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
  });

  it('keeps recovering a job the reaper took back, also after a release: those do not count as a retry', async () => {
    const { job, spoolDir } = await spoolDuringOutage('requeued');
    const sidecar = spoolFiles(spoolDir).find((f) => f.endsWith('.json'))!;
    const [{ id: queuedEventId }] = await queryRows<{ id: number }>(db.db, sql`select max(id)::float8 as id from job_events where job_id = ${job.id} and type = 'queued'`);
    expect(JSON.parse(fs.readFileSync(path.join(spoolDir, sidecar), 'utf8'))).toMatchObject({ jobId: job.id, queuedEventId });
    // Taken back by a reaper, claimed by another worker that shuts down and releases it.
    await reapExpiredLeases(farm);
    const other = await claimJob(farm, 'w-releasing', { models: ['requeued'], maxPixels: 1024 * 1024, executionProvider: 'cpu' });
    expect(other?.id).toBe(job.id);
    expect(await releaseJob(farm, other!)).toBe(true);
    const { worker, renderer } = await restartedAndStopped('requeued', spoolDir);

    expect(renderer.renders).toBe(0);
    expect(worker.stats.recovered).toBe(1);
    await expectSettledWithSpooledTime(job);
    expect(spoolFiles(spoolDir)).toEqual([]);
  });

  it('an entry written before the queuing was recorded is still recovered; claimSpecificJob refuses an earlier queuing', async () => {
    const { job, spoolDir } = await spoolDuringOutage('older-entry');
    const sidecar = spoolFiles(spoolDir).find((f) => f.endsWith('.json'))!;
    const { queuedEventId, ...older } = JSON.parse(fs.readFileSync(path.join(spoolDir, sidecar), 'utf8')) as { queuedEventId: number };
    fs.writeFileSync(path.join(spoolDir, sidecar), JSON.stringify(older));
    await reapExpiredLeases(farm);
    const caps = { models: ['older-entry'], maxPixels: 1024 * 1024, executionProvider: 'cpu' };
    expect(await claimSpecificJob(farm, 'w-stale', job.id, caps, queuedEventId - 1)).toBeUndefined();
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'queued' });
    const { worker, renderer } = await restartedAndStopped('older-entry', spoolDir);

    expect(renderer.renders).toBe(0);
    expect(worker.stats.recovered).toBe(1);
    await expectSettledWithSpooledTime(job);
  });

  it('deletes the entry when the job is not the one rendered (its parameters changed) and renders it afresh', async () => {
    const { job, spoolDir } = await spoolDuringOutage('changed');
    await db.db.execute(sql`update jobs set params = jsonb_set(params, '{prompts,0}', '"a green fox"') where id = ${job.id}`);
    await reapExpiredLeases(farm);
    const { worker, renderer, lines } = restartedWorker('changed', spoolDir);
    await worker.start();
    const done = await waitForJob(farm, job.id, { timeoutMs: 20_000 });
    await worker.stop();

    expect(lines.some((l) => l.startsWith(`job ${job.id}: spooled render`) && l.includes('deleted: the job is not the one rendered'))).toBe(true);
    expect(renderer.renders).toBe(1);
    expect(done.status).toBe('done');
    expect((await getArtifact(farm, job.id))!.bytes.toString()).toBe('rendered again');
    expect(spoolFiles(spoolDir)).toEqual([]);
  });

  it('leaves a job another worker holds alone, and deletes the entry once that worker finished it', async () => {
    const { job, spoolDir } = await spoolDuringOutage('held');
    await reapExpiredLeases(farm);
    // Another worker takes the job with a lease that outlasts the test.
    const other: FarmContext = { db, config: testConfig({ budget: GENEROUS_BUDGET, leaseSeconds: 300 }) };
    const claimed = await claimJob(other, 'w-other', { models: ['held'], maxPixels: 1024 * 1024, executionProvider: 'cpu' });
    expect(claimed?.id).toBe(job.id);

    const { worker, renderer, lines } = restartedWorker('held', spoolDir);
    await worker.start();
    await until(() => lines.some((l) => l.startsWith(`job ${job.id}: spooled render`) && l.includes('kept: worker w-other holds the job now')));
    // Several heartbeats (0.25 s each) later the job is still the other worker's.
    await sleep(1000);
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'running', workerId: 'w-other', attempts: 2 });
    expect(spoolFiles(spoolDir)).toHaveLength(2);
    expect(lines.filter((l) => l.includes('kept: worker w-other'))).toHaveLength(1);

    const theirs = Buffer.from('the other worker rendered it');
    expect(await completeJob(other, claimed!, { artifact: { format: 'mp4', mime: 'video/mp4', sizeBytes: theirs.byteLength, meta: {}, data: theirs }, gpuSeconds: 2 })).toBe(true);
    await until(() => spoolFiles(spoolDir).length === 0);
    await worker.stop();

    expect(renderer.renders).toBe(0);
    expect(worker.stats.recovered).toBe(0);
    expect((await getArtifact(farm, job.id))!.bytes.toString()).toBe(theirs.toString());
    expect(lines.some((l) => l.startsWith(`job ${job.id}: spooled render`) && l.endsWith('deleted: the job is done already'))).toBe(true);
  });

  it('judges an entry’s age by its video file, not the writer’s clock: written by a machine 7 h behind, it is completed, not deleted', async () => {
    const { job, spoolDir } = await spoolDuringOutage('skewed-writer');
    const sidecar = spoolFiles(spoolDir).find((f) => f.endsWith('.json'))!;
    const entry = JSON.parse(fs.readFileSync(path.join(spoolDir, sidecar), 'utf8')) as { createdAt: string };
    const stamp = fs.statSync(path.join(spoolDir, sidecar));
    fs.writeFileSync(path.join(spoolDir, sidecar), JSON.stringify({ ...entry, createdAt: new Date(Date.parse(entry.createdAt) - 7 * 3600_000).toISOString() }));
    fs.utimesSync(path.join(spoolDir, sidecar), stamp.atime, stamp.mtime);
    expect(await reapExpiredLeases(farm)).toBeGreaterThanOrEqual(1);

    const { worker, renderer, lines } = await restartedAndStopped('skewed-writer', spoolDir);
    expect(lines.filter((l) => l.includes('older than'))).toEqual([]);
    expect(renderer.renders).toBe(0);
    expect(worker.stats).toMatchObject({ recovered: 1 });
    await expectSettledWithSpooledTime(job);
    expect(spoolFiles(spoolDir)).toEqual([]);
  });

  it('deletes an entry older than the queue timeout without asking about its job', async () => {
    const { job, spoolDir } = await spoolDuringOutage('old');
    const sidecar = spoolFiles(spoolDir).find((f) => f.endsWith('.json'))!;
    const entry = JSON.parse(fs.readFileSync(path.join(spoolDir, sidecar), 'utf8')) as { createdAt: string; leaseToken: string };
    expect(entry).toMatchObject({ jobId: job.id, attempt: 1, workerId: 'w-a-old', sizeBytes: spooledVideo.byteLength, gpuSeconds: SPOOLED_GPU_SECONDS });
    // Its video was written 7 h ago as the folder's file system tells (the age is the file's, not the sidecar's createdAt).
    const video = path.join(spoolDir, sidecar.replace(/\.json$/, '.video'));
    const sevenHoursAgo = (fs.statSync(video).mtimeMs - 7 * 3600_000) / 1000;
    fs.utimesSync(video, sevenHoursAgo, sevenHoursAgo);
    const { worker, renderer, lines } = restartedWorker('old', spoolDir);
    await worker.start();
    await worker.stop('release');

    // The line says the rule, not a guess about the job it did not ask about.
    expect(lines.some((l) => l.startsWith(`job ${job.id}: spooled render`) && l.endsWith('deleted: it is older than 21600 s (BLENDFARM_QUEUE_TIMEOUT_SECONDS, a day when that is 0, at least the lease plus BLENDFARM_LAST_ATTEMPT_GRACE_SECONDS), the longest a spooled render is kept'))).toBe(true);
    expect(spoolFiles(spoolDir)).toEqual([]);
    expect(worker.stats.recovered).toBe(0);
    expect(renderer.renders).toBe(0);
    expect(await getArtifact(farm, job.id)).toBeUndefined();
  });
});

describe('the render spool through a real network outage (Postgres)', () => {
  let testDb: TestDatabase;
  let proxy: FlakyProxy;
  let db: FarmDb;
  let workerDb: FarmDb;
  let tmp: string;
  useTempDir('blendfarm-spool-net-', (dir) => (tmp = dir));

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    const viaProxy = await proxyInFrontOf(testDb.url!);
    proxy = viaProxy.proxy;
    db = await testDb.open();
    // The first worker reaches the database through the proxy; short timeouts so dropped queries fail fast.
    workerDb = await openDatabase({ url: viaProxy.url, migrate: false, poolSize: 3, timeouts: { connectTimeoutMs: 300, queryTimeoutMs: 300, keepAliveSeconds: 1 }, log: () => {} });
  });
  afterAll(async () => {
    await workerDb?.close().catch(() => {});
    await proxy?.close();
    await testDb?.drop();
  });

  it('a worker that died during the outage leaves the video in the spool; the next one completes the job from it', async () => {
    const spoolDir = path.join(tmp, 'spool');
    const video = Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 31 + 7) % 256));
    const first = countingRenderer('net', video, 1.25, () => proxy.blackhole());
    const lines: string[] = [];
    const a = new FarmWorker({ farm: { db: workerDb, config: testConfig({ budget: GENEROUS_BUDGET, spoolDir }) }, renderer: first, id: 'w-net-a', log: (l) => lines.push(l) });
    await a.start();
    const farm: FarmContext = { db, config: testConfig({ budget: GENEROUS_BUDGET, spoolDir }) };
    const job = await submitJob(farm, { kind: 'blend', userId: 'net-user', params: { ...CHEAP_BLEND, model: 'net' } });
    await until(() => lines.some((l) => l.startsWith(`job ${job.id}: finished, but the database did not take the result before the lease ran out`)));
    await a.stop('release');
    proxy.restore();

    const second = countingRenderer('net', Buffer.from('rendered again'), 9);
    const b = new FarmWorker({ farm, renderer: second, id: 'w-net-b', log: (l) => lines.push(l) });
    await b.start();
    const done = await waitForJob(farm, job.id, { timeoutMs: 20_000 });
    await b.stop();

    expect(first.renders).toBe(1);
    expect(second.renders).toBe(0);
    expect(done).toMatchObject({ status: 'done', spentGpuSeconds: 1.25, chargedGpuSeconds: 1.25 });
    expect(Buffer.compare((await getArtifact(farm, job.id))!.bytes, video)).toBe(0);
    expect(b.stats.recovered).toBe(1);
    expect(spoolFiles(spoolDir)).toEqual([]);
  });
});

describe.each(BACKENDS)('the spool horizon with a short queue timeout, on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;
  let tmp: string;
  // Queued jobs expire after 1 s, and a job on its last attempt keeps its expired lease for a minute.
  const overrides = { budget: GENEROUS_BUDGET, queueTimeoutSeconds: 1, lastAttemptGraceSeconds: 60, maxAttempts: 1 };
  useTestFarm(backend, overrides, (t) => ({ db, farm } = t));
  useTempDir('blendfarm-spool-horizon-', (dir) => (tmp = dir));

  it('keeps an entry the last-attempt grace still waits for, however short BLENDFARM_QUEUE_TIMEOUT_SECONDS: the job is completed from it', async () => {
    const caps = { models: ['horizon'], maxPixels: 1 << 20, executionProvider: 'cpu' };
    const job = await submitJob(farm, { kind: 'blend', userId: 'u-horizon', params: { ...CHEAP_BLEND, model: 'horizon' } });
    const claimed = (await claimJob(farm, 'w-gone', caps))!;
    expect(claimed.id).toBe(job.id);
    const spoolDir = path.join(tmp, 'spool');
    const spool = new Spool(spoolDir);
    const video = Buffer.from('rendered before the worker went away');
    const name = await spool.put({ jobId: job.id, attempt: claimed.attempt, leaseToken: claimed.leaseToken, workerId: 'w-gone', format: 'mp4', mime: 'video/mp4', meta: {}, gpuSeconds: 0.5, jobDigest: jobDigest(claimed), queuedEventId: claimed.queuedEventId }, video);
    // Written 5 s ago (the video file's time), past the 1 s queue timeout; the lease ran out 3 s ago, well within the grace.
    const videoFile = path.join(spoolDir, `${name}.video`);
    const fiveSecondsAgo = (fs.statSync(videoFile).mtimeMs - 5000) / 1000;
    fs.utimesSync(videoFile, fiveSecondsAgo, fiveSecondsAgo);
    spool.release(name);
    await expireLease(db, job.id, 3);

    const lines: string[] = [];
    const worker = new FarmWorker({ farm: { db, config: testConfig({ ...overrides, spoolDir }) }, renderer: new FakeRenderer({ models: ['horizon'] }), id: 'w-back', log: (l) => lines.push(l) });
    await worker.start();
    await worker.stop('release');

    expect(lines.filter((l) => l.includes('deleted'))).toEqual([]);
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'done', attempts: 1, spentGpuSeconds: 0.5 });
    expect((await getArtifact(farm, job.id))!.bytes.toString()).toBe(video.toString());
    expect(spoolFiles(spoolDir)).toEqual([]);
    expect(worker.stats).toMatchObject({ recovered: 1, claimed: 0 });
  });
});
