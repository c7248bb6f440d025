/**
 * Latent blending and the embedding walk on a real `optimum-cli export onnx`
 * folder (test/fixtures/tiny-sd-optimum, random weights) whose VAE scales by 2, not 8
 * (vae_decoder/config.json: two block_out_channels). Every size in engine/blend comes from the
 * pipeline (pipe.vaeScaleFactor, pipe.latentSize), so frames come out at exactly the requested size
 * even when that size is not a multiple of 8, and the frames are the pictures a plain render gives.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { LatentBlender, StableDiffusionPipeline, renderWalk, type RawImage } from '../../../engine/index.ts';

const DIR = fileURLToPath(new URL('../../fixtures/tiny-sd-optimum/', import.meta.url));
// Multiples of the model's factor (2) and even in latent cells (its UNet halves once), not of 8.
const WIDTH = 52;
const HEIGHT = 36;
const STEPS = 4;
const A = { prompt: 'a red house by a lake', seed: 11 };
const B = { prompt: 'a blue boat at night', seed: 22 };

/** Mean absolute difference per byte. */
function meanAbs(a: RawImage, b: RawImage): number {
  expect([a.width, a.height]).toEqual([b.width, b.height]);
  let s = 0;
  for (let i = 0; i < a.data.length; i++) s += Math.abs(a.data[i] - b.data[i]);
  return s / a.data.length;
}

let pipe: StableDiffusionPipeline;
const plain = async (prompt: string, seed: number, width = WIDTH, height = HEIGHT) =>
  (await pipe.generate({ prompt, seed, steps: STEPS, width, height })).images[0];

beforeAll(async () => {
  pipe = await StableDiffusionPipeline.load(DIR, { threads: 2 });
});
afterAll(() => pipe?.release());

describe('engine/blend on an export whose VAE scale factor is 2', () => {
  it('the fixture really is not an 8x VAE', () => {
    expect(pipe.vaeScaleFactor).toBe(2);
    expect(WIDTH % 8).not.toBe(0);
    expect(HEIGHT % 8).not.toBe(0);
  });

  it('latent blending: every frame at the requested size, the ends are plain renders of the end prompts and seeds', async () => {
    const r = await new LatentBlender(pipe).transition({
      promptA: A.prompt,
      promptB: B.prompt,
      seedA: A.seed,
      seedB: B.seed,
      steps: STEPS,
      width: WIDTH,
      height: HEIGHT,
      maxBranches: 4,
      // Without branch-1 crossfeed the B end is not pulled towards A: both ends are plain renders.
      branch1Crossfeed: { power: 0, range: 0, decay: 0 },
    });
    expect([r.width, r.height]).toEqual([WIDTH, HEIGHT]);
    expect(r.frames.length).toBe(4);
    for (const f of r.frames) expect([f.image.width, f.image.height, f.image.data.length]).toEqual([WIDTH, HEIGHT, WIDTH * HEIGHT * 3]);

    const [imgA, imgB] = [await plain(A.prompt, A.seed), await plain(B.prompt, B.seed)];
    expect(meanAbs(r.frames[0].image, imgA)).toBeLessThan(0.5);
    expect(meanAbs(r.frames[r.frames.length - 1].image, imgB)).toBeLessThan(0.5);
    // The in-between frames lie between the ends: each neighbour is closer than the two ends are.
    const ends = meanAbs(imgA, imgB);
    expect(ends).toBeGreaterThan(10);
    for (let i = 0; i + 1 < r.frames.length; i++) expect(meanAbs(r.frames[i].image, r.frames[i + 1].image)).toBeLessThan(ends);
  });

  it('embedding walk: every frame at the requested size, from prompt A to prompt B on seed A\'s noise', async () => {
    const w = await renderWalk(pipe, { mode: 'embedding-walk', promptA: A.prompt, promptB: B.prompt, seedA: A.seed, seedB: B.seed, frames: 3, steps: STEPS, width: WIDTH, height: HEIGHT });
    expect([w.width, w.height]).toEqual([WIDTH, HEIGHT]);
    expect(w.frames.length).toBe(3);
    for (const f of w.frames) expect([f.width, f.height, f.data.length]).toEqual([WIDTH, HEIGHT, WIDTH * HEIGHT * 3]);
    expect(meanAbs(w.frames[0], await plain(A.prompt, A.seed))).toBeLessThan(0.5);
    expect(meanAbs(w.frames[2], await plain(B.prompt, A.seed))).toBeLessThan(0.5);
  });
});
