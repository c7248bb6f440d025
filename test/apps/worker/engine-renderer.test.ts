// The engine adapter's request mapping: job parameters renamed into the engine's RenderRequest,
// nothing clamped or raised; an extension renders its new prompts after the movie it continues.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createRenderer, renderRequestFor } from '../../../apps/worker/engine-renderer.ts';
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
  });

  it('leaves out a folder of the wrong kind, saying which kind it is', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const renderer = createRenderer({ modelDir: testModelDir('demo'), inpaintModelDir: testModelDir('variation'), variationModelDir: testModelDir('inpaint') });
    expect(renderer.capabilities().models).toEqual(['demo']);
    expect(modelWarnings(warn)).toEqual([
      '[worker] not offering model "inpaint": BLENDFARM_INPAINT_MODEL_DIR is a image-variation model, not an inpainting one',
      '[worker] not offering model "variation": BLENDFARM_VARIATION_MODEL_DIR is a inpaint model, not an image-variation one',
    ]);
  });

  it('loads an image-variation folder as the main model with the variation pipeline', async () => {
    const renderer = createRenderer({ modelDir: testModelDir('variation') });
    try {
      expect(renderer.capabilities().modelAbilities).toEqual({ variation: ['variation'] });
      await expect(renderer.warmUp!()).resolves.toBeUndefined();
    } finally {
      await renderer.close?.();
    }
  });
});
