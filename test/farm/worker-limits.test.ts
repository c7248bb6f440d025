// Issue 9, items 5 and 6: a render that hangs is stopped after the time limit its reservation
// allows and the job fails, charged for the time it ran and refunded the rest; a finished render
// survives a database outage at completion (on real Postgres behind a proxy that drops traffic).
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FarmDb, openDatabase, queryRows } from '../../db/client.ts';
import { type FarmContext, renderTimeLimitSeconds } from '../../farm/config.ts';
import { FakeRenderer } from '../../farm/fake-renderer.ts';
import { getArtifact, getJob, submitJob } from '../../farm/jobs.ts';
import { auditBalance } from '../../farm/policy/budget.ts';
import type { Renderer, RenderResult } from '../../farm/renderer.ts';
import { waitForJob } from '../../farm/wait.ts';
import { FarmWorker } from '../../farm/worker.ts';
import { BACKENDS, CHEAP_BLEND, countRows, createTestDatabase, farmContext, GENEROUS_BUDGET, type TestDatabase } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';
import { type FlakyProxy, proxyInFrontOf } from '../helpers/flaky-proxy.ts';

describe('render time limit', () => {
  it('follows from the reservation, with a floor', () => {
    const config = { renderTimeoutFactor: 4, renderTimeoutMinSeconds: 600 };
    expect(renderTimeLimitSeconds(config, 10)).toBe(600);
    expect(renderTimeLimitSeconds(config, 1000)).toBe(4000);
    expect(renderTimeLimitSeconds(config, 200.1)).toBe(801);
  });
});

describe.each(BACKENDS)('a hung render on %s (item 5)', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;

  // Reservations of about 100 GPU-seconds; any render may run 1 s.
  useTestFarm(backend, { budget: GENEROUS_BUDGET, cost: { overheadSeconds: 100 }, renderTimeoutFactor: 0.001, renderTimeoutMinSeconds: 1, abortGraceMs: 200 }, (t) => ({ db, farm } = t));

  it('is stopped at the limit; the job fails, charged for the time it ran, the rest refunded; the slot is free again', async () => {
    const worker = new FarmWorker({ farm, renderer: new FakeRenderer({ models: ['hang'], stepMs: 5 }), id: 'w-hang', log: () => {} });
    await worker.start();
    // "[fake hang]" ignores its abort signal and never settles.
    const hung = await submitJob(farm, { kind: 'blend', userId: 'hanger', params: { ...CHEAP_BLEND, prompts: ['[fake hang] a', 'b'], model: 'hang' } });
    const failed = await waitForJob(farm, hung.id, { timeoutMs: 30_000 });
    // The one slot renders the next job.
    const next = await submitJob(farm, { kind: 'blend', userId: 'hanger', params: { ...CHEAP_BLEND, model: 'hang' } });
    const done = await waitForJob(farm, next.id, { timeoutMs: 30_000 });
    await worker.stop();

    expect(failed).toMatchObject({ status: 'failed', attempts: 1 });
    expect(failed.error).toBe(
      `The render took longer than 1 s, the limit for a job reserving ${hung.reservedGpuSeconds} GPU-seconds, and was stopped; ` +
        'it was charged for the time it ran and the rest refunded. Try a smaller, shorter or lower-quality render.',
    );
    // Written for its owner: they are told the same.
    expect(failed.userError).toBe(failed.error);
    expect(failed.chargedGpuSeconds).toBeGreaterThanOrEqual(1);
    expect(failed.chargedGpuSeconds).toBeLessThan(hung.reservedGpuSeconds);
    const [refund] = await queryRows<{ amount_ms: string | number }>(db.db, sql`select amount_ms from budget_ledger where job_id = ${hung.id} and kind = 'refund'`);
    expect(Number(refund.amount_ms)).toBe(Math.round(hung.reservedGpuSeconds * 1000) - Math.round(failed.chargedGpuSeconds! * 1000));
    expect(await getArtifact(farm, hung.id)).toBeUndefined();
    expect(done.status).toBe('done');
    const audit = await auditBalance(db.db, 'hanger');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
    expect(worker.stats).toMatchObject({ completed: 1, failedAttempts: 1 });
  });
});

describe('a database outage at completion (item 6, Postgres)', () => {
  let testDb: TestDatabase;
  let proxy: FlakyProxy;
  let db: FarmDb;

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    const viaProxy = await proxyInFrontOf(testDb.url!);
    proxy = viaProxy.proxy;
    db = await testDb.open();
    // The worker's own handle goes through the proxy; short timeouts so a dropped query fails fast.
    workerDb = await openDatabase({
      url: viaProxy.url,
      migrate: false,
      poolSize: 3,
      timeouts: { connectTimeoutMs: 300, queryTimeoutMs: 300, keepAliveSeconds: 1 },
      log: () => {},
    });
  });
  let workerDb: FarmDb;
  afterAll(async () => {
    await workerDb?.close().catch(() => {});
    await proxy?.close();
    await testDb?.drop();
  });

  it('keeps retrying the completion while the lease holds, and stores the exact bytes', async () => {
    const farm = farmContext(db, { budget: GENEROUS_BUDGET });
    // A lease long enough to outlast the outage; the old three tries gave up after about 1.5 s.
    const workerFarm = farmContext(workerDb, { budget: GENEROUS_BUDGET, leaseSeconds: 12, heartbeatSeconds: 1 });
    const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256));
    const inner = new FakeRenderer({ models: ['outage'], stepMs: 5 });
    let outage: Promise<void> | undefined;
    const renderer: Renderer = {
      capabilities: () => inner.capabilities(),
      async render(job, ctx): Promise<RenderResult> {
        const result = await inner.render(job, ctx);
        // The database goes away just as the render finishes, for 4 s.
        proxy.blackhole();
        outage = new Promise((resolve) => setTimeout(() => { proxy.restore(); resolve(); }, 4000));
        return { ...result, video: bytes };
      },
    };
    const lines: string[] = [];
    const worker = new FarmWorker({ farm: workerFarm, renderer, id: 'w-outage', log: (line) => lines.push(line) });
    await worker.start();
    const job = await submitJob(farm, { kind: 'blend', userId: 'patient', params: { ...CHEAP_BLEND, model: 'outage' } });
    const done = await waitForJob(farm, job.id, { timeoutMs: 60_000 });
    await outage;
    await worker.stop();

    expect(done.status).toBe('done');
    expect(done.attempts).toBe(1);
    const artifact = await getArtifact(farm, job.id);
    expect(Buffer.compare(artifact!.bytes, bytes)).toBe(0);
    expect(worker.stats).toMatchObject({ completed: 1, discarded: 0 });
    expect(lines.some((l) => l.includes(`job ${job.id}: storing the result failed`))).toBe(true);
    expect(await countRows(db, 'artifacts', sql`job_id = ${job.id}`)).toBe(1);
    expect((await getJob(farm, job.id))?.error).toBeNull();
  });
});
