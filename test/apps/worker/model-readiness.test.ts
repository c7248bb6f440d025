// A worker's model readiness (apps/worker/model-readiness.ts): unready until the model is loaded;
// a failed warm-up is logged in one line with its reason, /readyz says why, and the warm-up is
// retried after MODEL_LOAD_RETRY's back-off (5 s doubling to 5 min) until the model loads, or at
// once when a job finished (it may have loaded the model itself).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MODEL_LOAD_RETRY, ModelReadiness } from '../../../apps/worker/model-readiness.ts';
import { FakeRenderer } from '../../../farm/fake-renderer.ts';
import { parseJobParams } from '../../../farm/job-params.ts';
import type { ClaimedJob } from '../../../farm/types.ts';

function captured() {
  const lines: Array<{ level: string; line: string }> = [];
  return { lines, log: (level: 'info' | 'warn', line: string) => lines.push({ level, line }) };
}

/** A warm-up that fails (with a two-line message) `failures` times, then loads. */
function flakyWarmUp(failures: number) {
  const warmUp = vi.fn(async () => {
    if (warmUp.mock.calls.length <= failures) throw new Error('unet/model.onnx:\n  file not found');
  });
  return warmUp;
}

const job: ClaimedJob = { id: 1, kind: 'blend', userId: 'u', params: parseJobParams('blend', { prompts: ['a', 'b'], seeds: [1, 2] }), model: 'm', pixels: 0, attempt: 1, maxAttempts: 3, parentJobId: null, reservedGpuSeconds: 1, leaseToken: 't' };
const context = () => ({ signal: new AbortController().signal, onProgress: () => {} });

afterEach(() => {
  vi.useRealTimers();
});

describe('model readiness', () => {
  it('is unready while the renderer and then the model load, ready once the first warm-up succeeds', async () => {
    const { lines, log } = captured();
    const readiness = new ModelReadiness({ log });
    expect(readiness.check()).toBe('the renderer is still loading');
    let loaded!: () => void;
    readiness.start(() => new Promise<void>((resolve) => (loaded = resolve)));
    expect(readiness.check()).toBe('the model is still loading');
    loaded();
    await vi.waitFor(() => expect(readiness.check()).toBe(true));
    expect(lines).toEqual([]);
  });

  it('logs a failed warm-up in one line, says why on /readyz, and retries 5 s later, doubling up to 5 min, until the model loads', async () => {
    vi.useFakeTimers();
    expect(MODEL_LOAD_RETRY).toEqual({ firstMs: 5_000, maxMs: 300_000 });
    const { lines, log } = captured();
    const readiness = new ModelReadiness({ log });
    const warmUp = flakyWarmUp(8);
    readiness.start(warmUp);
    await vi.advanceTimersByTimeAsync(0);
    expect(readiness.check()).toBe('the model did not load: unet/model.onnx: file not found (try 1; next try in 5 s)');
    expect(lines).toEqual([{ level: 'warn', line: 'the model did not load (try 1): unet/model.onnx: file not found; the worker stays unready and tries again in 5 s' }]);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(readiness.check()).toMatch(/\(try 1; next try in 3 s\)$/);

    // The pause before each next try: doubling from 5 s, at most 5 min.
    const pauses = [5, 10, 20, 40, 80, 160, 300, 300];
    for (const [i, pause] of pauses.entries()) {
      await vi.advanceTimersByTimeAsync(pause * 1000 - 1 - (i === 0 ? 2_000 : 0));
      expect(warmUp).toHaveBeenCalledTimes(i + 1);
      expect(readiness.check()).not.toBe(true);
      await vi.advanceTimersByTimeAsync(1);
      expect(warmUp).toHaveBeenCalledTimes(i + 2);
      if (i + 2 <= 8) expect(lines.at(-1)?.line).toMatch(new RegExp(`^the model did not load \\(try ${i + 2}\\): .*; the worker stays unready and tries again in ${Math.min(pause * 2, 300)} s$`));
    }
    expect(readiness.check()).toBe(true);
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(8);
    expect(lines.at(-1)).toEqual({ level: 'info', line: 'the model loaded on try 9; the worker is ready' });
    // Loaded: no more tries.
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(warmUp).toHaveBeenCalledTimes(9);
  });

  it('is ready as soon as a job that loaded the model finishes, without waiting for the next try', async () => {
    const { lines, log } = captured();
    const readiness = new ModelReadiness({ log });
    // The model cannot be loaded by a warm-up, only by a render (as a job that loads it once the files are fixed).
    const fake = new FakeRenderer({ models: ['m'], steps: 1, stepMs: 1, warmUpFailures: 1_000 });
    const warmUp = vi.fn(() => fake.warmUp());
    const renderer = readiness.watch(fake);
    readiness.start(warmUp);
    await vi.waitFor(() => expect(readiness.check()).toMatch(/^the model did not load: fake model load failure/));

    await renderer.render(job, context());
    await vi.waitFor(() => expect(readiness.check()).toBe(true), { timeout: 1000 });
    // Long before the scheduled retry (5 s): the try made when the job finished found the model loaded.
    expect(warmUp).toHaveBeenCalledTimes(2);
    expect(lines.at(-1)).toEqual({ level: 'info', line: 'the model loaded on try 2; the worker is ready' });
  });

  it('a job that did not load the model leaves it unready, with the next pause longer', async () => {
    vi.useFakeTimers();
    const { log } = captured();
    const readiness = new ModelReadiness({ log });
    const warmUp = flakyWarmUp(100);
    const renderer = readiness.watch({ capabilities: () => ({ models: ['m'], maxPixels: 1, executionProvider: 'test' }), render: async () => ({ video: new Uint8Array(1), format: 'mp4', metadata: {}, gpuSeconds: 0 }) });
    readiness.start(warmUp);
    await vi.advanceTimersByTimeAsync(0);
    await renderer.render(job, context());
    await vi.advanceTimersByTimeAsync(0);
    expect(warmUp).toHaveBeenCalledTimes(2);
    expect(readiness.check()).toMatch(/^the model did not load: .* \(try 2; next try in 10 s\)$/);
  });

  it('stops trying when the worker shuts down, and says so', async () => {
    vi.useFakeTimers();
    const { log } = captured();
    const readiness = new ModelReadiness({ log });
    const warmUp = flakyWarmUp(100);
    readiness.start(warmUp);
    await vi.advanceTimersByTimeAsync(0);
    readiness.stop();
    await vi.advanceTimersByTimeAsync(600_000);
    expect(warmUp).toHaveBeenCalledTimes(1);
    expect(readiness.check()).toBe('the worker is shutting down');
  });

  it('is ready at once for a renderer without a warm-up', () => {
    const readiness = new ModelReadiness({ log: () => {} });
    readiness.start(undefined);
    expect(readiness.check()).toBe(true);
  });
});
