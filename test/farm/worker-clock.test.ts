// A worker's local waits (the progress throttle, worker-fault pauses) run on its monotonic clock,
// not the wall clock: an NTP step of the wall clock (an hour back, an hour ahead) neither freezes
// nor ends them. The monotonic clock is injected; the wall clock is stepped.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { FarmContext } from '../../farm/config.ts';
import { FakeRenderer } from '../../farm/fake-renderer.ts';
import { submitJob } from '../../farm/jobs.ts';
import { RenderError, type Renderer } from '../../farm/renderer.ts';
import type { JobProgress } from '../../farm/types.ts';
import { FarmWorker, ProgressThrottle } from '../../farm/worker.ts';
import { CHEAP_BLEND, GENEROUS_BUDGET } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';
import { until } from '../helpers/until.ts';

const HOUR_MS = 3600_000;

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('ProgressThrottle', () => {
  it('writes the next update one interval later on its monotonic clock, though the wall clock stepped an hour back', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    let mono = 5_000;
    const writes: number[] = [];
    const throttle = new ProgressThrottle(1_000, async (p: JobProgress) => void writes.push(p.fraction), () => mono);
    throttle.push({ stage: 'keyframes', fraction: 0.1 });
    await vi.advanceTimersByTimeAsync(0);
    expect(writes).toEqual([0.1]);

    vi.setSystemTime(Date.now() - HOUR_MS); // NTP steps the wall clock back
    throttle.push({ stage: 'keyframes', fraction: 0.2 });
    mono += 1_000;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(writes).toEqual([0.1, 0.2]);
    await throttle.stop();
  });

  it('still waits the interval when the wall clock steps an hour ahead', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const mono = 5_000;
    const writes: number[] = [];
    const throttle = new ProgressThrottle(1_000, async (p: JobProgress) => void writes.push(p.fraction), () => mono);
    throttle.push({ stage: 'keyframes', fraction: 0.1 });
    await vi.advanceTimersByTimeAsync(0);
    vi.setSystemTime(Date.now() + HOUR_MS);
    throttle.push({ stage: 'keyframes', fraction: 0.2 });
    await vi.advanceTimersByTimeAsync(0);
    expect(writes).toEqual([0.1]);
    await throttle.stop();
  });
});

describe('worker fault pauses on the monotonic clock (pglite)', () => {
  let farm: FarmContext;
  useTestFarm('pglite', { budget: GENEROUS_BUDGET }, (t) => {
    farm = t.farm;
  });

  /** A renderer offering `model` whose every render fails with a model worker fault. */
  function brokenRenderer(model: string): Renderer & { renders: number } {
    const inner = new FakeRenderer({ models: [model], steps: 1, stepMs: 1 });
    const r = {
      renders: 0,
      capabilities: () => inner.capabilities(),
      async render(): Promise<never> {
        r.renders++;
        throw new RenderError('/tmp/m: folder not found', { workerFault: 'model' });
      },
    };
    return r;
  }

  /** What faultCheck says with the wall clock stepped by `stepMs` (only while it reads it). */
  function faultCheckWithWallClockStepped(worker: FarmWorker, stepMs: number): true | string {
    const realNow = Date.now.bind(Date);
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + stepMs);
    try {
      return worker.faultCheck();
    } finally {
      spy.mockRestore();
    }
  }

  it('a pause neither grows when the wall clock steps back nor ends when it steps ahead, and ends on the monotonic clock', async () => {
    let mono = 1_000_000;
    const lines: string[] = [];
    const renderer = brokenRenderer('wc-model');
    const worker = new FarmWorker({ farm, renderer, id: 'w-clock', log: (line) => lines.push(line), faultPause: { firstMs: 60_000, maxMs: 60_000 }, monotonicNow: () => mono });
    await worker.start();
    try {
      const job = await submitJob(farm, { kind: 'blend', userId: 'wc-a', params: { ...CHEAP_BLEND, model: 'wc-model' } });
      await until(() => lines.some((l) => l.startsWith(`job ${job.id}: this worker cannot render it`)));
      expect(worker.faultCheck()).toBe('claims no job on model "wc-model" for 60 s: /tmp/m: folder not found');
      expect(faultCheckWithWallClockStepped(worker, -HOUR_MS)).toBe('claims no job on model "wc-model" for 60 s: /tmp/m: folder not found');
      expect(faultCheckWithWallClockStepped(worker, HOUR_MS)).toBe('claims no job on model "wc-model" for 60 s: /tmp/m: folder not found');
      mono += 30_000;
      expect(faultCheckWithWallClockStepped(worker, -HOUR_MS)).toBe('claims no job on model "wc-model" for 30 s: /tmp/m: folder not found');
      mono += 30_001;
      expect(faultCheckWithWallClockStepped(worker, -HOUR_MS)).toBe(true);
    } finally {
      await worker.stop('release', 0);
    }
  });
});
