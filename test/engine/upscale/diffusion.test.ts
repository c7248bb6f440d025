/**
 * The diffusion x4 upscaler path with a test model that has the real interface (7-channel UNet,
 * noise level as class_labels, the x4 VAE's own scaling factor, v-prediction DDIM + DDPM low-res
 * noise) and a known answer: the low-res image enlarged 4x, plus the conditioning noise.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp, { type Sharp } from 'sharp';
import { join } from 'node:path';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { DiffusionUpscaler, MAX_SEED, type RawImage } from '../../../engine/index.ts';
import { ensureX4TestModel, X4_SCHEDULER_CONFIG } from '../../../models/x4-upscaler-test.ts';
import { DEMO_MODEL_DIR } from '../../../models/paths.ts';

const CROP = join(import.meta.dirname, '../../fixtures/photos/chelsea-crop.png');
let up: DiffusionUpscaler;
let photo: RawImage;

async function raw(s: Sharp): Promise<RawImage> {
  const { data, info } = await s.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height, channels: 3 };
}
const fromRaw = (img: RawImage) => sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
const shrink = (img: RawImage, w: number, h: number) => raw(fromRaw(img).resize(w, h, { kernel: 'cubic' }));

function meanAbs(a: Uint8Array, b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

beforeAll(async () => {
  up = await DiffusionUpscaler.load(await ensureX4TestModel(), { threads: 2 });
  photo = await raw(sharp(CROP));
});
afterAll(async () => {
  await up?.release();
});

describe('x4 diffusion upscaler', () => {
  it('upscales one image 4x and follows the low-res input', async () => {
    const low = await shrink(photo, 32, 24);
    const r = await up.upscaleKeyframes({ keyframes: [low], steps: 10, seed: 7 });
    const out = r.frames[0].image;
    expect([out.width, out.height]).toEqual([128, 96]);
    // Back at the low-res size the picture is the input, up to the conditioning noise (level 20).
    expect(meanAbs((await shrink(out, 32, 24)).data, low.data)).toBeLessThan(8);
    // Without conditioning noise it is closer still.
    const clean = await up.upscaleKeyframes({ keyframes: [low], steps: 10, seed: 7, noiseLevel: 0 });
    expect(meanAbs((await shrink(clean.frames[0].image, 32, 24)).data, low.data)).toBeLessThan(4);
    // Guided: uncond + cond per latent, one UNet batch item each, every step.
    expect(r.unetItems).toBe(2 * 10);
  });

  it('upscales keyframes as a latent-blending transition: shared early steps, slerped in-betweens, no added flicker', async () => {
    const keyframes: RawImage[] = [];
    for (let k = 0; k < 5; k++) keyframes.push(await raw(sharp(CROP).extract({ left: 4 + 6 * k, top: 12, width: 96, height: 72 }).resize(32, 24, { kernel: 'cubic' })));
    const steps = 10;
    const r = await up.upscaleKeyframes({ keyframes, promptA: 'a cat', promptB: 'a tiger', steps, seed: 3, depthStrength: 0.4, inBetween: 1 });
    expect(r.frames.map((f) => f.keyframe)).toEqual([0, null, 1, null, 2, null, 3, null, 4]);
    // The two ends run in full; every other keyframe branches off its neighbours, deeper levels later.
    expect(r.frames[0].injIdx).toBe(0);
    expect(r.frames[8].injIdx).toBe(0);
    const mid = r.frames[4];
    expect(mid.parents).toEqual([0, 8]);
    expect(mid.injIdx).toBe(4);
    expect(r.frames[2].parents).toEqual([0, 4]);
    expect(r.frames[2].injIdx).toBeGreaterThan(mid.injIdx);
    for (const [i, f] of r.frames.entries()) {
      // Before its injection step a branch has no latents of its own: those steps were its parents'.
      for (let s = 0; s < f.injIdx; s++) expect(r.latents[i][s]).toBeNull();
      expect(r.latents[i][f.injIdx]).not.toBeNull();
    }
    // Shared steps are not recomputed: UNet work = own steps only (x2 for guidance).
    const own = r.frames.reduce((a, f) => a + (steps - f.injIdx), 0);
    expect(r.unetItems).toBe(2 * own);
    expect(own).toBeLessThan(r.frames.length * steps);

    // Every upscaled keyframe shows its own low-res frame.
    const lows = await Promise.all(r.frames.map((f) => shrink(f.image, 32, 24)));
    for (const [i, f] of r.frames.entries()) {
      if (f.keyframe === null) continue;
      expect(meanAbs(lows[i].data, keyframes[f.keyframe].data)).toBeLessThan(8);
    }
    // In-betweens (conditioned on the slerp of their neighbours) lie between their neighbours.
    for (const [i, f] of r.frames.entries()) {
      if (f.keyframe !== null) continue;
      const [a, b] = f.parents!;
      const avg = lows[a].data.map((v, j) => (v + lows[b].data[j]) / 2);
      expect(meanAbs(lows[i].data, avg)).toBeLessThan(meanAbs(lows[a].data, lows[b].data) * 0.75 + 2);
    }
    // Neighbouring upscaled keyframes differ no more than the low-res keyframes do.
    const keyIdx = r.frames.flatMap((f, i) => (f.keyframe === null ? [] : [i]));
    for (let k = 1; k < keyIdx.length; k++) {
      const dLow = meanAbs(keyframes[k].data, keyframes[k - 1].data);
      const dUp = meanAbs(lows[keyIdx[k]].data, lows[keyIdx[k - 1]].data);
      expect(dUp).toBeLessThan(dLow * 1.25 + 1);
    }
  });

  it('takes every seed a movie may have, the largest (MAX_SEED) included', async () => {
    const low = await shrink(photo, 16, 16);
    const r = await up.upscaleKeyframes({ keyframes: [low], steps: 2, seed: MAX_SEED });
    expect(r.seed).toBe(MAX_SEED);
    expect([r.frames[0].image.width, r.frames[0].image.height]).toEqual([64, 64]);
  });

  it('refuses a folder that is not the x4 upscaler, and sizes it cannot take', async () => {
    await expect(DiffusionUpscaler.load(DEMO_MODEL_DIR)).rejects.toThrow(/not a StableDiffusionUpscalePipeline/);
    // The folder is given as --weights (--model names the upscaler, x4-diffusion).
    await expect(DiffusionUpscaler.load(DEMO_MODEL_DIR)).rejects.toThrow(/not a StableDiffusionUpscalePipeline; point --weights \(BLENDFARM_X4_UPSCALER_DIR\) at the x4 upscaler's ONNX export/);
    // A file given as the folder is called a file (it read "<file>/model_index.json: file not found").
    const index = join(DEMO_MODEL_DIR, 'model_index.json');
    await expect(DiffusionUpscaler.load(index)).rejects.toThrow(`${index}: is a file, not a folder; give the model's folder`);
    const odd = await shrink(photo, 30, 20);
    await expect(up.upscaleKeyframes({ keyframes: [odd], steps: 4 })).rejects.toThrow(/multiple of 8 on each side, got 30x20/);
  });
});

describe('x4 diffusion upscaler: scheduler choice and branch starts', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blendfarm-x4-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A copy of the x4 test model whose scheduler_config.json names `className`. */
  async function withScheduler(name: string, className: string): Promise<string> {
    const copy = join(dir, name);
    await cp(await ensureX4TestModel(), copy, { recursive: true });
    const file = join(copy, 'scheduler', 'scheduler_config.json');
    const config = JSON.parse(await readFile(file, 'utf8'));
    await writeFile(file, JSON.stringify({ ...config, ...X4_SCHEDULER_CONFIG, _class_name: className, skip_prk_steps: true }));
    return copy;
  }

  it('uses the engine\'s scheduler rule: a class it does not have falls back to DDIM with a warning saying so', async () => {
    const u = await DiffusionUpscaler.load(await withScheduler('heun', 'HeunDiscreteScheduler'), { threads: 2 });
    try {
      expect(u.warnings.join(' ')).toMatch(/HeunDiscreteScheduler, which the engine does not implement.*Using the ddim/);
      const low = await shrink(photo, 32, 24);
      const r = await u.upscaleKeyframes({ keyframes: [low], steps: 6, seed: 7 });
      expect(meanAbs((await shrink(r.frames[0].image, 32, 24)).data, low.data)).toBeLessThan(8);
    } finally {
      await u.release();
    }
    expect(up.warnings).toEqual([]);
  });

  it('PNDM (a schedule that repeats a timestep): every branch starts at its own step and runs the whole rest of the schedule', async () => {
    const u = await DiffusionUpscaler.load(await withScheduler('pndm', 'PNDMScheduler'), { threads: 2 });
    try {
      expect(u.warnings).toEqual([]);
      const keyframes: RawImage[] = [];
      for (let k = 0; k < 3; k++) keyframes.push(await raw(sharp(CROP).extract({ left: 4 + 10 * k, top: 12, width: 96, height: 72 }).resize(32, 24, { kernel: 'cubic' })));
      const steps = 8;
      const r = await u.upscaleKeyframes({ keyframes, steps, seed: 3, depthStrength: 0.5 });
      // PNDM's schedule has steps + 1 entries; the middle keyframe branches off mid-schedule.
      const scheduleLength = steps + 1;
      expect(r.frames[1].injIdx).toBeGreaterThan(0);
      expect(r.unetItems).toBe(2 * r.frames.reduce((a, f) => a + (scheduleLength - f.injIdx), 0));
      for (const [i, f] of r.frames.entries()) {
        expect(r.latents[i]).toHaveLength(scheduleLength + 1);
        expect(r.latents[i][scheduleLength]).not.toBeNull();
        // Each keyframe, fully denoised, shows its own low-res frame.
        expect(meanAbs((await shrink(f.image, 32, 24)).data, keyframes[f.keyframe!].data)).toBeLessThan(8);
      }
    } finally {
      await u.release();
    }
  });
});
