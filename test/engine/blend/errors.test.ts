/**
 * Bad requests to engine/blend and the seeded noise raise the engine's one request error class,
 * InvalidRequestError (callers show its message and never retry it), with a message that names
 * the value and what to give instead.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidRequestError, SeededRandom, StableDiffusionPipeline, latentNoise, renderVideo, type RenderRequest, type VideoFormat } from '../../../engine/index.ts';
import { LatentBlender } from '../../../engine/blend/transition.ts';
import { renderMovie } from '../../../engine/blend/movie.ts';
import { renderWalk, type WalkMode } from '../../../engine/blend/walks.ts';
import { planStages } from '../../../engine/blend/stages.ts';
import { segmentsToVideo } from '../../../engine/blend/video.ts';
import { testModelDir } from '../../../models/paths.ts';

const SIZE = { width: 64, height: 64 };
const PROMPTS = { promptA: 'a red sunset', promptB: 'a green forest' };

let pipe: StableDiffusionPipeline;
beforeAll(async () => {
  pipe = await StableDiffusionPipeline.load(testModelDir('demo'));
});
afterAll(() => pipe?.release());

/** Runs `f`, expecting an InvalidRequestError whose message matches `message`. */
async function rejectsAsRequest(f: () => unknown, message: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await f();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(InvalidRequestError);
  expect((caught as Error).message).toMatch(message);
}

describe('bad requests are InvalidRequestError', () => {
  it('latent blending: empty prompt, no budget, out-of-range budget', async () => {
    const blender = new LatentBlender(pipe);
    await rejectsAsRequest(() => blender.transition({ ...PROMPTS, promptB: '  ', ...SIZE, maxBranches: 3 }), /both prompts must contain text/);
    await rejectsAsRequest(() => blender.transition({ ...PROMPTS, ...SIZE }), /give a budget: maxBranches or computeSeconds/);
    await rejectsAsRequest(() => blender.transition({ ...PROMPTS, ...SIZE, maxBranches: 1 }), /maxBranches must be a whole number from 2 to 500, got 1/);
    await rejectsAsRequest(() => blender.transition({ ...PROMPTS, ...SIZE, computeSeconds: -1 }), /computeSeconds must be positive, got -1/);
  });

  it('stage plans: depth strength outside (0, 1), fewer than 2 steps', () => {
    expect(() => planStages(20, 1.2, { maxBranches: 5 })).toThrow(InvalidRequestError);
    expect(() => planStages(20, 1.2, { maxBranches: 5 })).toThrow(/depth strength must be between 0 and 1 \(exclusive\), got 1.2/);
    expect(() => planStages(1, 0.5, { maxBranches: 5 })).toThrow(InvalidRequestError);
  });

  it('movies: too few prompts, an empty prompt, a circular walk over three prompts', async () => {
    await rejectsAsRequest(() => renderMovie(pipe, { prompts: ['only one'], ...SIZE, maxBranches: 3 }), /a movie needs 2 to 16 prompts, got 1/);
    await rejectsAsRequest(() => renderMovie(pipe, { prompts: ['a', ' ', 'c'], ...SIZE, maxBranches: 3 }), /prompt 2 is empty/);
    await rejectsAsRequest(() => renderMovie(pipe, { prompts: ['a', 'b', 'c'], mode: 'circular', ...SIZE }), /give exactly two/);
  });

  it('walks: frame count out of range, unknown mode', async () => {
    await rejectsAsRequest(() => renderWalk(pipe, { mode: 'embedding-walk', ...PROMPTS, frames: 1, ...SIZE }), /frames must be a whole number from 2 to 600, got 1/);
    await rejectsAsRequest(() => renderWalk(pipe, { mode: 'zoom' as WalkMode, ...PROMPTS, frames: 3, ...SIZE }), /unknown transition mode "zoom"; use one of embedding-walk/);
  });

  it('video: fps and segment durations out of range', async () => {
    const keyframe = (await pipe.generate({ prompt: 'x', seed: 1, steps: 2, ...SIZE })).images[0];
    await rejectsAsRequest(() => segmentsToVideo([{ keyframes: [keyframe, keyframe] }], { fps: 0, duration: 1 }), /fps must be between 1 and 120, got 0/);
    await rejectsAsRequest(() => segmentsToVideo([{ keyframes: [keyframe, keyframe] }], { fps: 10, duration: 0 }), /segment 1 duration must be more than 0 and at most 600 seconds, got 0/);
  });

  it('renderVideo: bad video settings, too few steps and a bad depth fail before any UNet call', async () => {
    const base: RenderRequest = { prompts: ['a red house', 'a blue boat'], seeds: [1, 2], steps: 4, ...SIZE, maxBranches: 3, duration: 0.5, fps: 4 };
    const bad: Array<[Partial<RenderRequest>, RegExp]> = [
      [{ fps: 0 }, /fps must be between 1 and 120, got 0/],
      [{ fps: 1000 }, /fps must be between 1 and 120, got 1000/],
      [{ duration: 0 }, /segment 1 duration must be more than 0 and at most 600 seconds, got 0/],
      [{ prompts: ['a', 'b', 'c'], seeds: undefined, duration: [1] }, /1 durations for 2 transitions; give one number for all or one per transition/],
      [{ format: 'avi' as VideoFormat }, /unknown video format "avi"; use one of mp4, webm, webp, gif/],
      [{ maxBytes: 0 }, /the size limit \(maxBytes\) must be a positive number of bytes, got 0/],
      [{ steps: 1 }, /latent blending needs at least 2 denoising steps, got 1/],
      [{ depthStrength: 1.5 }, /depth strength must be between 0 and 1 \(exclusive\), got 1.5/],
      [{ extend: { prompts: ['x', 'y'], seeds: [5, 6] }, fps: 500 }, /fps must be between 1 and 120, got 500/],
      // An extension without the old movie's every seed would continue from a different picture.
      [{ extend: { prompts: ['x', 'y', 'z'], seeds: [5, 6] } }, /the movie to extend has 3 prompts and 2 seeds; give the seed of every prompt/],
      [{ seeds: [1, 2, 3] }, /3 seeds for 2 prompts; give at most one seed per prompt/],
      [{ extend: { prompts: ['x', 'y'], seeds: [5, 6] }, mode: 'embedding-walk' }, /a movie can be extended in the latent-blend mode only, not embedding-walk/],
    ];
    for (const [change, message] of bad) {
      const calls = pipe.unet.calls;
      await rejectsAsRequest(() => renderVideo(pipe, { ...base, ...change }), message);
      expect(pipe.unet.calls, JSON.stringify(change)).toBe(calls);
    }
    // A per-transition list of the right length still renders.
    const ok = await renderVideo(pipe, { ...base, prompts: ['a', 'b', 'c'], seeds: [1, 2, 3], duration: [0.5, 0.25] });
    expect(ok.frames).toBe(3);
  });

  it('seeded noise: negative or fractional seeds', () => {
    expect(() => new SeededRandom(-1)).toThrow(InvalidRequestError);
    expect(() => new SeededRandom(1.5)).toThrow(/seed must be a whole number from 0 to 4294967295, got 1.5/);
    expect(() => latentNoise(-3, 4)).toThrow(InvalidRequestError);
    // A good seed still gives its numbers.
    expect(() => new SeededRandom(2 ** 32)).toThrow(InvalidRequestError);
    expect(new SeededRandom(7).gaussianArray(4)).toEqual(new SeededRandom(7).gaussianArray(4));
  });
});
