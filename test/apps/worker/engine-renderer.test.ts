// The engine adapter's request mapping: job parameters renamed into the engine's RenderRequest,
// nothing clamped or raised; an extension renders its new prompts after the movie it continues.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createRenderer, renderRequestFor, workerFaultScope } from '../../../apps/worker/engine-renderer.ts';
import { BuiltinPerceptualMetric, ExecutionProviderError, ImageVariationPipeline, ModelFileError, readModelFolder, StableDiffusionPipeline, createPerceptualMetric, type PerceptualMetric, type PerceptualMetricOptions } from '../../../engine/index.ts';
import { parseJobParams } from '../../../farm/job-params.ts';
import { LIMITS } from '../../../farm/limits.ts';
import { RenderError } from '../../../farm/renderer.ts';
import type { ClaimedJob } from '../../../farm/types.ts';
import { testModelDir } from '../../../models/paths.ts';

function claimed(kind: ClaimedJob['kind'], input: object, parent?: ClaimedJob['parent']): ClaimedJob {
  return { id: 7, kind, userId: 'u', params: parseJobParams(kind, input), model: 'demo', pixels: 0, attempt: 1, maxAttempts: 3, parentJobId: parent?.id ?? null, reservedGpuSeconds: 1, leaseToken: 't', parent };
}

describe('engine adapter', () => {
  it('renames the job parameters, the limits included as they are', () => {
    const { depthStrength, maxBranches } = LIMITS;
    const job = claimed('blend', { prompts: ['a', 'b'], seeds: [1, 2], depthStrength: depthStrength.max, maxBranches: maxBranches.min, guidance: 7, maxBytes: 50_000, format: 'gif', negativePrompt: 'blur' });
    expect(renderRequestFor(job)).toEqual({
      prompts: ['a', 'b'],
      negativePrompt: 'blur',
      seeds: [1, 2],
      steps: job.params.steps,
      guidance: 7,
      width: 512,
      height: 512,
      depthStrength: depthStrength.max,
      maxBranches: maxBranches.min,
      duration: job.params.durationSeconds,
      fps: job.params.fps,
      format: 'gif',
      maxBytes: 50_000,
    });
  });

  it('continues the whole movie of an extension without slicing its prompts', () => {
    const parent = parseJobParams('movie', { prompts: ['a', 'b'], seeds: [1, 2] });
    const video = new Uint8Array([1, 2, 3]);
    const request = renderRequestFor(
      claimed('extend', { prompts: ['d'], seeds: [4] }, { id: 3, params: parent, movie: { prompts: ['a', 'b', 'c'], seeds: [1, 2, 3] }, artifact: { format: 'mp4', bytes: video, meta: {} } }),
    );
    expect(request.prompts).toEqual(['d']);
    expect(request.seeds).toEqual([4]);
    expect(request.extend).toEqual({ prompts: ['a', 'b', 'c'], seeds: [1, 2, 3], video });
    expect(() => renderRequestFor(claimed('extend', { prompts: ['d'] }))).toThrow(RenderError);
  });

  it('hands an extension the pictures of the movie it continues, at their movie-wide prompt indices', () => {
    const parent = parseJobParams('movie', { prompts: ['a', 'b'], seeds: [1, 2] });
    const picture = new Uint8Array([9, 9, 9]);
    const movie = { prompts: ['a', 'b', 'c'], seeds: [1, 2, 3], images: [{ index: 2, strength: 0.6, jobId: 1, input: 'image-1' }] };
    const request = renderRequestFor(claimed('extend', { prompts: ['d'], seeds: [4] }, { id: 3, params: parent, movie, pictures: { 'image-3': { bytes: picture, mime: 'image/png' } } }));
    expect(request.extend).toEqual({ prompts: ['a', 'b', 'c'], seeds: [1, 2, 3], video: undefined, images: [{ index: 2, image: picture, strength: 0.6 }] });
    // A picture that did not come with the job fails it for good, saying what to do.
    expect(() => renderRequestFor(claimed('extend', { prompts: ['d'], seeds: [4] }, { id: 3, params: parent, movie }))).toThrow(/picture for prompt 3 of the movie to extend \(job 3\) is missing; make a new \/movie/);
  });
});

// The models a worker offers come from its model folders, each read once: its kind picks the
// pipeline that loads it, and an extra folder of the wrong kind is left out with that kind named.
describe('engine adapter models', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const modelWarnings = (warn: { mock: { calls: unknown[][] } }) => warn.mock.calls.map((call) => String(call[0])).filter((line) => line.startsWith('[worker] not offering model'));

  it('offers the inpainting and variation folders with what each can do', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const renderer = createRenderer({ modelDir: testModelDir('demo'), inpaintModelDir: testModelDir('inpaint'), variationModelDir: testModelDir('variation') });
    expect(renderer.capabilities().modelAbilities).toEqual({ demo: ['text', 'picture'], inpaint: ['inpaint', 'picture'], variation: ['variation'] });
    expect(modelWarnings(warn)).toEqual([]);
    // Each folder's family, as the engine reads it (the farm picks a preset's steps by it).
    expect(renderer.capabilities().modelFamilies).toEqual({
      demo: readModelFolder(testModelDir('demo')).family,
      inpaint: readModelFolder(testModelDir('inpaint')).family,
      variation: readModelFolder(testModelDir('variation')).family,
    });
    // The built-in demo model (no folder) has none.
    expect(createRenderer({}).capabilities().modelFamilies).toEqual({});
    // An LCM-distilled UNet (time_cond_proj_dim) is advertised as lcm, not its base family: its presets are LCM's.
    expect(readModelFolder(testModelDir('lcm')).family).toBe('sd1');
    expect(createRenderer({ modelDir: testModelDir('lcm'), modelId: 'lcm-dreamshaper' }).capabilities().modelFamilies).toEqual({ 'lcm-dreamshaper': 'lcm' });
  });

  it("advertises each folder's side multiple as the engine reads it (64 for an SD 1.5 UNet); the built-in demo model none", () => {
    // The demo test model with an SD 1.5 UNet config: four down blocks (8x downsampling) x the VAE's 8.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blendfarm-sd15-'));
    try {
      fs.cpSync(testModelDir('demo'), dir, { recursive: true });
      const config = JSON.parse(fs.readFileSync(path.join(dir, 'unet', 'config.json'), 'utf8'));
      fs.writeFileSync(path.join(dir, 'unet', 'config.json'), JSON.stringify({ ...config, block_out_channels: [320, 640, 1280, 1280] }));
      expect(readModelFolder(dir).sizeMultiple).toBe(64);
      const renderer = createRenderer({ modelDir: dir, modelId: 'sd15', inpaintModelDir: testModelDir('inpaint') });
      expect(renderer.capabilities().modelSizeMultiples).toEqual({ sd15: 64, inpaint: readModelFolder(testModelDir('inpaint')).sizeMultiple });
      expect(createRenderer({}).capabilities().modelSizeMultiples).toEqual({});
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leaves out a folder of the wrong kind, saying which kind it is', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const renderer = createRenderer({ modelDir: testModelDir('demo'), inpaintModelDir: testModelDir('variation'), variationModelDir: testModelDir('inpaint') });
    expect(renderer.capabilities().models).toEqual(['demo']);
    expect(modelWarnings(warn)).toEqual([
      '[worker] not offering model "inpaint": BLENDFARM_INPAINT_MODEL_DIR is an image-variation model, not an inpainting one',
      '[worker] not offering model "variation": BLENDFARM_VARIATION_MODEL_DIR is an inpainting model, not an image-variation one',
    ]);
  });

  it('says "a text-to-image model" of a text-to-image folder given as the variation model', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    createRenderer({ modelDir: testModelDir('demo'), variationModelDir: testModelDir('demo') }).capabilities();
    expect(modelWarnings(warn)).toEqual(['[worker] not offering model "variation": BLENDFARM_VARIATION_MODEL_DIR is a text-to-image model, not an image-variation one']);
  });

  it('offers a real export as the model every job without one asks for (a bot command), unless BLENDFARM_MODEL_ID names it', async () => {
    const real = fileURLToPath(new URL('../../fixtures/tiny-sd-optimum/', import.meta.url));
    const renderer = createRenderer({ modelDir: real });
    const named = createRenderer({ modelDir: real, modelId: 'sd-tiny' });
    try {
      // Before, the folder's name ("tiny-sd-optimum"): no bot job was ever claimed.
      expect(renderer.capabilities().models).toEqual([parseJobParams('blend', { prompts: ['a', 'b'] }).model]);
      expect(named.capabilities().models).toEqual(['sd-tiny']);
    } finally {
      await renderer.close?.();
      await named.close?.();
    }
  });

  it('loads an image-variation folder as the main model with the variation pipeline', async () => {
    // Offered under the default id, as any main folder (BLENDFARM_MODEL_ID names it otherwise).
    const renderer = createRenderer({ modelDir: testModelDir('variation') });
    try {
      expect(renderer.capabilities().modelAbilities).toEqual({ demo: ['variation'] });
      await expect(renderer.warmUp!()).resolves.toBeUndefined();
    } finally {
      await renderer.close?.();
    }
  });
});

// A main model folder that cannot be read at start is offered for text transitions only; once the
// operator fixes it, loading it reads the folder again: its own pipeline loads it, and one line
// says a restart offers what it can really do (the farm routes by what the worker advertised).
describe('engine adapter: a model folder fixed after start-up', () => {
  const dirs: string[] = [];
  afterEach(() => {
    vi.restoreAllMocks();
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A model folder path that does not exist yet, and a function that makes it `name`'s test model. */
  function brokenFolder(): { modelDir: string; fix(name: string): void } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blendfarm-fixed-model-'));
    dirs.push(dir);
    const modelDir = path.join(dir, 'main');
    return { modelDir, fix: (name) => fs.symlinkSync(testModelDir(name), modelDir, 'dir') };
  }
  const restartLines = (warn: { mock: { calls: unknown[][] } }) => warn.mock.calls.map((call) => String(call[0])).filter((line) => line.includes('restart the worker'));

  it('loads a variation folder fixed after start-up with the variation pipeline, and says a restart offers it', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const variationLoad = vi.spyOn(ImageVariationPipeline, 'load');
    const textLoad = vi.spyOn(StableDiffusionPipeline, 'load');
    const { modelDir, fix } = brokenFolder();
    const renderer = createRenderer({ modelDir, modelId: 'main' });
    try {
      expect(renderer.capabilities().modelAbilities).toEqual({ main: ['text'] });
      await expect(renderer.warmUp!()).rejects.toThrow(/folder not found/);
      fix('variation');
      await expect(renderer.warmUp!()).resolves.toBeUndefined();
      expect(variationLoad).toHaveBeenCalledTimes(1);
      expect(variationLoad.mock.calls[0][0]).toBe(modelDir);
      expect(textLoad).not.toHaveBeenCalled();
      expect(restartLines(warn)).toEqual([
        `[worker] model "main" (${modelDir}) is an image-variation model for variation, but this worker offered it for text when it started; restart the worker so that it offers the model for variation`,
      ]);
      // What the farm was told stays as it was until the restart.
      expect(renderer.capabilities().modelAbilities).toEqual({ main: ['text'] });
    } finally {
      await renderer.close?.();
    }
  });

  it('says a restart offers picture transitions on a text-to-image folder (with a VAE encoder) fixed after start-up', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const textLoad = vi.spyOn(StableDiffusionPipeline, 'load');
    const { modelDir, fix } = brokenFolder();
    const renderer = createRenderer({ modelDir, modelId: 'main' });
    try {
      await expect(renderer.warmUp!()).rejects.toThrow(/folder not found/);
      expect(restartLines(warn)).toEqual([]);
      fix('demo');
      await expect(renderer.warmUp!()).resolves.toBeUndefined();
      expect(textLoad.mock.calls.map((call) => call[0])).toEqual([modelDir]);
      expect(restartLines(warn)).toEqual([
        `[worker] model "main" (${modelDir}) is a text-to-image model for text, picture, but this worker offered it for text when it started; restart the worker so that it offers the model for text, picture`,
      ]);
    } finally {
      await renderer.close?.();
    }
  });
});

// The gap metric: on a GPU, the built-in metric's ONNX graph. When it does not open (out of GPU
// memory, a provider problem) the worker measures with the JavaScript metric (same values) after one
// warning line, instead of failing every later job; a failed load is never kept.
describe('engine adapter gap metric', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const blend = (): ClaimedJob => ({
    ...claimed('blend', { prompts: ['a red fox', 'a blue whale'], seeds: [3, 4], width: 64, height: 64, steps: 4, maxBranches: 3, durationSeconds: 1, fps: 4 }),
    model: 'demo',
  });
  const ctx = () => ({ signal: new AbortController().signal, onProgress: () => {} });
  const metricLines = (warn: { mock: { calls: unknown[][] } }) => warn.mock.calls.map((call) => String(call[0])).filter((line) => line.includes('gap metric'));

  it('falls back to the JavaScript metric, with one warning line, when the GPU metric does not load; every job succeeds', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    // The engine's own createPerceptualMetric, on a GPU provider, with a graph whose load fails
    // the way an out-of-memory GPU does: the engine falls back and the worker logs the reason.
    const createMetric = vi.fn((lpips: string | undefined, opts: PerceptualMetricOptions = {}) =>
      createPerceptualMetric(lpips, { ...opts, ep: 'cuda' }, () => {
        throw new Error('Failed to allocate memory for requested buffer of size 67108864\n  (CUDA out of memory)');
      }),
    );
    const renderer = createRenderer({ modelDir: testModelDir('demo') }, { createMetric });
    try {
      const first = await renderer.render(blend(), ctx());
      const second = await renderer.render(blend(), ctx());
      expect(first.metadata.metric).toBe(new BuiltinPerceptualMetric().name);
      expect(second.metadata.metric).toBe(new BuiltinPerceptualMetric().name);
      expect(second.metadata.maxGap).toBe(first.metadata.maxGap);
      expect(createMetric).toHaveBeenCalledTimes(1);
      expect(metricLines(warn)).toEqual([
        '[worker] the gap metric did not load on cpu (Failed to allocate memory for requested buffer of size 67108864 (CUDA out of memory)); measuring gaps with the JavaScript metric instead (same values, on the CPU)',
      ]);
    } finally {
      await renderer.close?.();
    }
  });

  it('does not keep an LPIPS model that failed to load: that job fails, the next loads it again', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    let calls = 0;
    const createMetric = vi.fn(async (_lpips?: string): Promise<PerceptualMetric> => {
      if (++calls === 1) throw new Error('lpips.onnx: out of memory');
      return new BuiltinPerceptualMetric();
    });
    const renderer = createRenderer({ modelDir: testModelDir('demo'), lpipsModel: '/models/lpips.onnx' }, { createMetric });
    try {
      await expect(renderer.render(blend(), ctx())).rejects.toThrow('lpips.onnx: out of memory');
      const result = await renderer.render(blend(), ctx());
      expect(result.metadata.metric).toBe(new BuiltinPerceptualMetric().name);
      expect(createMetric).toHaveBeenCalledTimes(2);
      expect(createMetric.mock.calls[1][0]).toBe('/models/lpips.onnx');
      // LPIPS measures otherwise: no silent switch to the built-in metric.
      expect(metricLines(warn)).toEqual([]);
    } finally {
      await renderer.close?.();
    }
  });
});

// What a failed job's owner is told (RenderError's userMessage): the engine's refusals of a request
// say what to change and reach them; a model, driver or file fault is the operator's alone.
describe('engine adapter failures: the owner\'s text', () => {
  const ctx = () => ({ signal: new AbortController().signal, onProgress: () => {} });

  it('a request the engine refuses carries its message for the owner and is the request\'s fault (charged); a broken model folder carries none and is the farm\'s', async () => {
    const job = claimed('blend', { prompts: ['a red fox', 'a blue whale'], seeds: [3, 4], width: 64, height: 64, steps: 4, maxBranches: 3, durationSeconds: 1, fps: 4 });
    // Past the farm's validation (a worker older or newer than the front end): a size the engine cannot render.
    const odd = { ...job, params: { ...job.params, width: 60 } };
    const renderer = createRenderer({ modelDir: testModelDir('demo') });
    try {
      const refused = await renderer.render(odd, ctx()).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(RenderError);
      // The request's own fault: the job is charged the time it ran.
      expect(refused).toMatchObject({ retryable: false, requestFault: true });
      expect((refused as RenderError).userMessage).toBe((refused as Error).message);
      expect((refused as Error).message).toMatch(/60/);
      // A gif that cannot fit its maxBytes fails only after the whole render: charged too.
      const tooLarge = await renderer.render({ ...job, params: { ...job.params, format: 'gif', maxBytes: 200 } }, ctx()).catch((e: unknown) => e);
      expect(tooLarge).toBeInstanceOf(RenderError);
      expect(tooLarge).toMatchObject({ retryable: false, requestFault: true });
      expect((tooLarge as Error).message).toMatch(/^Could not fit the gif under/);
      expect((tooLarge as RenderError).userMessage).toBe((tooLarge as Error).message);
    } finally {
      await renderer.close?.();
    }
    const missing = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bf-owner-')), 'absent');
    const broken = createRenderer({ modelDir: missing, modelId: 'absent' });
    try {
      const fault = await broken.render({ ...job, model: 'absent' }, ctx()).catch((e: unknown) => e);
      expect(fault).toBeInstanceOf(RenderError);
      expect((fault as Error).message).toContain(missing);
      expect((fault as RenderError).userMessage).toBeUndefined();
      // The farm's fault: refunded in full.
      expect((fault as RenderError).requestFault).toBe(false);
    } finally {
      await broken.close?.();
    }
  });
});

describe('worker faults (the worker cannot render it, the job is not at fault)', () => {
  it('a model folder that is gone fails the render as a worker fault of its model: retryable, not the owner\'s', async () => {
    const modelDir = path.join(os.tmpdir(), `blendfarm-gone-${process.pid}-${Date.now()}`);
    const renderer = createRenderer({ modelDir, modelId: 'demo' });
    try {
      const error = await renderer.render(claimed('blend', { prompts: ['a', 'b'], steps: 2 }), { signal: new AbortController().signal, onProgress: () => {} }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RenderError);
      expect(error).toMatchObject({ workerFault: 'model', retryable: true, requestFault: false });
      expect((error as RenderError).userMessage).toBeUndefined();
      expect((error as Error).message).toMatch(/folder not found/);
    } finally {
      await renderer.close?.();
    }
  });

  it('classifies model files and execution providers as the model\'s fault, a missing ffmpeg as the whole worker\'s, anything else as none', () => {
    expect(workerFaultScope(new ModelFileError('/m/unet/model.onnx', 'file not found'))).toBe('model');
    expect(workerFaultScope(new ExecutionProviderError('cuda', 'libcudart.so.13: cannot open shared object file'))).toBe('model');
    expect(workerFaultScope(new Error('FFMPEG_PATH is set to "/nonexistent" but no file exists there; point it at the binary or unset it.'))).toBe('worker');
    expect(workerFaultScope(new Error('ffprobe not found: install ffprobe-static or @ffprobe-installer/ffprobe, put ffprobe on PATH, or set FFPROBE_PATH to the ffprobe binary.'))).toBe('worker');
    expect(workerFaultScope(Object.assign(new Error('spawn /usr/bin/ffmpeg ENOENT'), { code: 'ENOENT', syscall: 'spawn /usr/bin/ffmpeg' }))).toBe('worker');
    expect(workerFaultScope(new Error('ENOENT: no such file or directory, open /tmp/x'))).toBeUndefined();
    expect(workerFaultScope(new RangeError('bad size'))).toBeUndefined();
  });
});
