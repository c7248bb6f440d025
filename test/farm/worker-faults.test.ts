// A worker's own faults (farm/worker.ts): a render that fails with RenderError workerFault (its
// model's files, its execution provider, a missing ffmpeg) hands the job back without using an
// attempt, and the worker claims no job needing the same for a doubling pause, saying so in its log
// and faultCheck (/readyz) — no claim-and-release loop; a healthy worker renders the job. A model
// the renderer says it cannot load (Renderer.unavailableModels) is never claimed, upscales still are.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { FarmContext } from '../../farm/config.ts';
import { FakeRenderer } from '../../farm/fake-renderer.ts';
import { getJob, submitJob } from '../../farm/jobs.ts';
import { isFarmSideFailure, NO_WORKER_COULD_RENDER_TEXT } from '../../farm/failure.ts';
import { auditBalance, getBudget } from '../../farm/policy/budget.ts';
import { RenderError, type Renderer, type WorkerFaultScope } from '../../farm/renderer.ts';
import { waitForJob } from '../../farm/wait.ts';
import { FarmWorker } from '../../farm/worker.ts';
import { CHEAP_BLEND, GENEROUS_BUDGET } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';
import { until } from '../helpers/until.ts';


/** A renderer offering `model` whose every render fails with a worker fault of `scope` (as the engine's does with its model folder gone). */
function brokenRenderer(model: string, scope: WorkerFaultScope, unavailable: string[] = []): Renderer & { renders: number } {
  const inner = new FakeRenderer({ models: [model], steps: 1, stepMs: 1 });
  const r = {
    renders: 0,
    capabilities: () => inner.capabilities(),
    async render(): Promise<never> {
      r.renders++;
      throw new RenderError(scope === 'worker' ? 'FFMPEG_PATH is set to "/nonexistent" but no file exists there; point it at the binary or unset it.' : '/tmp/m: folder not found', { workerFault: scope });
    },
    unavailableModels: () => unavailable,
  };
  return r;
}

describe('worker faults (pglite)', () => {
  let farm: FarmContext;
  useTestFarm('pglite', { budget: GENEROUS_BUDGET }, (t) => {
    farm = t.farm;
  });

  it('hands the job back without using an attempt, claims nothing on that model during the pause, and a healthy worker renders it', async () => {
    const lines: string[] = [];
    const renderer = brokenRenderer('wf-model', 'model');
    const broken = new FarmWorker({ farm, renderer, id: 'w-broken', log: (line) => lines.push(line), faultPause: { firstMs: 60_000, maxMs: 60_000 } });
    await broken.start();
    let healthy: FarmWorker | undefined;
    try {
      const job = await submitJob(farm, { kind: 'blend', userId: 'wf-a', params: { ...CHEAP_BLEND, model: 'wf-model' } });
      await until(() => lines.some((l) => l.startsWith(`job ${job.id}: this worker cannot render it`)));
      expect(lines.find((l) => l.startsWith(`job ${job.id}: this worker cannot render it`))).toBe(
        `job ${job.id}: this worker cannot render it (/tmp/m: folder not found); handed back to the queue without using an attempt, for another worker. This worker claims no job on model "wf-model" for 60 s (fault 1 in a row), then tries one again`,
      );
      const back = await getJob(farm, job.id);
      expect(back).toMatchObject({ status: 'queued', attempts: 0 });
      expect(broken.faultCheck()).toMatch(/^claims no job on model "wf-model" for (59|60) s: \/tmp\/m: folder not found$/);
      // No loop: the job stays queued, the broken worker does not take it again.
      await sleep(500);
      expect(renderer.renders).toBe(1);
      expect(broken.stats).toMatchObject({ claimed: 1, failedAttempts: 0, released: 1 });
      expect((await getJob(farm, job.id))?.status).toBe('queued');
      healthy = new FarmWorker({ farm, renderer: new FakeRenderer({ models: ['wf-model'], steps: 1, stepMs: 1 }), id: 'w-healthy', log: () => {} });
      await healthy.start();
      const done = await waitForJob(farm, job.id, { timeoutMs: 15_000 });
      expect(done).toMatchObject({ status: 'done', attempts: 1, workerId: 'w-healthy' });
      expect(renderer.renders).toBe(1);
    } finally {
      await healthy?.stop('release', 0);
      await broken.stop('release', 0);
    }
  });

  it('after the pause it tries one job again, and the pause doubles while the fault lasts', async () => {
    const lines: string[] = [];
    const renderer = brokenRenderer('wf-retry', 'model');
    const broken = new FarmWorker({ farm, renderer, id: 'w-retry', log: (line) => lines.push(line), faultPause: { firstMs: 300, maxMs: 10_000 } });
    await broken.start();
    try {
      const job = await submitJob(farm, { kind: 'blend', userId: 'wf-b', params: { ...CHEAP_BLEND, model: 'wf-retry' } });
      await until(() => renderer.renders >= 2);
      await sleep(300);
      // The second fault pauses 600 ms: within that no third claim.
      expect(renderer.renders).toBe(2);
      expect(lines.some((l) => l.includes('for 1 s (fault 2 in a row)'))).toBe(true);
      expect(await getJob(farm, job.id)).toMatchObject({ status: 'queued', attempts: 0 });
    } finally {
      await broken.stop('release', 0);
    }
  });

  it('a job every online worker able to run it hands back (here the only one) fails after as many hand-backs as it has attempts, refunded in full, as the farm\'s fault', async () => {
    const lines: string[] = [];
    const renderer = brokenRenderer('wf-everywhere', 'model');
    const broken = new FarmWorker({ farm, renderer, id: 'w-everywhere', log: (line) => lines.push(line), faultPause: { firstMs: 50, maxMs: 50 } });
    await broken.start();
    try {
      const job = await submitJob(farm, { kind: 'blend', userId: 'wf-e', params: { ...CHEAP_BLEND, model: 'wf-everywhere' } });
      const failed = await waitForJob(farm, job.id, { timeoutMs: 15_000 });
      expect(failed).toMatchObject({ status: 'failed', userError: NO_WORKER_COULD_RENDER_TEXT, chargedGpuSeconds: 0 });
      expect(failed?.error).toMatch(/cannot render it: \/tmp\/m: folder not found \(handed back 3 times, by every online worker able to run it: w-everywhere\)$/);
      expect(renderer.renders).toBe(job.maxAttempts);
      expect(isFarmSideFailure(failed!)).toBe(true);
      // The whole reservation came back: the first request's refill, nothing charged.
      expect((await getBudget(farm, 'wf-e')).balanceGpuSeconds).toBe(GENEROUS_BUDGET.refillGpuSeconds);
      const audit = await auditBalance(farm.db.db, 'wf-e');
      expect(audit.balanceMs).toBe(audit.ledgerSumMs);
      expect((await getBudget(farm, 'wf-e')).heldGpuSeconds).toBe(0);
      expect(lines.filter((l) => l.includes('handed back to the queue without using an attempt'))).toHaveLength(job.maxAttempts - 1);
      expect(lines.some((l) => l.startsWith(`job ${job.id}: this worker cannot render it (/tmp/m: folder not found); the job failed, refunded in full`))).toBe(true);
    } finally {
      await broken.stop('release', 0);
    }
  });

  it('a job one broken worker hands back waits for a healthy worker, even a busy one, however often it is handed back', async () => {
    const renderer = brokenRenderer('wf-busy', 'model');
    // The healthy worker is busy for a while with another job (a slow fake render).
    const healthy = new FarmWorker({ farm, renderer: new FakeRenderer({ models: ['wf-busy'], steps: 20, stepMs: 100 }), id: 'w-busy-healthy', log: () => {} });
    const broken = new FarmWorker({ farm, renderer, id: 'w-busy-broken', log: () => {}, faultPause: { firstMs: 50, maxMs: 50 } });
    await healthy.start();
    try {
      const first = await submitJob(farm, { kind: 'blend', userId: 'wf-f', params: { ...CHEAP_BLEND, model: 'wf-busy' } });
      await until(async () => (await getJob(farm, first.id))?.status === 'running');
      await broken.start();
      const job = await submitJob(farm, { kind: 'blend', userId: 'wf-f', params: { ...CHEAP_BLEND, model: 'wf-busy', prompts: ['p', 'q'] } });
      // Handed back more often than it has attempts while the healthy worker is busy: still queued, not failed.
      await until(() => renderer.renders > job.maxAttempts);
      expect((await getJob(farm, job.id))?.status).not.toBe('failed');
      const done = await waitForJob(farm, job.id, { timeoutMs: 20_000 });
      expect(done).toMatchObject({ status: 'done', workerId: 'w-busy-healthy' });
    } finally {
      await broken.stop('release', 0);
      await healthy.stop('release', 0);
    }
  });

  it('after a pause one job tries again, whatever the worker\'s concurrency; jobs that fail within a pause do not double it', async () => {
    const lines: string[] = [];
    const renderer = brokenRenderer('wf-conc', 'model');
    // Slow failures, so that jobs claimed together are still running when the first fails.
    const slow: Renderer & { renders: number } = { ...renderer, renders: 0, async render(): Promise<never> {
      slow.renders++;
      await sleep(100);
      throw new RenderError('/tmp/m: folder not found', { workerFault: 'model' });
    } };
    const broken = new FarmWorker({ farm, renderer: slow, id: 'w-conc', concurrency: 3, log: (line) => lines.push(line), faultPause: { firstMs: 400, maxMs: 10_000 } });
    await broken.start();
    try {
      for (let i = 0; i < 3; i++) await submitJob(farm, { kind: 'blend', userId: 'wf-g', params: { ...CHEAP_BLEND, model: 'wf-conc', prompts: [`c${i}`, 'd'] } });
      // The three claimed at once fail within the first pause: one pause, not three doublings.
      await until(() => slow.renders >= 3 && lines.filter((l) => l.includes('cannot render it')).length >= 3);
      expect(lines.filter((l) => l.includes('(fault 3 in a row)'))[0]).toMatch(/for 1 s \(fault 3 in a row\)|for 0 s \(fault 3 in a row\)/);
      // After the pause: one try at a time (the next claim waits for it), not three.
      await until(() => slow.renders >= 4, 5_000);
      await sleep(50);
      expect(slow.renders).toBe(4);
    } finally {
      await broken.stop('release', 0);
    }
  });

  it('a worker-wide fault (no ffmpeg) stops every claim', async () => {
    const lines: string[] = [];
    const renderer = brokenRenderer('wf-all', 'worker');
    const broken = new FarmWorker({ farm, renderer, id: 'w-all', log: (line) => lines.push(line), faultPause: { firstMs: 60_000, maxMs: 60_000 } });
    await broken.start();
    try {
      const job = await submitJob(farm, { kind: 'blend', userId: 'wf-c', params: { ...CHEAP_BLEND, model: 'wf-all' } });
      await until(() => renderer.renders === 1 && lines.some((l) => l.includes('handed back')));
      expect(lines.find((l) => l.startsWith(`job ${job.id}: this worker cannot render it`))).toMatch(/This worker claims no job for 60 s/);
      expect(broken.faultCheck()).toMatch(/^claims no job for (59|60) s: FFMPEG_PATH is set to/);
      const other = await submitJob(farm, { kind: 'blend', userId: 'wf-c', params: { ...CHEAP_BLEND, model: 'wf-all', prompts: ['x', 'y'] } });
      await sleep(500);
      expect(renderer.renders).toBe(1);
      expect(await getJob(farm, other.id)).toMatchObject({ status: 'queued', attempts: 0 });
    } finally {
      await broken.stop('release', 0);
    }
  });

  it('claims no job on a model the renderer says did not load', async () => {
    const lines: string[] = [];
    const renderer = brokenRenderer('wf-down', 'model', ['wf-down']);
    const worker = new FarmWorker({ farm, renderer, id: 'w-down', log: (line) => lines.push(line) });
    await worker.start();
    try {
      const job = await submitJob(farm, { kind: 'blend', userId: 'wf-d', params: { ...CHEAP_BLEND, model: 'wf-down' } });
      await sleep(600);
      expect(renderer.renders).toBe(0);
      expect(worker.stats.claimed).toBe(0);
      expect(await getJob(farm, job.id)).toMatchObject({ status: 'queued', attempts: 0 });
      expect(lines).toContain('claiming no job on wf-down: the renderer says the model did not load (upscales and other models are still claimed)');
    } finally {
      await worker.stop('release', 0);
    }
  });
});
