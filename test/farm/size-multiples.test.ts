// A model renders only frames whose sides are multiples of its own side multiple (the engine's
// ModelFolder.sizeMultiple: 64 px for SD 1.5), more than the farm's floor of 8 (LIMITS.side).
// Workers advertise it per model (WorkerCapabilities.modelSizeMultiples): a submission no capable
// worker's model can render is refused before anything is queued or reserved, naming the nearest
// sizes; the claim never hands a worker a job its model cannot render; an older worker (no
// multiples) still claims every size the farm allows.
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import type { FarmDb } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { NoCapableWorkerError } from '../../farm/errors.ts';
import { FakeRenderer } from '../../farm/fake-renderer.ts';
import { JobParamsError } from '../../farm/job-params.ts';
import { cancelJob, getJob, retryJob, submitJob, type SubmitJobInput } from '../../farm/jobs.ts';
import { LIMITS, nearestSides, sideMultipleFor } from '../../farm/limits.ts';
import { claimJob } from '../../farm/queue.ts';
import type { WorkerCapabilities } from '../../farm/types.ts';
import { waitForJob } from '../../farm/wait.ts';
import { FarmWorker } from '../../farm/worker.ts';
import { canRun, jobNeeds, listWorkers, registerWorker, sizeMultipleIssues, sizeMultipleOf } from '../../farm/worker-registry.ts';
import { parseJobParams } from '../../farm/job-params.ts';
import { SIZE_CHOICES } from '../../bot/sizes.ts';
import { BACKENDS, CHEAP_BLEND, countRows, GENEROUS_BUDGET } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

const caps = (multiples: Record<string, number> | undefined, models = Object.keys(multiples ?? {})): WorkerCapabilities => ({
  models,
  modelAbilities: Object.fromEntries(models.map((m) => [m, ['text', 'picture']])),
  maxPixels: 1 << 22,
  executionProvider: 'cuda',
  ...(multiples ? { modelSizeMultiples: multiples } : {}),
});

const blend = (model: string, width: number, height: number, userId = 'member'): SubmitJobInput => ({ kind: 'blend', userId, params: { ...CHEAP_BLEND, model, width, height } });

const refusalOf = (promise: Promise<unknown>): Promise<unknown> => promise.then(() => undefined, (error: unknown) => error);

describe('side multiples', () => {
  it('a model needs the farm floor and its own multiple both; a bad advertised value is ignored', () => {
    expect(LIMITS.side.multipleOf).toBe(8);
    expect([sideMultipleFor(undefined), sideMultipleFor(64), sideMultipleFor(32), sideMultipleFor(4), sideMultipleFor(1), sideMultipleFor(24)]).toEqual([8, 64, 32, 8, 8, 24]);
    expect([sideMultipleFor(0), sideMultipleFor(-64), sideMultipleFor(6.5), sideMultipleFor(NaN), sideMultipleFor(1 << 20)]).toEqual([8, 8, 8, 8, 8]);
    expect(sizeMultipleOf(caps({ sd15: 64 }), 'sd15')).toBe(64);
    // Older workers, other models, "*" and inherited names: the floor.
    expect(sizeMultipleOf(caps(undefined, ['sd15']), 'sd15')).toBe(8);
    expect(sizeMultipleOf(caps({ sd15: 64 }), 'other')).toBe(8);
    expect(sizeMultipleOf(caps({ sd15: 64 }), 'constructor')).toBe(8);
  });

  it('the nearest sides are the multiples either side, within the farm range', () => {
    expect(nearestSides(520, 64)).toEqual([512, 576]);
    expect(nearestSides(512, 64)).toEqual([512]);
    // Below the range's minimum (and the multiple itself) only the side above; past its maximum only the one below.
    expect(nearestSides(72, 128)).toEqual([128]);
    expect(nearestSides(2040, 96)).toEqual([2016]);
    expect(nearestSides(2040, 64)).toEqual([1984, 2048]);
  });

  it('canRun: the sides must be multiples of the worker model; upscales take any size', () => {
    const need = jobNeeds('blend', parseJobParams('blend', { ...CHEAP_BLEND, model: 'sd15', width: 520, height: 512 }));
    expect([need.width, need.height]).toEqual([520, 512]);
    expect(canRun(caps({ sd15: 64 }), need)).toBe(false);
    expect(canRun(caps({ sd15: 8 }), need)).toBe(true);
    expect(canRun(caps(undefined, ['sd15']), need)).toBe(true);
    expect(canRun(caps({ sd15: 64 }), { ...need, width: 576 })).toBe(true);
    const upscale = jobNeeds('upscale', parseJobParams('upscale', { ...CHEAP_BLEND, width: 520, height: 520, upscaleFactor: 2 }));
    expect(upscale.width).toBeUndefined();
    expect(canRun({ ...caps({ demo: 64 }), upscalers: ['esrgan-slim'] }, upscale)).toBe(true);
  });

  it('says which sides are off, for the smallest multiple among the workers that could otherwise run it', () => {
    const need = jobNeeds('blend', parseJobParams('blend', { ...CHEAP_BLEND, model: 'sd15', width: 520, height: 600 }));
    expect(sizeMultipleIssues(need, [{ capabilities: caps({ sd15: 64 }) }])).toEqual([
      'width 520 px is not a multiple of 64, which model "sd15" needs; use 512 or 576',
      'height 600 px is not a multiple of 64, which model "sd15" needs; use 576 or 640',
    ]);
    expect(sizeMultipleIssues(need, [{ capabilities: caps({ sd15: 64 }) }, { capabilities: caps({ sd15: 32 }) }])).toEqual([
      'width 520 px is not a multiple of 32, which model "sd15" needs; use 512 or 544',
      'height 600 px is not a multiple of 32, which model "sd15" needs; use 576 or 608',
    ]);
    // The size is not what stops them: another model, too many pixels, or a worker that can.
    expect(sizeMultipleIssues(need, [{ capabilities: caps({ other: 64 }) }])).toEqual([]);
    expect(sizeMultipleIssues(need, [{ capabilities: { ...caps({ sd15: 64 }), maxPixels: 100 } }])).toEqual([]);
    expect(sizeMultipleIssues(need, [{ capabilities: caps({ sd15: 64 }) }, { capabilities: caps(undefined, ['sd15']) }])).toEqual([]);
  });

  it("the bot's size choices are multiples of 64, the largest side multiple of the released Stable Diffusion UNets (SD 1.x and 2.x; SDXL needs 32)", () => {
    for (const { width, height } of Object.values(SIZE_CHOICES)) {
      expect([width % 64, height % 64]).toEqual([0, 0]);
      expect([width % sideMultipleFor(64), height % sideMultipleFor(64)]).toEqual([0, 0]);
    }
  });
});

describe.each(BACKENDS)('side multiples at submission and claim on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;
  useTestFarm(backend, { budget: GENEROUS_BUDGET }, (t) => ({ db, farm } = t));

  it('workers advertise their multiples through the registry', async () => {
    await registerWorker(farm, { id: 'listed', host: 'h', pid: 1, concurrency: 1, capabilities: caps({ listed: 64 }) });
    const [worker] = (await listWorkers(farm)).filter((w) => w.id === 'listed');
    expect(worker.capabilities.modelSizeMultiples).toEqual({ listed: 64 });
  });

  it('a size no online worker model renders is refused at submission, naming the nearest sizes; nothing is queued or reserved', async () => {
    await registerWorker(farm, { id: 'sd15-1', host: 'h', pid: 2, concurrency: 1, capabilities: caps({ sd15: 64 }) });
    const jobsBefore = await countRows(db, 'jobs');
    for (const requireCapableWorker of [true, false]) {
      const refusal = await refusalOf(submitJob(farm, { ...blend('sd15', 520, 512, 'refused'), requireCapableWorker }));
      expect(refusal).toBeInstanceOf(JobParamsError);
      expect((refusal as JobParamsError).message).toBe('Invalid job parameters: width 520 px is not a multiple of 64, which model "sd15" needs; use 512 or 576.');
    }
    expect(await countRows(db, 'jobs')).toBe(jobsBefore);
    expect(await countRows(db, 'budget_ledger', sql`user_id = 'refused' and amount_ms < 0`)).toBe(0);
    // A size it renders is queued; a model nobody has is still NoCapableWorkerError.
    expect((await submitJob(farm, { ...blend('sd15', 512, 576), requireCapableWorker: true })).status).toBe('queued');
    expect(await refusalOf(submitJob(farm, { ...blend('nobody', 520, 512), requireCapableWorker: true }))).toBeInstanceOf(NoCapableWorkerError);
  });

  it('the claim hands a job only to a worker whose model renders its size; an older worker (no multiples) takes every size', async () => {
    const sd64 = caps({ mixed: 64 });
    const sd32 = caps({ mixed: 32 });
    const old = caps(undefined, ['mixed']);
    await registerWorker(farm, { id: 'mixed-64', host: 'h', pid: 3, concurrency: 1, capabilities: sd64 });
    await registerWorker(farm, { id: 'mixed-32', host: 'h', pid: 4, concurrency: 1, capabilities: sd32 });
    // 544 is a multiple of 32, not of 64: accepted for the 32 worker.
    const job = await submitJob(farm, blend('mixed', 544, 512));
    expect(await claimJob(farm, 'mixed-64', sd64)).toBeUndefined();
    expect((await claimJob(farm, 'mixed-32', sd32))?.id).toBe(job.id);
    // 520 fits neither: refused while they are the workers known.
    expect(await refusalOf(submitJob(farm, blend('mixed', 520, 512)))).toMatchObject({ issues: ['width 520 px is not a multiple of 32, which model "mixed" needs; use 512 or 544'] });
    // A worker advertising no multiples (an older version) renders it: accepted, and only that one claims it.
    await registerWorker(farm, { id: 'mixed-old', host: 'h', pid: 5, concurrency: 1, capabilities: old });
    const odd = await submitJob(farm, blend('mixed', 520, 512));
    expect(await claimJob(farm, 'mixed-64', sd64)).toBeUndefined();
    expect(await claimJob(farm, 'mixed-32', sd32)).toBeUndefined();
    expect((await claimJob(farm, 'mixed-old', old))?.id).toBe(odd.id);
  });

  it('a job queued while its worker advertised no multiple is left by that worker once it advertises 64; a retry is checked again', async () => {
    // Queued with no multiples known (an older worker): 520 px passed.
    const old = caps(undefined, ['legacy']);
    await registerWorker(farm, { id: 'legacy-old', host: 'h', pid: 6, concurrency: 1, capabilities: old });
    const queued = await submitJob(farm, blend('legacy', 520, 520));
    // The worker restarts on a version that advertises 64: it no longer claims the job.
    await registerWorker(farm, { id: 'legacy-old', host: 'h', pid: 6, concurrency: 1, capabilities: caps({ legacy: 64 }) });
    expect(await claimJob(farm, 'legacy-old', caps({ legacy: 64 }))).toBeUndefined();
    // Cancelled, then retried: refused in submission's words, the nearest sizes named.
    await cancelJob(farm, queued.id);
    expect(await refusalOf(retryJob(farm, queued.id))).toMatchObject({
      issues: ['width 520 px is not a multiple of 64, which model "legacy" needs; use 512 or 576', 'height 520 px is not a multiple of 64, which model "legacy" needs; use 512 or 576'],
    });
    expect((await getJob(farm, queued.id))?.status).toBe('cancelled');
  });
});

// A worker end to end: a job queued while no worker was known waits rather than being handed to a
// worker whose model would refuse it at render time (and charge its owner for the attempt).
describe.each(BACKENDS)('a worker with a side multiple on %s', (backend) => {
  let farm: FarmContext;
  useTestFarm(backend, { budget: GENEROUS_BUDGET }, (t) => ({ farm } = t));

  it('renders the sizes its model takes and never claims the others', async () => {
    const odd = await submitJob(farm, blend('sd15', 520, 512));
    const worker = new FarmWorker({ farm, renderer: new FakeRenderer({ models: ['sd15'], sizeMultiples: { sd15: 64 }, stepMs: 1 }), id: 'sd15-worker', log: () => {} });
    await worker.start();
    try {
      // Now that the worker is known, the same size is refused at submission.
      expect(await refusalOf(submitJob(farm, blend('sd15', 520, 512)))).toBeInstanceOf(JobParamsError);
      const even = await submitJob(farm, blend('sd15', 512, 512));
      expect((await waitForJob(farm, even.id, { timeoutMs: 20_000 })).status).toBe('done');
      const waiting = await getJob(farm, odd.id);
      expect({ status: waiting?.status, attempts: waiting?.attempts, charged: waiting?.chargedGpuSeconds }).toEqual({ status: 'queued', attempts: 0, charged: null });
    } finally {
      await worker.stop('release');
    }
  });
});
