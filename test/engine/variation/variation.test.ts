/**
 * Variation animations on the CPU with the project's image-variation test model
 * (models/image-test-models.ts: CLIP-like image encoder with image_embeds, text encoder with
 * text_embeds, a UNet conditioned on [batch, 1, D]).
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { ImageVariationPipeline, InvalidRequestError, StableDiffusionPipeline, clipGuidanceShift, cosine, decodeImage, prepareImage, renderVariations, renderVariationVideo, type RawImage } from '../../../engine/index.ts';
import { testModelDir } from '../../../models/paths.ts';

const mad = (a: RawImage, b: RawImage) => {
  let s = 0;
  for (let i = 0; i < a.data.length; i++) s += Math.abs(a.data[i] - b.data[i]);
  return s / a.data.length;
};

let pipe: ImageVariationPipeline;
let photo: RawImage;
beforeAll(async () => {
  pipe = await ImageVariationPipeline.load(testModelDir('variation'));
  photo = await prepareImage(readFileSync('test/fixtures/photos/coffee.png'), 64, 64);
});

describe('CLIP guidance', () => {
  it('takes gradient steps of the closed-form gradient (checked against finite differences)', () => {
    const e = Float32Array.from([1.5, -0.7, 2.2, 0.3]);
    const p = [Float32Array.from([1, 0, 0, 0]), Float32Array.from([0, 0.6, 0.8, 0])];
    const n = [Float32Array.from([0, 0, 0, 1])];
    const [sp, sn] = [0.3, 0.2];
    const loss = (v: ArrayLike<number>) => sn * cosine(v, n[0]) - sp * ((cosine(v, p[0]) + cosine(v, p[1])) / 2);
    const shifted = clipGuidanceShift(e, p, n, { positiveScale: sp, negativeScale: sn, repeats: 1 });
    for (let i = 0; i < 4; i++) {
      const h = 1e-5;
      const up = Float64Array.from(e);
      const down = Float64Array.from(e);
      up[i] += h;
      down[i] -= h;
      const grad = (loss(up) - loss(down)) / (2 * h);
      expect(shifted[i]).toBeCloseTo(e[i] - grad, 5);
    }
    expect(loss(clipGuidanceShift(e, p, n, { positiveScale: sp, negativeScale: sn, repeats: 10 }))).toBeLessThan(loss(e));
    // Off: no repeats or no scales leave the embedding as it is.
    expect(Array.from(clipGuidanceShift(e, p, n, { positiveScale: sp, negativeScale: sn, repeats: 0 }))).toEqual(Array.from(e));
  });
});

describe('variation animations', () => {
  it('reads the folder as an image-variation model and refuses to load it as text-to-image', async () => {
    expect(pipe.folder.kind).toBe('image-variation');
    expect((await pipe.encodeImage(photo)).length).toBe(12);
    await expect(StableDiffusionPipeline.load(testModelDir('variation'))).rejects.toThrow(/image-variation model.*npm run vary/);
  });

  it('drifts towards the positive prompt under guidance: similarity rises over the variations', async () => {
    const positive = 'a red house';
    const r = await renderVariations(pipe, { image: photo, variations: 5, intermediate: 1, seed: 3, positivePrompts: [positive], negativePrompts: [], clip: { positiveScale: 5, negativeScale: 0, repeats: 3 } });
    expect(r.frames.length).toBe(6);
    const t = await pipe.encodeText(positive);
    const sims = [await pipe.encodeImage(photo), ...(await Promise.all(r.frames.map((f) => pipe.encodeImage(f))))].map((e) => cosine(e, t));
    for (let k = 1; k < sims.length; k++) expect(sims[k]).toBeGreaterThan(sims[k - 1]);
    expect(sims[sims.length - 1] - sims[0]).toBeGreaterThan(0.2);
    // Negative prompts push away.
    const away = await renderVariations(pipe, { image: photo, variations: 3, intermediate: 1, seed: 3, positivePrompts: [], negativePrompts: [positive], clip: { positiveScale: 0, negativeScale: 5, repeats: 3 } });
    expect(cosine(await pipe.encodeImage(away.frames[3]), t)).toBeLessThan(sims[0]);
  }, 60_000);

  it('stays put without guidance and with the same noise: consecutive frames nearly identical', async () => {
    const r = await renderVariations(pipe, { image: photo, variations: 4, intermediate: 1, noiseShift: 0, seed: 5, clip: { repeats: 0 } });
    for (let k = 1; k < r.frames.length; k++) expect(mad(r.frames[k], r.frames[k - 1])).toBeLessThan(3);
    // Fresh noise per variation (noise shift 1) changes frames more.
    const fresh = await renderVariations(pipe, { image: photo, variations: 2, intermediate: 1, noiseShift: 1, seed: 5, clip: { repeats: 0 } });
    expect(mad(fresh.frames[2], fresh.frames[1])).toBeGreaterThan(mad(r.frames[2], r.frames[1]));
  }, 60_000);

  it('puts intermediate frames between variations', async () => {
    const r = await renderVariations(pipe, { image: photo, variations: 2, intermediate: 4, seed: 7, noiseShift: 0.4, positivePrompts: ['a red house'], negativePrompts: [], clip: { positiveScale: 8, negativeScale: 0, repeats: 3 } });
    expect(r.frames.length).toBe(1 + 2 * 4);
    expect(r.info.filter((i) => i.variation).length).toBe(3);
    for (const g of [0, 1]) {
      const from = r.frames[g * 4];
      const to = r.frames[g * 4 + 4];
      const span = mad(from, to);
      expect(span).toBeGreaterThan(1);
      const dFrom = [1, 2, 3].map((k) => mad(r.frames[g * 4 + k], from));
      const dTo = [1, 2, 3].map((k) => mad(r.frames[g * 4 + k], to));
      // Moving away from one variation and towards the next, each in-between frame closer than the span.
      expect(dFrom[0]).toBeLessThan(dFrom[2]);
      expect(dTo[2]).toBeLessThan(dTo[0]);
      for (const d of [...dFrom, ...dTo]) expect(d).toBeLessThan(span);
    }
  }, 60_000);

  it('renders a video and reports where its model time went (UNet runs by batch, VAE decodes)', async () => {
    const out = await renderVariationVideo(pipe, { image: readFileSync('test/fixtures/photos/coffee.png'), width: 64, height: 64, steps: 2, variations: 2, intermediate: 2, seed: 3, clip: { repeats: 0 }, fps: 8 });
    expect(out.frames).toBe(1 + 2 * 2);
    // Every frame is decoded once; each UNet call is timed, at the batch sizes it ran.
    expect(out.timings.vaeDecode.calls).toBe(out.frames);
    expect(out.timings.unet.length).toBeGreaterThan(0);
    for (const t of out.timings.unet) {
      expect(t.batch).toBeGreaterThan(0);
      expect(t.calls).toBeGreaterThan(0);
      expect(t.ms).toBeGreaterThan(0);
    }
    // A second render reports its own runs only, not the pipeline's running totals.
    const again = await renderVariationVideo(pipe, { image: readFileSync('test/fixtures/photos/coffee.png'), width: 64, height: 64, steps: 2, variations: 2, intermediate: 2, seed: 3, clip: { repeats: 0 }, fps: 8 });
    expect(again.timings.unet.map((t) => [t.batch, t.calls])).toEqual(out.timings.unet.map((t) => [t.batch, t.calls]));
  }, 60_000);

  it('refuses bad options with a message that says what to do', async () => {
    await expect(renderVariations(pipe, { image: photo, noiseShift: 2 })).rejects.toThrow(/noise shift must be between 0/);
    await expect(renderVariations(pipe, { image: photo, variations: 100, intermediate: 60 })).rejects.toThrow(InvalidRequestError);
    // The video's format and size limit are checked before any frame is rendered, as fps is.
    const req = { image: readFileSync('test/fixtures/photos/coffee.png'), width: 64, height: 64, steps: 2, variations: 1, intermediate: 1, seed: 3, clip: { repeats: 0 }, fps: 8 };
    const calls = pipe.unet.calls;
    await expect(renderVariationVideo(pipe, { ...req, format: 'mov' as never })).rejects.toThrow(/unknown video format "mov"; use one of mp4, webm, webp, gif/);
    await expect(renderVariationVideo(pipe, { ...req, maxBytes: -5 })).rejects.toThrow(InvalidRequestError);
    await expect(renderVariationVideo(pipe, { ...req, fps: 0 })).rejects.toThrow(/fps must be between 1 and 120, got 0/);
    expect(pipe.unet.calls).toBe(calls);
  });

  it('embeds the picture as uploaded, whatever the render size: CLIP crops it, as diffusers does', async () => {
    const bytes = readFileSync('test/fixtures/photos/chelsea.png'); // 451x300
    const original = await decodeImage(bytes);
    expect([original.width, original.height]).toEqual([451, 300]);
    // What reaches the image encoder when a tall render is asked for from the uploaded file:
    // cropping the picture to the render size first would embed a narrow middle strip instead.
    const seen: RawImage[] = [];
    const embedded: Float32Array[] = [];
    const encodeImage = pipe.encodeImage.bind(pipe);
    const spy = vi.spyOn(pipe, 'encodeImage').mockImplementation(async (img) => {
      seen.push(img);
      const e = await encodeImage(img);
      embedded.push(e);
      return e;
    });
    let out;
    try {
      out = await renderVariationVideo(pipe, { image: bytes, width: 64, height: 128, steps: 2, variations: 1, intermediate: 1, seed: 3, clip: { repeats: 0 }, fps: 8 });
    } finally {
      spy.mockRestore();
    }
    expect([out.width, out.height]).toEqual([64, 128]);
    // First the start picture, at its own size, then the variation frame (render size).
    expect(seen.map((img) => [img.width, img.height])).toEqual([[451, 300], [64, 128]]);
    expect(seen[0].data).toEqual(original.data);
    const gap = (a: Float32Array, b: Float32Array) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));
    const asUploaded = await pipe.encodeImage(original);
    expect(gap(embedded[0], asUploaded)).toBe(0);
    // The test tells the two apart: the render-cropped picture's embedding is another.
    const renderCropped = await pipe.encodeImage(await prepareImage(bytes, 64, 128));
    expect(gap(renderCropped, asUploaded)).toBeGreaterThan(1e-3);
  });
});
