// Workers end to end with the stand-in renderer, on both back ends: progress and completion
// arrive through LISTEN/NOTIFY, failures retry then fail with a refund, cancellation stops a
// running render, and shutdown either finishes or hands jobs back.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import type { FarmDb } from '../../db/client.ts';
import { auditBalance } from '../../farm/policy/budget.ts';
import type { FarmContext } from '../../farm/config.ts';
import { type JobEvent, onJobEvent } from '../../farm/events.ts';
import { decodeFakeVideo, FakeRenderer } from '../../farm/fake-renderer.ts';
import { failureForOwner } from '../../farm/failure.ts';
import { NoCapableWorkerError } from '../../farm/errors.ts';
import { cancelJob, getArtifact, getJob, submitJob } from '../../farm/jobs.ts';
import { startLocalWorkers } from '../../farm/local.ts';
import { waitForJob } from '../../farm/wait.ts';
import { FarmWorker } from '../../farm/worker.ts';
import { RESULT_WARNINGS, resultWarnings, type Renderer } from '../../farm/renderer.ts';
import { listWorkers } from '../../farm/worker-registry.ts';
import { BACKENDS, CHEAP_BLEND, countRows, farmContext, GENEROUS_BUDGET, type TestDatabase } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

const quiet = () => {};

/** Resolves once `condition` holds (checked every 10 ms); the test timeout bounds the wait. */
function until(condition: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = setInterval(() => {
      if (!condition()) return;
      clearInterval(check);
      resolve();
    }, 10);
  });
}

describe.each(BACKENDS)('workers on %s', (backend) => {
  let testDb: TestDatabase;
  let db: FarmDb;
  let listenerDb: FarmDb;
  let farm: FarmContext;
  const events: JobEvent[] = [];

  useTestFarm(backend, { budget: GENEROUS_BUDGET }, async (t) => {
    ({ testDb, db, farm } = t);
    // On Postgres the listener is another connection pool, as the bot in another process would be.
    listenerDb = backend === 'postgres' ? await testDb.open({ migrate: false, poolSize: 1 }) : db;
    await onJobEvent(listenerDb, (event) => events.push(event));
  });

  /** A worker with its own model name, so tests do not pick up each other's jobs. */
  function worker(model: string, options: ConstructorParameters<typeof FakeRenderer>[0] = {}, id = `w-${model}`) {
    return new FarmWorker({ farm, renderer: new FakeRenderer({ models: [model], maxPixels: 1024 * 1024, ...options }), id, log: quiet });
  }

  it('renders a job and publishes progress and completion', async () => {
    const w = worker('e2e', { steps: 5, stepMs: 20 });
    await w.start();
    const job = await submitJob(farm, { kind: 'movie', userId: 'alice', params: { ...CHEAP_BLEND, prompts: ['one', 'two', 'three'], model: 'e2e' } });
    const done = await waitForJob(farm, job.id, { timeoutMs: 20_000 });
    await w.stop();

    expect(done.status).toBe('done');
    expect(done.workerId).toBe('w-e2e');
    expect(done.progress).toMatchObject({ stage: 'done', fraction: 1 });
    expect(done.spentGpuSeconds).toBeGreaterThan(0.05);
    expect(done.chargedGpuSeconds).toBe(done.spentGpuSeconds);
    const artifact = await getArtifact(farm, job.id);
    expect(decodeFakeVideo(artifact!.bytes)).toEqual({ jobId: job.id, attempt: 1, prompts: ['one', 'two', 'three'], seeds: done.params.seeds });
    expect(artifact?.meta).toMatchObject({ renderer: 'fake', seeds: done.params.seeds });

    // The listener is another connection: its copy of the last NOTIFY may still be in flight.
    await until(() => events.some((e) => e.jobId === job.id && e.type === 'done'));
    const mine = events.filter((e) => e.jobId === job.id);
    expect(mine.map((e) => e.type).filter((t) => t !== 'progress')).toEqual(['queued', 'claimed', 'done']);
    // Events carry ids only; the progress and the worker are in the row (checked above).
    const progress = mine.filter((e) => e.type === 'progress');
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress.every((e) => e.status === 'running' && e.attempt === 1)).toBe(true);
    expect(mine.find((e) => e.type === 'claimed')).toMatchObject({ status: 'running', attempt: 1 });
    const [registered] = (await listWorkers(farm)).filter((w) => w.id === 'w-e2e');
    expect(registered).toMatchObject({ online: false, capabilities: { models: ['e2e'], executionProvider: 'fake' } });
  });

  it('stores the renderer’s warnings with the result, cleaned: text only, each on one line of at most RESULT_WARNINGS.length characters', async () => {
    const fake = new FakeRenderer({ models: ['warns'], maxPixels: 1024 * 1024 });
    const said = ['Prompt B is 93 CLIP tokens long; shorten it.', 'two\nlines\u0000', 42, 'x'.repeat(400), 'Prompt B is 93 CLIP tokens long; shorten it.'];
    const renderer: Renderer = { capabilities: () => fake.capabilities(), render: async (j, ctx) => ({ ...(await fake.render(j, ctx)), warnings: said as string[] }) };
    const w = new FarmWorker({ farm, renderer, id: 'w-warns', log: quiet });
    await w.start();
    const job = await submitJob(farm, { kind: 'blend', userId: 'alice', params: { ...CHEAP_BLEND, model: 'warns' } });
    expect((await waitForJob(farm, job.id, { timeoutMs: 20_000 })).status).toBe('done');
    await w.stop();
    const meta = (await getArtifact(farm, job.id))!.meta;
    expect(meta.warnings).toEqual(['Prompt B is 93 CLIP tokens long; shorten it.', 'two lines', `${'x'.repeat(RESULT_WARNINGS.length - 1)}…`]);
    expect(resultWarnings(meta)).toEqual(meta.warnings);
    // The renderer's other metadata is kept; a result without warnings has none stored.
    expect(meta.renderer).toBe('fake');
    expect(resultWarnings({ seeds: [1] })).toEqual([]);
  });

  it('refuses a job no online worker can run, when asked to', async () => {
    const input = { kind: 'blend' as const, userId: 'erin', params: { ...CHEAP_BLEND, model: 'rare' }, requireCapableWorker: true };
    const before = await submitJob(farm, input).catch((e: unknown) => e);
    expect(before).toBeInstanceOf(NoCapableWorkerError);
    expect(before).toMatchObject({ code: 'no_capable_worker', model: 'rare' });
    const w = worker('rare', { stepMs: 1 });
    await w.start();
    const tooBig = await submitJob(farm, { ...input, params: { ...input.params, width: 2048, height: 2048 }, requireCapableWorker: true }).catch((e: unknown) => e);
    const accepted = await submitJob(farm, input);
    await waitForJob(farm, accepted.id, { timeoutMs: 20_000 });
    await w.stop();
    expect(tooBig).toBeInstanceOf(NoCapableWorkerError);
    expect((tooBig as NoCapableWorkerError).workersOnline).toBeGreaterThanOrEqual(1);
    expect(accepted.status).toBe('queued');
  });

  it('retries failed attempts, then fails with the last error and refunds', async () => {
    const w = worker('flaky');
    await w.start();
    const recovers = await submitJob(farm, { kind: 'blend', userId: 'bob', params: { ...CHEAP_BLEND, prompts: ['[fake fail=2] a', 'b'], model: 'flaky' } });
    const hopeless = await submitJob(farm, { kind: 'blend', userId: 'bob', params: { ...CHEAP_BLEND, prompts: ['[fake fail=9] a', 'b'], model: 'flaky' } });
    const permanent = await submitJob(farm, { kind: 'blend', userId: 'bob', params: { ...CHEAP_BLEND, prompts: ['[fake permanent] a', 'b'], model: 'flaky' } });
    const refused = await submitJob(farm, { kind: 'blend', userId: 'bob', params: { ...CHEAP_BLEND, prompts: ['[fake refuse] a', 'b'], model: 'flaky' } });
    const [r, h, p, u] = await Promise.all([recovers, hopeless, permanent, refused].map((job) => waitForJob(farm, job.id, { timeoutMs: 20_000 })));
    await w.stop();

    expect(r).toMatchObject({ status: 'done', attempts: 3 });
    expect(decodeFakeVideo((await getArtifact(farm, r.id))!.bytes).attempt).toBe(3);
    // The operator's text in full; the owner's only where the renderer wrote one for them.
    expect(h).toMatchObject({ status: 'failed', attempts: 3, error: 'fake failure on attempt 3', userError: null, chargedGpuSeconds: 0 });
    expect(p).toMatchObject({ status: 'failed', attempts: 1, error: 'fake permanent failure', userError: null });
    expect(u).toMatchObject({ status: 'failed', attempts: 1, error: 'fake refusal: use a smaller size', userError: 'fake refusal: use a smaller size' });
    expect(failureForOwner(p)).toBe(`something went wrong on the farm's side, not with your request; the farm's operator can look it up as job ${p.id}`);
    expect(failureForOwner(u)).toBe('fake refusal: use a smaller size');
    expect(await getArtifact(farm, h.id)).toBeUndefined();
    const refunds = await countRows(db, 'budget_ledger', sql`kind = 'refund' and job_id in (${h.id}, ${p.id}, ${u.id})`);
    expect(refunds).toBe(3);
    const audit = await auditBalance(db.db, 'bob');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
    expect(audit.balanceMs).toBe(GENEROUS_BUDGET.refillGpuSeconds * 1000 - Math.round((r.chargedGpuSeconds ?? 0) * 1000));
    expect(w.stats).toMatchObject({ completed: 1, failedAttempts: 7 });
  });

  it('stops a running render when its job is cancelled', async () => {
    const w = worker('cancel', { steps: 200, stepMs: 25 });
    await w.start();
    const job = await submitJob(farm, { kind: 'blend', userId: 'carol', params: { ...CHEAP_BLEND, model: 'cancel' } });
    await until(() => events.some((e) => e.jobId === job.id && e.type === 'progress'));
    const result = await cancelJob(farm, job.id, 'changed my mind');
    expect(result.cancelled).toBe(true);
    // The worker notices through the event and frees its slot well before the 5 s render would end.
    await until(() => w.runningJobIds.length === 0);
    await w.stop();
    expect(w.stats).toMatchObject({ completed: 0, discarded: 1 });
    const cancelled = await getJob(farm, job.id);
    expect(cancelled).toMatchObject({ status: 'cancelled', error: 'changed my mind' });
    expect(await getArtifact(farm, job.id)).toBeUndefined();
  });

  it('hands a running job back on a releasing shutdown, and finishes it on a finishing one', async () => {
    const first = worker('shutdown', { steps: 100, stepMs: 20 }, 'leaving');
    await first.start();
    const job = await submitJob(farm, { kind: 'blend', userId: 'dave', params: { ...CHEAP_BLEND, model: 'shutdown' } });
    await until(() => first.runningJobIds.includes(job.id));
    await first.stop('release');
    const released = await getJob(farm, job.id);
    expect(released).toMatchObject({ status: 'queued', attempts: 0, workerId: null });
    expect(first.stats.released).toBe(1);

    const second = worker('shutdown', { steps: 5, stepMs: 40 }, 'staying');
    await second.start();
    await until(() => second.runningJobIds.includes(job.id));
    await second.stop('finish');
    const finished = await getJob(farm, job.id);
    expect(finished).toMatchObject({ status: 'done', attempts: 1, workerId: 'staying' });
  });

  it('runs several in-process workers on one handle and stores artifacts in a directory', async () => {
    const artifactDir = fs.mkdtempSync(path.join(os.tmpdir(), 'blendfarm-artifacts-'));
    const dirFarm = farmContext(db, { budget: GENEROUS_BUDGET, artifactDir });
    const local = await startLocalWorkers(dirFarm, { count: 3, renderer: () => new FakeRenderer({ models: ['local'], stepMs: 15 }), log: quiet, idPrefix: 'one-process' });
    const jobs = await Promise.all(
      Array.from({ length: 6 }, (_, i) => submitJob(dirFarm, { kind: 'blend', userId: `user-${i % 3}`, params: { ...CHEAP_BLEND, model: 'local' } })),
    );
    const finished = await Promise.all(jobs.map((job) => waitForJob(dirFarm, job.id, { timeoutMs: 20_000 })));
    await local.stop();

    expect(finished.every((job) => job.status === 'done')).toBe(true);
    expect(new Set(finished.map((job) => job.workerId)).size).toBeGreaterThan(1);
    const files = fs.readdirSync(artifactDir);
    expect(files).toHaveLength(6);
    for (const job of finished) {
      const artifact = await getArtifact(dirFarm, job.id);
      expect(decodeFakeVideo(artifact!.bytes).jobId).toBe(job.id);
    }
    expect(await countRows(db, 'artifacts', sql`data is null and path like 'job-%'`)).toBe(6);
    fs.rmSync(artifactDir, { recursive: true, force: true });
  });
});
