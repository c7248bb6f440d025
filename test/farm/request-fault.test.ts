// A render that fails by its request's own fault (RenderError requestFault: a video that cannot fit
// its maxBytes, a setting or picture the engine refuses) is charged the time it ran, capped at the
// reservation, as a render stopped at its time limit is: a hostile review found that such a failure
// was refunded in full, so one user could keep GPUs busy without limit by resubmitting a /movie gif
// that only fails at its encoding. A failure that is the farm's (a crash, a model fault) is still
// refunded in full.
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { type FarmDb, queryRows } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { FAKE_TOO_LARGE, FakeRenderer } from '../../farm/fake-renderer.ts';
import { submitJob } from '../../farm/jobs.ts';
import { auditBalance } from '../../farm/policy/budget.ts';
import { chargeFor } from '../../farm/policy/settlement.ts';
import { claimJob, failAttempt } from '../../farm/queue.ts';
import { RenderError } from '../../farm/renderer.ts';
import { waitForJob } from '../../farm/wait.ts';
import { FarmWorker } from '../../farm/worker.ts';
import { BACKENDS, CHEAP_BLEND, GENEROUS_BUDGET } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

describe('the charge rule for failures', () => {
  it('charges a request fault the time it ran, capped at the reservation; a farm fault nothing; a timed-out render as before', () => {
    expect(chargeFor(100_000, { kind: 'request-fault', ranMs: 512.4 })).toBe(512);
    expect(chargeFor(100_000, { kind: 'request-fault', ranMs: 250_000 })).toBe(100_000);
    expect(chargeFor(100_000, { kind: 'failed' })).toBe(0);
    expect(chargeFor(100_000, { kind: 'timed-out', ranMs: 1500 })).toBe(1500);
    expect(chargeFor(100_000, { kind: 'timed-out', ranMs: 250_000 })).toBe(100_000);
  });

  it('RenderError is no request fault unless it says so', () => {
    expect(new RenderError('x').requestFault).toBe(false);
    expect(new RenderError('x', { retryable: false, userMessage: true }).requestFault).toBe(false);
    expect(new RenderError('x', { retryable: false, userMessage: true, requestFault: true }).requestFault).toBe(true);
  });
});

describe.each(BACKENDS)('a render that fails by its request on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;
  // Reservations of about 100 GPU-seconds: far above the half second these renders run.
  useTestFarm(backend, { budget: GENEROUS_BUDGET, cost: { overheadSeconds: 100 } }, (t) => ({ db, farm } = t));

  async function ledgerOf(jobId: number): Promise<Array<{ kind: string; amount_ms: number }>> {
    const rows = await queryRows<{ kind: string; amount_ms: string | number }>(db.db, sql`select kind, amount_ms from budget_ledger where job_id = ${jobId} order by id`);
    return rows.map((r) => ({ kind: r.kind, amount_ms: Number(r.amount_ms) }));
  }

  it('is charged the time it ran (about 0.5 s), not retried, the rest refunded, its owner told why', async () => {
    const worker = new FarmWorker({ farm, renderer: new FakeRenderer({ models: ['fake'], steps: 4 }), id: 'w-toolarge', log: () => {} });
    await worker.start();
    // Four steps of 125 ms, then the encoder's refusal: the whole render ran.
    const job = await submitJob(farm, { kind: 'blend', userId: 'gif-spammer', params: { ...CHEAP_BLEND, prompts: ['[fake toolarge ms=125] a', 'b'], model: 'fake' } });
    const failed = await waitForJob(farm, job.id, { timeoutMs: 30_000 });
    await worker.stop();

    expect(failed).toMatchObject({ status: 'failed', attempts: 1, error: FAKE_TOO_LARGE, userError: FAKE_TOO_LARGE });
    expect(failed.chargedGpuSeconds).toBeGreaterThanOrEqual(0.45);
    expect(failed.chargedGpuSeconds).toBeLessThan(10);
    const reservedMs = Math.round(job.reservedGpuSeconds * 1000);
    const chargedMs = Math.round(failed.chargedGpuSeconds! * 1000);
    // The reservation came off the balance; all of it but the time the render ran went back.
    const ledger = await ledgerOf(job.id);
    expect(ledger.find((e) => e.kind === 'refund')?.amount_ms).toBe(reservedMs - chargedMs);
    expect(ledger.reduce((sum, e) => sum + e.amount_ms, 0)).toBe(-chargedMs);
    const audit = await auditBalance(db.db, 'gif-spammer');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
    expect(audit.balanceMs).toBe(GENEROUS_BUDGET.refillGpuSeconds * 1000 - chargedMs);
    expect(worker.stats).toMatchObject({ failedAttempts: 1 });
  });

  it('a permanent failure that is the farm\'s is still refunded in full', async () => {
    const worker = new FarmWorker({ farm, renderer: new FakeRenderer({ models: ['fake'], steps: 4 }), id: 'w-permanent', log: () => {} });
    await worker.start();
    const job = await submitJob(farm, { kind: 'blend', userId: 'unlucky', params: { ...CHEAP_BLEND, prompts: ['[fake permanent ms=125] a', 'b'], model: 'fake' } });
    const failed = await waitForJob(farm, job.id, { timeoutMs: 30_000 });
    await worker.stop();

    expect(failed).toMatchObject({ status: 'failed', attempts: 1, error: 'fake permanent failure', userError: null });
    expect(failed.chargedGpuSeconds ?? 0).toBe(0);
    const ledger = await ledgerOf(job.id);
    expect(ledger.reduce((sum, e) => sum + e.amount_ms, 0)).toBe(0);
    const audit = await auditBalance(db.db, 'unlucky');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
    expect(audit.balanceMs).toBe(GENEROUS_BUDGET.refillGpuSeconds * 1000);
  });

  it('failAttempt with requestFault fails the job at once, on an attempt that had others left', async () => {
    const job = await submitJob(farm, { kind: 'blend', userId: 'direct', params: { ...CHEAP_BLEND, model: 'fake' } });
    const lease = await claimJob(farm, 'w-direct', { models: ['fake'], maxPixels: 1 << 22, executionProvider: 'test' });
    expect(lease?.id).toBe(job.id);
    expect(lease!.maxAttempts).toBeGreaterThan(1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await failAttempt(farm, lease!, 'refused', { requestFault: true, userError: 'refused' })).toBe('failed');
    const [row] = await queryRows<{ status: string; charged_ms: string | number }>(db.db, sql`select status, charged_ms from jobs where id = ${job.id}`);
    expect(row.status).toBe('failed');
    expect(Number(row.charged_ms)).toBeGreaterThanOrEqual(250);
    const audit = await auditBalance(db.db, 'direct');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
    expect(audit.balanceMs).toBe(GENEROUS_BUDGET.refillGpuSeconds * 1000 - Number(row.charged_ms));
  });
});
