// The worker_threads adapter, with the stand-in renderer loaded by path: renders happen off the
// main thread, progress and errors cross back, aborts work, and a render that ignores its abort
// loses its thread instead of blocking the worker.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFakeVideo, FAKE_TOO_LARGE } from '../../farm/fake-renderer.ts';
import { parseJobParams } from '../../farm/job-params.ts';
import { FAKE_RENDERER_MODULE } from '../../apps/worker/load-renderer.ts';
import { isRequestFault, type RenderContext, workerFaultOf } from '../../farm/renderer.ts';
import { createThreadRenderer, type ThreadRenderer } from '../../farm/thread-renderer.ts';
import type { ClaimedJob, JobProgress } from '../../farm/types.ts';
import { testModelDir } from '../../models/paths.ts';

let nextId = 1;
function job(prompts: string[]): ClaimedJob {
  return {
    id: nextId++,
    kind: 'blend',
    userId: 'u',
    params: parseJobParams('blend', { prompts, seeds: [1, 2] }),
    model: 'demo',
    pixels: 512 * 512,
    attempt: 1,
    maxAttempts: 3,
    parentJobId: null,
    reservedGpuSeconds: 1,
    leaseToken: 'token',
  };
}

function context(signal = new AbortController().signal): RenderContext & { progress: JobProgress[] } {
  const progress: JobProgress[] = [];
  return { signal, onProgress: (p) => progress.push(p), progress };
}

describe('thread renderer', () => {
  let renderer: ThreadRenderer;

  beforeAll(async () => {
    renderer = await createThreadRenderer({
      module: FAKE_RENDERER_MODULE,
      rendererOptions: { models: ['demo', 'sdxl'], maxPixels: 1234567, steps: 4, stepMs: 20, blockThread: true },
      threads: 2,
      abortGraceMs: 300,
    });
  });
  afterAll(async () => {
    await renderer?.close();
  });

  it('reports the module capabilities and renders off the main thread', async () => {
    expect(renderer.capabilities()).toEqual({ models: ['demo', 'sdxl'], maxPixels: 1234567, executionProvider: 'fake', device: 'fake renderer (test double)', upscalers: ['*'] });
    const ctx = context();
    const j = job(['a', 'b']);
    const result = await renderer.render(j, ctx);
    expect(decodeFakeVideo(result.video)).toEqual({ jobId: j.id, attempt: 1, prompts: ['a', 'b'], seeds: [1, 2] });
    expect(result.format).toBe('mp4');
    expect(result.metadata.threadId).toBeGreaterThan(0);
    expect(ctx.progress.map((p) => p.fraction)).toEqual([0.25, 0.5, 0.75, 1]);
  });

  it('runs one render per thread at the same time', async () => {
    const results = await Promise.all([renderer.render(job(['a', 'b']), context()), renderer.render(job(['c', 'd']), context())]);
    expect(new Set(results.map((r) => r.metadata.threadId)).size).toBe(2);
  });

  it('passes a permanent error back as not retryable', async () => {
    const error = await renderer.render(job(['[fake permanent] a', 'b']), context()).catch((e: unknown) => e);
    expect(error).toMatchObject({ message: 'fake permanent failure', retryable: false, name: 'RenderError' });
    expect((error as { userMessage?: string }).userMessage).toBeUndefined();
  });

  it('passes the text for the job\'s owner back from the thread (userMessage)', async () => {
    const error = await renderer.render(job(['[fake refuse] a', 'b']), context()).catch((e: unknown) => e);
    expect(error).toMatchObject({ message: 'fake refusal: use a smaller size', userMessage: 'fake refusal: use a smaller size', retryable: false });
  });

  it('passes the request\'s own fault back from the thread (requestFault: the job is charged the time it ran); a farm fault stays refundable', async () => {
    const error = await renderer.render(job(['[fake toolarge] a', 'b']), context()).catch((e: unknown) => e);
    expect(error).toMatchObject({ message: FAKE_TOO_LARGE, userMessage: FAKE_TOO_LARGE, retryable: false, requestFault: true });
    expect(isRequestFault(error)).toBe(true);
    const farmFault = await renderer.render(job(['[fake permanent] a', 'b']), context()).catch((e: unknown) => e);
    expect(isRequestFault(farmFault)).toBe(false);
  });

  it('passes a worker fault back from the thread (workerFault: the job goes back unspent, the worker stops claiming it)', async () => {
    const error = await renderer.render(job(['[fake workerfault] a', 'b']), context()).catch((e: unknown) => e);
    expect(error).toMatchObject({ message: 'fake worker fault: the model folder is gone', workerFault: 'model', retryable: true });
    expect(workerFaultOf(error)).toBe('model');
    const whole = await renderer.render(job(['[fake workerfault=worker] a', 'b']), context()).catch((e: unknown) => e);
    expect(workerFaultOf(whole)).toBe('worker');
    expect(workerFaultOf(await renderer.render(job(['[fake permanent] a', 'b']), context()).catch((e: unknown) => e))).toBeUndefined();
  });

  it('aborts a render, and replaces a thread whose render ignores the abort', async () => {
    const controller = new AbortController();
    const running = renderer.render(job(['[fake ms=200] slow', 'b']), context(controller.signal));
    setTimeout(() => controller.abort(new Error('job cancelled')), 50);
    await expect(running).rejects.toThrow(/job cancelled/);

    const stuck = new AbortController();
    const hanging = renderer.render(job(['[fake hang] stuck', 'b']), context(stuck.signal));
    setTimeout(() => stuck.abort(new Error('job cancelled')), 50);
    await expect(hanging).rejects.toThrow(/did not stop within 300 ms/);

    // Both slots still work afterwards.
    const after = await Promise.all([renderer.render(job(['a', 'b']), context()), renderer.render(job(['c', 'd']), context())]);
    expect(after).toHaveLength(2);
  });

  it('waits out an abort grace longer than one Node timer takes (30 days), instead of terminating the thread at once', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on('warning', onWarning);
    const patient = await createThreadRenderer({ module: FAKE_RENDERER_MODULE, rendererOptions: { models: ['demo'], maxPixels: 1234567, steps: 4, stepMs: 20, blockThread: true }, abortGraceMs: 30 * 24 * 3600 * 1000 });
    try {
      const stuck = new AbortController();
      const hanging = patient.render(job(['[fake hang] stuck', 'b']), context(stuck.signal));
      const settled = hanging.then(() => 'resolved', (e: Error) => e.message);
      setTimeout(() => stuck.abort(new Error('job cancelled')), 50);
      // Node's setTimeout would have fired after 1 ms and terminated the thread.
      const early = await Promise.race([settled, new Promise((resolve) => setTimeout(() => resolve('still waiting'), 400))]);
      expect(early).toBe('still waiting');
      await patient.close();
      expect(await settled).toMatch(/^render thread failed: render thread exited/);
      expect(warnings).not.toContain('TimeoutOverflowWarning');
    } finally {
      process.off('warning', onWarning);
      await patient.close();
    }
  });

  it('fails at start-up with the module error when the renderer cannot load', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blendfarm-broken-'));
    fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
    const broken = path.join(dir, 'broken-renderer.ts');
    fs.writeFileSync(broken, `export function createRenderer(): never { throw new Error('model folder /nowhere is missing'); }\n`);
    await expect(createThreadRenderer({ module: broken })).rejects.toThrow(/^Could not load the renderer file:.*broken-renderer\.ts: model folder \/nowhere is missing$/);
    fs.writeFileSync(broken, `export const somethingElse = 1;\n`);
    await expect(createThreadRenderer({ module: broken })).rejects.toThrow(/exports no function "createRenderer"/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

// Worker readiness (/readyz) waits for warmUp: the engine adapter loads its model in every thread,
// and a model that cannot load rejects with the engine's own message.
describe('thread renderer warm-up (engine adapter)', () => {
  const ENGINE_RENDERER = 'apps/worker/engine-renderer.ts';

  it('loads the model in every thread before the first job', async () => {
    const renderer = await createThreadRenderer({ module: ENGINE_RENDERER, rendererOptions: { modelDir: testModelDir('demo') }, threads: 2 });
    try {
      await expect(renderer.warmUp!()).resolves.toBeUndefined();
    } finally {
      await renderer.close();
    }
  });

  it('rejects, never hangs, when the thread dies while loading', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dying-renderer-'));
    const module = path.join(dir, 'dying.mjs');
    // Loading the model kills the thread, as running out of memory in the runtime would.
    fs.writeFileSync(module, "export default () => ({ capabilities: () => ({ models: ['m'], maxPixels: 1, executionProvider: 'test' }), render: async () => { throw new Error('unused'); }, warmUp: () => process.exit(7) });\n");
    const renderer = await createThreadRenderer({ module, threads: 1 });
    try {
      await expect(renderer.warmUp!()).rejects.toThrow('render thread exited (code 7) while loading its model');
    } finally {
      await renderer.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('starts a thread that died while loading again on the next warm-up, which can then succeed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dying-once-renderer-'));
    const module = path.join(dir, 'dying-once.mjs');
    const marker = path.join(dir, 'died');
    // The first load kills its thread; the thread started in its place loads fine.
    fs.writeFileSync(
      module,
      `import fs from 'node:fs';\nexport default () => ({ capabilities: () => ({ models: ['m'], maxPixels: 1, executionProvider: 'test' }), render: async () => { throw new Error('unused'); }, ` +
        `warmUp: async () => { if (!fs.existsSync(${JSON.stringify(marker)})) { fs.writeFileSync(${JSON.stringify(marker)}, ''); process.exit(7); } } });\n`,
    );
    const renderer = await createThreadRenderer({ module, threads: 1 });
    try {
      await expect(renderer.warmUp!()).rejects.toThrow('render thread exited (code 7) while loading its model');
      await expect(renderer.warmUp!()).resolves.toBeUndefined();
    } finally {
      await renderer.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('hands a replacement for a dead thread to one render at a time: two renders started at once run one after the other, and both succeed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dead-thread-renderer-'));
    const module = path.join(dir, 'one-at-a-time.mjs');
    // Loading the model kills the thread; a render records when it ran and whether another was running on its thread.
    fs.writeFileSync(
      module,
      `import { threadId } from 'node:worker_threads';\nlet running = 0;\n` +
        `export default () => ({ capabilities: () => ({ models: ['m'], maxPixels: 1, executionProvider: 'test' }), warmUp: () => process.exit(7), ` +
        `render: async () => { const others = running++; const started = Date.now(); await new Promise((r) => setTimeout(r, 150)); running--; ` +
        `return { video: new Uint8Array(1), format: 'mp4', metadata: { threadId, others, started, ended: Date.now() }, gpuSeconds: 0 }; } });\n`,
    );
    const renderer = await createThreadRenderer({ module, threads: 1 });
    try {
      await expect(renderer.warmUp!()).rejects.toThrow('render thread exited (code 7) while loading its model');
      const results = await Promise.all([renderer.render(job(['a', 'b']), context()), renderer.render(job(['c', 'd']), context())]);
      const [first, second] = results.map((r) => r.metadata as { threadId: number; others: number; started: number; ended: number }).sort((a, b) => a.started - b.started);
      // Both on the one replacement thread, neither while the other ran.
      expect(first.threadId).toBe(second.threadId);
      expect([first.others, second.others]).toEqual([0, 0]);
      expect(second.started).toBeGreaterThanOrEqual(first.ended);
    } finally {
      await renderer.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects with the reason when the model cannot load', async () => {
    const missing = path.join(os.tmpdir(), `no-model-${process.pid}`);
    const renderer = await createThreadRenderer({ module: ENGINE_RENDERER, rendererOptions: { modelDir: missing }, threads: 1 });
    try {
      await expect(renderer.warmUp!()).rejects.toThrow(missing);
    } finally {
      await renderer.close();
    }
  });
});
