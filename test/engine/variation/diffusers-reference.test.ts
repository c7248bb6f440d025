/**
 * The image-variation pipeline checked against diffusers' own numbers (test/fixtures/tiny-sd-variation,
 * made by scripts/variation-reference.py: a tiny random-weight StableDiffusionImageVariationPipeline
 * from the real transformers / diffusers modules, exported in models/README.md's layout). Loaded as a
 * user's folder with ImageVariationPipeline.load: the image encoder on a real photo (the engine's own
 * CLIP preprocessing), the UNet and VAE decoder on torch's inputs, then the whole denoising from
 * diffusers' image embedding and starting latents (DDIM, PNDM and DPM++ 2M, guidance 3, 4 steps,
 * 64x64) to diffusers' final latents and image. The folder keeps no tokenizer (CLIP's files are 1.6 MB
 * and the text encoder is not compared here): the test puts the project's (models/test/variation) into
 * a copy, as clip-reference.test.ts does.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImageVariationPipeline, readModelFolder, type RawImage } from '../../../engine/index.ts';
import { denoiseLockstep } from '../../../engine/pipeline/denoise.ts';
import type { SchedulerKind } from '../../../engine/schedulers/index.ts';
import { readReference, relDiff } from '../../helpers/reference-arrays.ts';
import { testModelDir } from '../../../models/paths.ts';

const FIXTURE = fileURLToPath(new URL('../../fixtures/tiny-sd-variation/', import.meta.url));
const PHOTOS = fileURLToPath(new URL('../../fixtures/photos/', import.meta.url));
const { meta, ref } = readReference(FIXTURE);
/** The fixture with the project's CLIP tokenizer files: the folder the engine loads (beforeAll). */
let DIR: string;

interface Case {
  name: string;
  photo: string;
  engine_scheduler: SchedulerKind;
  num_inference_steps: number;
  guidance_scale: number;
  width: number;
  height: number;
  timesteps: number[];
}
const cases = meta.cases as Case[];

/**
 * Tolerances: float32 ONNX Runtime vs torch only, no slack for preprocessing or the schedulers
 * (measured: embedding 2.8e-7, UNet 9.7e-7, final latents under 8e-7, images 1 level at a few pixels).
 */
const EMBED_TOL = 1e-4; // relative to the largest |value|; the engine's CLIP picture is PIL's to the bit (clip-reference.test.ts)
const LATENT_TOL = 1e-4; // relative to the largest |value|, after 4-5 guided UNet calls; guidance 3.5 instead of 3 is 2.7e-2 off
const LEVELS = 2; // uint8 levels, worst pixel (rounding of values near .5 differs); mean under 0.5

async function decodePng(file: string): Promise<RawImage> {
  const { default: sharp } = await import('sharp');
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height, channels: 3 };
}

/** Worst and mean |engine - diffusers| in uint8 levels; diffusers' image is NHWC floats in [0, 1]. */
function levels(img: RawImage, floats: ArrayLike<number>): { worst: number; mean: number } {
  expect(img.data.length).toBe(floats.length);
  let worst = 0;
  let sum = 0;
  for (let i = 0; i < img.data.length; i++) {
    const d = Math.abs(img.data[i] - Math.round(floats[i] * 255));
    worst = Math.max(worst, d);
    sum += d;
  }
  return { worst, mean: sum / img.data.length };
}

const pipes = new Map<SchedulerKind, ImageVariationPipeline>();
let photo: RawImage;

beforeAll(async () => {
  DIR = mkdtempSync(join(tmpdir(), 'tiny-sd-variation-'));
  cpSync(FIXTURE, DIR, { recursive: true });
  cpSync(join(testModelDir('variation'), 'tokenizer'), join(DIR, 'tokenizer'), { recursive: true });
  for (const c of cases) if (!pipes.has(c.engine_scheduler)) pipes.set(c.engine_scheduler, await ImageVariationPipeline.load(DIR, { scheduler: c.engine_scheduler }));
  photo = await decodePng(join(PHOTOS, cases[0].photo));
});
afterAll(async () => {
  for (const p of pipes.values()) await p.release();
  if (DIR) rmSync(DIR, { recursive: true, force: true });
});

const anyPipe = () => pipes.get(cases[0].engine_scheduler)!;

/**
 * The engine's variation render (its own zero unconditional embedding and init-sigma scaling) from
 * diffusers' embedding and latents; the final latents are what render hands the VAE decoder.
 */
async function renderCase(c: Case, embedding: Float32Array, opts: { guidance?: number } = {}): Promise<{ image: RawImage; latents: Float32Array }> {
  const pipe = pipes.get(c.engine_scheduler)!;
  const decode = vi.spyOn(pipe.vae, 'decode');
  try {
    const [image] = await pipe.render([embedding], [ref('input_latents').data], { width: c.width, height: c.height, steps: c.num_inference_steps, guidance: opts.guidance ?? c.guidance_scale, seed: 0 });
    expect(decode).toHaveBeenCalledTimes(1);
    return { image, latents: Float32Array.from(decode.mock.calls[0][0]) };
  } finally {
    decode.mockRestore();
  }
}

describe('tiny-sd-variation: a diffusers image-variation export loaded as a user\'s folder', () => {
  it('is an image-variation folder with a 2x VAE (64x64 default), CLIP preprocessing at 224', () => {
    const folder = readModelFolder(DIR);
    expect(folder.kind).toBe('image-variation');
    expect(folder.vaeScaleFactor).toBe(2);
    expect([folder.defaults.width, folder.defaults.height]).toEqual([64, 64]);
    expect(anyPipe().processor).toMatchObject({ resize: { shortestEdge: 224 }, filter: 'bicubic', width: 224, height: 224 });
    expect(meta.versions).toMatchObject({ diffusers: expect.stringMatching(/^0\.40/), transformers: expect.stringMatching(/^5\./) });
  });

  it('image encoder: the engine\'s embedding of the photo is diffusers\' (CLIPImageProcessor + CLIPVisionModelWithProjection)', async () => {
    const want = ref('image_embeds');
    expect(want.shape).toEqual([1, 32]);
    const e = await anyPipe().encodeImage(photo);
    // The engine reproduces Pillow's bicubic resize and transformers' crop exactly (clip-reference.test.ts),
    // so only float32 graph error remains.
    expect(relDiff(e, want.data)).toBeLessThan(EMBED_TOL);
    // What the tolerance must tell apart: another photo's embedding is far off.
    const other = await anyPipe().encodeImage(await decodePng(join(PHOTOS, 'coffee.png')));
    expect(relDiff(other, want.data)).toBeGreaterThan(100 * EMBED_TOL);
  });

  it('UNet: one call on torch\'s inputs ([zeros, embedding] as encoder_hidden_states [2, 1, 32]) gives torch\'s noise predictions', async () => {
    const pipe = anyPipe();
    const sample = ref('io.unet.sample');
    const hidden = ref('io.unet.encoder_hidden_states');
    const want = ref('io.unet.out_sample').data;
    const [, c, h, w] = sample.shape;
    const one = c * h * w;
    const [, tokens, width] = hidden.shape;
    expect([tokens, width]).toEqual([1, 32]);
    const emb = (b: number) => ({ hidden: hidden.data.slice(b * width, (b + 1) * width), tokens, width, truncated: false });
    for (const b of [0, 1]) {
      // guidance 1: the raw prediction of one half of diffusers' batch.
      const eps = await pipe.unet.predict({ latents: sample.data.slice(b * one, (b + 1) * one), count: 1, latentSize: [h, w], timestep: ref('io.unet.timestep').data[0], cond: [emb(b)], uncond: [emb(b)], guidance: [1] });
      expect(relDiff(eps, want.subarray(b * one, (b + 1) * one))).toBeLessThan(1e-4);
    }
  });

  it('VAE decoder: torch\'s latent gives torch\'s picture within one level', async () => {
    const pipe = anyPipe();
    const z = ref('io.vae_decoder.latent_sample');
    const want = ref('io.vae_decoder.sample');
    const [, , h, w] = z.shape;
    const img = await pipe.vae.decode(z.data.map((v) => v * pipe.vae.scalingFactor), h, w);
    const [, , H, W] = want.shape;
    expect([img.height, img.width]).toEqual([H, W]);
    let worst = 0;
    for (let p = 0; p < H * W; p++)
      for (let ch = 0; ch < 3; ch++) worst = Math.max(worst, Math.abs(img.data[p * 3 + ch] - Math.round(Math.min(255, Math.max(0, (want.data[ch * H * W + p] + 1) * 127.5)))));
    expect(worst).toBeLessThanOrEqual(1);
  });

  for (const c of cases) {
    it(`${c.name}: from diffusers' embedding and latents, ${c.engine_scheduler} (${c.num_inference_steps} steps, guidance ${c.guidance_scale}) reaches diffusers' final latents and image`, async () => {
      const pipe = pipes.get(c.engine_scheduler)!;
      expect(pipe.scheduler(c.num_inference_steps).timesteps).toEqual(c.timesteps);
      const { image, latents } = await renderCase(c, ref('image_embeds').data);
      expect([image.width, image.height]).toEqual([c.width, c.height]);
      expect(relDiff(latents, ref(`${c.name}.final_latents`).data)).toBeLessThan(LATENT_TOL);
      const { worst, mean } = levels(image, ref(`${c.name}.image`).data);
      expect(worst).toBeLessThanOrEqual(LEVELS);
      expect(mean).toBeLessThan(0.5);
    });
  }

  it('ddim end to end from the photo: the engine\'s own embedding gives diffusers\' latents and image too', async () => {
    const c = cases.find((k) => k.name === 'ddim_64')!;
    const { image, latents } = await renderCase(c, await pipes.get(c.engine_scheduler)!.encodeImage(photo));
    expect(relDiff(latents, ref(`${c.name}.final_latents`).data)).toBeLessThan(LATENT_TOL);
    expect(levels(image, ref(`${c.name}.image`).data).worst).toBeLessThanOrEqual(LEVELS);
  });

  it('the tolerances tell apart what matters: guidance 3.5 instead of 3, a non-zero unconditional embedding, another scheduler', async () => {
    const c = cases.find((k) => k.name === 'ddim_64')!;
    const want = ref(`${c.name}.final_latents`).data;
    const emb = ref('image_embeds').data;
    const off = await renderCase(c, emb, { guidance: 3.5 });
    expect(relDiff(off.latents, want)).toBeGreaterThan(10 * LATENT_TOL);
    // The unconditional half as the embedding itself (no guidance at all) instead of diffusers' zeros.
    const pipe = pipes.get(c.engine_scheduler)!;
    const e = { hidden: emb, tokens: 1, width: emb.length, truncated: false };
    const [noZeros] = await denoiseLockstep({
      unet: pipe.unet,
      latentSize: [c.height / 2, c.width / 2],
      schedulers: [pipe.scheduler(c.num_inference_steps)],
      xs: [Float32Array.from(ref('input_latents').data)],
      cond: [e],
      uncond: [e],
      guidance: [c.guidance_scale],
    });
    expect(relDiff(noZeros, want)).toBeGreaterThan(10 * LATENT_TOL);
    // DDIM and PNDM from the same start end close in latents, but not within the tolerance.
    expect(relDiff(ref('pndm_64.final_latents').data, want)).toBeGreaterThan(10 * LATENT_TOL);
  });
});
