// A worker's model readiness (apps/worker/model-readiness.ts): unready until the model is loaded;
// a failed warm-up is logged in one line with its reason, /readyz says why, and the warm-up is
// retried after MODEL_LOAD_RETRY's back-off (5 s doubling to 5 min) until the model loads, or at
// once when a job on that model finished (it loaded the model itself); upscales and jobs on the
// worker's other models leave the back-off alone.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_RENDERER_MODULE, FAKE_RENDERER_MODULE, warmedModelJobs } from '../../../apps/worker/load-renderer.ts';
import { MODEL_LOAD_RETRY, ModelReadiness } from '../../../apps/worker/model-readiness.ts';
import { FakeRenderer } from '../../../farm/fake-renderer.ts';
import { RenderError } from '../../../farm/renderer.ts';
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
/** `job` as another kind of job, on another model. */
const jobOf = (kind: ClaimedJob['kind'], model: string): ClaimedJob => ({ ...job, kind, model });
/** A renderer whose renders all succeed without loading anything. */
const succeeding = () => ({ capabilities: () => ({ models: ['m'], maxPixels: 1, executionProvider: 'test' }), render: async () => ({ video: new Uint8Array(1), format: 'mp4' as const, metadata: {}, gpuSeconds: 0 }) });

afterEach(() => {
  vi.useRealTimers();
});

describe('model readiness', () => {
  it('reports the warmed model unavailable (no job on it is claimed) while it is known not to load, and available once it loads', async () => {
    vi.useFakeTimers();
    const { log } = captured();
    const readiness = new ModelReadiness({ log });
    const renderer = readiness.watch(succeeding(), { usesWarmedModel: (j) => j.model === 'm', model: 'm' });
    // The first load under way: jobs may be claimed (each loads the model itself).
    let loaded!: () => void;
    let fail!: (e: Error) => void;
    readiness.start(() => new Promise<void>((resolve, reject) => ((loaded = resolve), (fail = reject))));
    expect(renderer.unavailableModels!()).toEqual([]);
    fail(new Error('/tmp/m: folder not found'));
    await vi.advanceTimersByTimeAsync(0);
    expect(renderer.unavailableModels!()).toEqual(['m']);
    // Still down while the retry is under way.
    await vi.advanceTimersByTimeAsync(5_000);
    expect(renderer.unavailableModels!()).toEqual(['m']);
    loaded();
    await vi.advanceTimersByTimeAsync(0);
    expect(readiness.check()).toBe(true);
    expect(renderer.unavailableModels!()).toEqual([]);
  });

  it('a render of the warmed model that fails with a worker fault makes the worker unready and the model unavailable, retried after the back-off', async () => {
    vi.useFakeTimers();
    const { lines, log } = captured();
    const readiness = new ModelReadiness({ log });
    let broken = true;
    const failing = {
      ...succeeding(),
      render: async () => {
        throw new RenderError('/tmp/m: folder not found', { workerFault: 'model' });
      },
    };
    const renderer = readiness.watch(failing, { usesWarmedModel: (j) => j.kind !== 'upscale' && j.model === 'm', model: 'm' });
    const warmUp = vi.fn(async () => {
      if (broken && warmUp.mock.calls.length > 1) throw new Error('/tmp/m: folder not found');
    });
    readiness.start(warmUp);
    await vi.advanceTimersByTimeAsync(0);
    expect(readiness.check()).toBe(true);
    // A job on another model, or an upscale, failing so says nothing about the warmed model.
    await expect(renderer.render(jobOf('upscale', 'm'), context())).rejects.toThrow();
    await expect(renderer.render(jobOf('blend', 'other'), context())).rejects.toThrow();
    expect(readiness.check()).toBe(true);
    await expect(renderer.render(job, context())).rejects.toThrow(/folder not found/);
    expect(readiness.check()).toMatch(/^the model did not load: \/tmp\/m: folder not found/);
    expect(renderer.unavailableModels!()).toEqual(['m']);
    expect(lines.at(-1)).toEqual({ level: 'warn', line: 'the model did not load (in a render): /tmp/m: folder not found; the worker stays unready, claims no job on it, and tries again in 5 s' });
    broken = false;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(readiness.check()).toBe(true);
    expect(renderer.unavailableModels!()).toEqual([]);
  });

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
    expect(lines).toEqual([{ level: 'warn', line: 'the model did not load (try 1): unet/model.onnx: file not found; the worker stays unready, claims no job on it, and tries again in 5 s' }]);
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
      if (i + 2 <= 8) expect(lines.at(-1)?.line).toMatch(new RegExp(`^the model did not load \\(try ${i + 2}\\): .*; the worker stays unready, claims no job on it, and tries again in ${Math.min(pause * 2, 300)} s$`));
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
    const renderer = readiness.watch(fake, { usesWarmedModel: (j) => j.model === 'm' });
    readiness.start(warmUp);
    await vi.waitFor(() => expect(readiness.check()).toMatch(/^the model did not load: fake model load failure/));

    await renderer.render(job, context());
    await vi.waitFor(() => expect(readiness.check()).toBe(true), { timeout: 1000 });
    // Long before the scheduled retry (5 s): the try made when the job finished found the model loaded.
    expect(warmUp).toHaveBeenCalledTimes(2);
    expect(lines.at(-1)).toEqual({ level: 'info', line: 'the model loaded on try 2; the worker is ready' });
  });

  /** A worker whose main model ('m') keeps failing to load, watching a renderer whose jobs succeed; the first try made. */
  async function failingMainModel() {
    vi.useFakeTimers();
    const { log } = captured();
    const readiness = new ModelReadiness({ log });
    const warmUp = flakyWarmUp(100);
    const spec = { module: DEFAULT_RENDERER_MODULE, options: { modelDir: '/models/m', modelId: 'm' }, threads: 1 };
    const renderer = readiness.watch(succeeding(), { usesWarmedModel: warmedModelJobs(spec, succeeding().capabilities()) });
    readiness.start(warmUp);
    await vi.advanceTimersByTimeAsync(0);
    return { readiness, warmUp, renderer };
  }

  it('makes no extra try after upscales and jobs on other models, which never load the warmed model', async () => {
    const { readiness, warmUp, renderer } = await failingMainModel();
    // An upscale of a movie made with the model, a /vary on the variation model, an inpainting on the inpainting model.
    for (const other of [jobOf('upscale', 'm'), jobOf('vary', 'variation'), jobOf('blend', 'inpaint')]) {
      await renderer.render(other, context());
      await vi.advanceTimersByTimeAsync(0);
    }
    expect(warmUp).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(readiness.check()).toMatch(/^the model did not load: .* \(try 1; next try in 4 s\)$/);
    // The back-off is kept: the next try comes when it was scheduled, 5 s after the first.
    await vi.advanceTimersByTimeAsync(4_000);
    expect(warmUp).toHaveBeenCalledTimes(2);
    expect(readiness.check()).toMatch(/^the model did not load: .* \(try 2; next try in 10 s\)$/);
  });

  it('a job on the warmed model that did not leave it loaded keeps the worker unready, with the next pause longer', async () => {
    const { readiness, warmUp, renderer } = await failingMainModel();
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

// Which jobs use the model a worker's warm-up loads: the engine adapter's main model (its modelId,
// else the folder's name, else "demo"), named by any job but an upscale; another renderer module's
// first advertised model.
describe('warmed-model jobs', () => {
  const engine = (options: object) => warmedModelJobs({ module: DEFAULT_RENDERER_MODULE, options, threads: 1 }, { models: ['ignored'], maxPixels: 1, executionProvider: 'cpu' });

  it('for the engine adapter: jobs naming its main model, upscales excepted', () => {
    // A real folder is offered as "demo", the id every bot command asks for, unless BLENDFARM_MODEL_ID names it.
    const uses = engine({ modelDir: '/models/sd15/', inpaintModelDir: '/models/inp', variationModelDir: '/models/var' });
    expect(['blend', 'movie', 'reroll', 'extend'].map((kind) => uses(jobOf(kind as ClaimedJob['kind'], 'demo')))).toEqual([true, true, true, true]);
    expect(uses(jobOf('upscale', 'demo'))).toBe(false);
    expect(uses(jobOf('vary', 'variation'))).toBe(false);
    expect(uses(jobOf('blend', 'inpaint'))).toBe(false);
    expect(uses(jobOf('blend', 'sd15'))).toBe(false);
    // A variation folder as the main model: a /vary on it loads it.
    expect(engine({ modelDir: '/models/sd15', modelId: 'sd15' })(jobOf('vary', 'sd15'))).toBe(true);
    expect(engine({ modelDir: '/models/sd15', modelId: 'main' })(jobOf('blend', 'main'))).toBe(true);
    expect(engine({ modelDir: '/models/sd15', modelId: 'main' })(jobOf('blend', 'sd15'))).toBe(false);
    expect(engine({})(jobOf('blend', 'demo'))).toBe(true);
  });

  it('for another renderer module: its first model, or any for "*"', () => {
    const fake = (models: string[]) => warmedModelJobs({ module: FAKE_RENDERER_MODULE, options: {}, threads: 1 }, { models, maxPixels: 1, executionProvider: 'fake' });
    expect(fake(['proc', 'other'])(jobOf('blend', 'proc'))).toBe(true);
    expect(fake(['proc', 'other'])(jobOf('blend', 'other'))).toBe(false);
    expect(fake(['*'])(jobOf('movie', 'anything'))).toBe(true);
    expect(fake(['*'])(jobOf('upscale', 'anything'))).toBe(false);
  });
});
