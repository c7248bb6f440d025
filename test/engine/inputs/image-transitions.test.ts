/**
 * Picture endpoints and inpainting transitions, end to end on the CPU with the project's test
 * models (demo: has a VAE encoder; inpaint: a 9-channel inpainting UNet, models/image-test-models.ts).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { InvalidRequestError, LatentBlender, StableDiffusionPipeline, prepareImage, presetMask, readModelFolder, type RawImage } from '../../../engine/index.ts';
import { testModelDir } from '../../../models/paths.ts';

const W = 128;
const mad = (a: RawImage, b: RawImage, keep: (x: number, y: number) => boolean = () => true) => {
  let s = 0;
  let n = 0;
  let max = 0;
  for (let y = 0; y < a.height; y++) {
    for (let x = 0; x < a.width; x++) {
      if (!keep(x, y)) continue;
      for (let c = 0; c < 3; c++) {
        const d = Math.abs(a.data[(y * a.width + x) * 3 + c] - b.data[(y * a.width + x) * 3 + c]);
        s += d;
        n++;
        max = Math.max(max, d);
      }
    }
  }
  return { mean: s / n, max };
};

let demo: StableDiffusionPipeline;
let inpaint: StableDiffusionPipeline;
let photo: RawImage;
/** The photo as the demo VAE can hold it (decode(encode(photo))): the best any render can match. */
let roundTrip: RawImage;

beforeAll(async () => {
  demo = await StableDiffusionPipeline.load(testModelDir('demo'));
  inpaint = await StableDiffusionPipeline.load(testModelDir('inpaint'));
  photo = await prepareImage(readFileSync('test/fixtures/photos/coffee.png'), W, W);
  roundTrip = await demo.vae.decode((await demo.vaeEncoder!.encode(photo)).latent, W / 8, W / 8);
});

describe('picture endpoints', () => {
  const blend = (strength: number, end: 'A' | 'B' = 'A', maxBranches = 2) =>
    new LatentBlender(demo).transition({
      promptA: 'a red house',
      promptB: 'a blue boat',
      ...(end === 'A' ? { imageA: { image: photo, strength } } : { imageB: { image: photo, strength } }),
      seedA: 11,
      seedB: 12,
      width: W,
      height: W,
      steps: 10,
      scheduler: 'ddim',
      maxBranches,
    });

  it('at low strength the endpoint frame is the picture; more strength moves it towards the prompt', async () => {
    const d = [];
    for (const s of [0.1, 0.5, 0.9]) d.push(mad((await blend(s)).frames[0].image, roundTrip).mean);
    expect(d[0]).toBeLessThan(4);
    expect(d[1]).toBeGreaterThan(d[0]);
    expect(d[2]).toBeGreaterThan(d[1]);
    // A text end is nowhere near the picture.
    const text = await new LatentBlender(demo).transition({ promptA: 'a red house', promptB: 'a blue boat', seedA: 11, seedB: 12, width: W, height: W, steps: 10, scheduler: 'ddim', maxBranches: 2 });
    expect(mad(text.frames[0].image, roundTrip).mean).toBeGreaterThan(4 * d[0]);
  }, 60_000);

  it('a picture can be end B too, and the end records its source', async () => {
    const r = await blend(0.1, 'B');
    expect(mad(r.frames[r.frames.length - 1].image, roundTrip).mean).toBeLessThan(4);
    expect(r.end.source?.strength).toBe(0.1);
    expect(r.start.source).toBeUndefined();
  }, 60_000);

  it('branches between a picture end and a text end blend smoothly, injected before and after the img2img start', async () => {
    const r = await blend(0.3, 'A', 9);
    expect(r.frames.length).toBe(9);
    const fr = r.frames.map((f) => f.fract);
    expect(fr).toEqual([...fr].sort((a, b) => a - b));
    // strength 0.3 of 10 steps starts img2img at step 7; the tree branches from step 5 on, so some
    // branches take parents' latents from the forward-noised picture.
    expect(Math.min(...r.frames.slice(1, -1).map((f) => f.injIdx))).toBeLessThan(7);
    const ends = mad(r.frames[0].image, r.frames[r.frames.length - 1].image).mean;
    for (let j = 0; j + 1 < r.frames.length; j++) expect(mad(r.frames[j].image, r.frames[j + 1].image).mean).toBeLessThan(ends * 0.6);
    expect(r.maxGap).toBeLessThan(r.gaps.reduce((a, b) => a + b, 0));
  }, 60_000);

  it('refuses a bad strength, a wrong size and a model without a VAE encoder, saying what to do', async () => {
    await expect(blend(0)).rejects.toThrow(/strength of picture A must be above 0 and at most 1/);
    await expect(blend(1.5)).rejects.toThrow(InvalidRequestError);
    const small = await prepareImage(photo, 64, 64);
    await expect(
      new LatentBlender(demo).transition({ promptA: 'a', promptB: 'b', imageA: { image: small, strength: 0.5 }, width: W, height: W, steps: 4, maxBranches: 2 }),
    ).rejects.toThrow(/picture A is 64x64 but the render is 128x128/);
  });
});

describe('inpainting transitions', () => {
  it('detects the model kind from the folder', () => {
    expect(readModelFolder(testModelDir('inpaint')).kind).toBe('inpaint');
    expect(readModelFolder(testModelDir('demo')).kind).toBe('text2img');
    expect(readModelFolder(testModelDir('variation')).kind).toBe('image-variation');
    expect(inpaint.latentChannels).toBe(4);
    expect(inpaint.unet.channels).toBe(9);
  });

  it('keeps the unmasked part in every frame while the masked part goes from A to B', async () => {
    const mask = presetMask('centre', W, W);
    const r = await new LatentBlender(inpaint).transition({
      promptA: 'a red house',
      promptB: 'a blue boat',
      inpaint: { image: photo, mask },
      seedA: 1,
      seedB: 2,
      width: W,
      height: W,
      steps: 10,
      maxBranches: 7,
    });
    expect(r.frames.length).toBe(7);
    // Outside the centre half, at least one latent cell (8 px) away from the mask's edge.
    const outside = (x: number, y: number) => !(x >= 24 && x < 104 && y >= 24 && y < 104);
    const inside = (x: number, y: number) => x >= 40 && x < 88 && y >= 40 && y < 88;
    for (const f of r.frames) {
      const keep = mad(f.image, roundTrip, outside);
      expect(keep.mean).toBeLessThan(1.5);
      expect(keep.max).toBeLessThan(12);
    }
    // Inside the mask: A's frame and B's frame differ, and frames move from A towards B.
    const a = r.frames[0].image;
    const b = r.frames[r.frames.length - 1].image;
    const ab = mad(a, b, inside).mean;
    expect(ab).toBeGreaterThan(20);
    const toA = r.frames.map((f) => mad(f.image, a, inside).mean);
    const toB = r.frames.map((f) => mad(f.image, b, inside).mean);
    expect(toA[0]).toBe(0);
    expect(toB[toB.length - 1]).toBe(0);
    const mid = r.frames.findIndex((f) => f.fract === 0.5);
    expect(toA[mid]).toBeGreaterThan(0.2 * ab);
    expect(toB[mid]).toBeGreaterThan(0.2 * ab);
  }, 60_000);

  it('an inpainting model needs a picture and mask; a text-to-image model refuses one', async () => {
    await expect(new LatentBlender(inpaint).transition({ promptA: 'a', promptB: 'b', width: W, height: W, steps: 4, maxBranches: 2 })).rejects.toThrow(
      /is an inpainting model: give a picture and a mask/,
    );
    await expect(inpaint.generate({ prompt: 'a', width: 64, height: 64, steps: 2 })).rejects.toThrow(/inpainting UNet \(9 input channels\)/);
    await expect(
      new LatentBlender(demo).transition({ promptA: 'a', promptB: 'b', inpaint: { image: photo, mask: presetMask('left', W, W) }, width: W, height: W, steps: 4, maxBranches: 2 }),
    ).rejects.toThrow(/is not an inpainting model/);
  });
});
