/**
 * What real exports have beyond the demo models, on small models with exactly those inputs and
 * configs (models/feature-test-models.ts): LCM's guidance embedding, fp16 VAEs that overflow, SDXL
 * text encoders without hidden_states.N, old-style int64 [batch] timesteps.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StableDiffusionPipeline, ModelOutputError, upcastModelToFloat32, float32ToFloat16, float16ToFloat32 } from '../../../engine/index.ts';
import { testModelDir } from '../../../models/paths.ts';
import { LCM_TEST_DIM, FP16_VAE_WEIGHTS, FP16_VAE_BIAS, FP16_VAE_SCALE } from '../../../models/feature-test-models.ts';

/** diffusers' get_guidance_scale_embedding written out for dim 8: half 4, f_k = 10000^(-k/3). */
function expectedEmbedding(guidance: number): number[] {
  const w = (guidance - 1) * 1000;
  const f = [0, 1, 2, 3].map((k) => 10000 ** (-k / 3));
  return [...f.map((fk) => Math.sin(w * fk)), ...f.map((fk) => Math.cos(w * fk))];
}

describe('LCM-distilled UNet (time_cond_proj_dim)', () => {
  let pipe: StableDiffusionPipeline;
  beforeAll(async () => {
    pipe = await StableDiffusionPipeline.load(testModelDir('lcm'));
  });
  afterAll(() => pipe?.release());

  it('reads time_cond_proj_dim and takes LCM defaults (lcm sampler, 4 steps, guidance 8.5)', () => {
    expect(pipe.folder.timeCondProjDim).toBe(LCM_TEST_DIM);
    expect(pipe.unet.timeCondDim).toBe(LCM_TEST_DIM);
    expect(pipe.folder.defaults).toMatchObject({ steps: 4, guidance: 8.5, scheduler: 'lcm' });
  });

  it('feeds timestep_cond = the guidance embedding of w = guidance - 1, per batch item, without a second CFG pass', async () => {
    const { cond, uncond } = await pipe.encodePrompt('a lighthouse');
    const [h, w] = [4, 4];
    const per = 4 * h * w;
    const before = pipe.unet.items;
    const eps = await pipe.unet.predict({ latents: new Float32Array(2 * per), count: 2, latentSize: [h, w], timestep: 499, cond: [cond, cond], uncond: [uncond, uncond], guidance: [8.5, 2] });
    expect(pipe.unet.items - before).toBe(2); // guidance is embedded: no unconditional half
    for (const [b, g] of [[0, 8.5], [1, 2]] as const) {
      const want = expectedEmbedding(g);
      // The test UNet tiles timestep_cond over the item's latent.
      for (let i = 0; i < per; i++) expect(eps[b * per + i]).toBeCloseTo(want[i % LCM_TEST_DIM], 4);
    }
  });

  it('generates with the LCM sampler end to end (int64 [batch] timestep accepted)', async () => {
    const r = await pipe.generate({ prompt: 'a red boat', seed: 3, width: 64, height: 64 });
    expect(r.scheduler).toBe('lcm');
    expect(r.steps).toBe(4);
    expect(r.images[0].width).toBe(64);
    expect(r.latents.every(Number.isFinite)).toBe(true);
  });
});

/** What the fp16 test VAE computes in fp32: tanh(W z + b) nearest-upsampled 8x, as bytes. */
function expectedVaePixels(latent: Float32Array, h: number, w: number): Uint8Array {
  const out = new Uint8Array(h * 8 * w * 8 * 3);
  for (let y = 0; y < h * 8; y++)
    for (let x = 0; x < w * 8; x++)
      for (let c = 0; c < 3; c++) {
        let v = FP16_VAE_BIAS[c];
        for (let k = 0; k < 4; k++) v += FP16_VAE_WEIGHTS[c][k] * Math.fround(Math.fround(latent[k * h * w + (y >> 3) * w + (x >> 3)] / FP16_VAE_SCALE) * FP16_VAE_SCALE);
        const t = Math.tanh(v);
        out[(y * w * 8 + x) * 3 + c] = Math.round(Math.min(255, Math.max(0, (t + 1) * 127.5)));
      }
  return out;
}

function maxDiff(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('fp16 VAE that overflows (SDXL-style, force_upcast)', () => {
  const h = 4;
  const w = 4;
  // Latents of a typical magnitude: rgb ~ 1, far beyond 0.655, so fp16 overflows everywhere.
  const latent = Float32Array.from({ length: 4 * h * w }, (_, i) => Math.sin(i * 1.7) * 1.5);

  it('the model really overflows when run in fp16 (NaN out of ONNX Runtime)', async () => {
    const s = await ort.InferenceSession.create(join(testModelDir('fp16-vae'), 'vae_decoder', 'model.onnx'));
    const out = await s.run({ latent_sample: new ort.Tensor('float16', float32ToFloat16(latent.map((v) => v / FP16_VAE_SCALE)), [1, 4, h, w]) });
    const px = float16ToFloat32(out.sample.data as Uint16Array);
    expect(px.some((v) => Number.isNaN(v))).toBe(true);
    await s.release();
  });

  it('force_upcast: decodes in fp32 from the start and gives the finite fp32 picture', async () => {
    const pipe = await StableDiffusionPipeline.load(testModelDir('fp16-vae'));
    try {
      expect(pipe.folder.vaeForceUpcast).toBe(true);
      expect(pipe.vae.upcast).toBe(true);
      expect(pipe.vae.dtype).toBe('float32');
      const img = await pipe.vae.decode(latent, h, w);
      expect(maxDiff(img.data, expectedVaePixels(latent, h, w))).toBeLessThanOrEqual(1);
      const r = await pipe.generate({ prompt: 'a castle', seed: 1, steps: 2, width: 64, height: 64 });
      expect(r.images[0].data.some((v) => v > 0)).toBe(true);
    } finally {
      await pipe.release();
    }
  });

  it('without the flag: the first NaN decode is retried in fp32, never returned as a black frame', async () => {
    const pipe = await StableDiffusionPipeline.load(testModelDir('fp16-vae-noflag'));
    try {
      expect(pipe.vae.upcast).toBe(false);
      expect(pipe.vae.dtype).toBe('float16');
      const img = await pipe.vae.decode(latent, h, w);
      expect(pipe.vae.upcast).toBe(true);
      expect(maxDiff(img.data, expectedVaePixels(latent, h, w))).toBeLessThanOrEqual(1);
    } finally {
      await pipe.release();
    }
  });

  it('an fp16 VAE that cannot be upcast (external weights) is refused with a message naming the fix', async () => {
    const pipe = await StableDiffusionPipeline.load(testModelDir('fp16-vae-external'));
    try {
      expect(pipe.warnings.join(' ')).toMatch(/force_upcast .*could not be converted to fp32.*external data/);
      const err = await pipe.vae.decode(latent, h, w).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ModelOutputError);
      expect((err as Error).message).toMatch(/fp16 VAE decoder overflowed .*NaN.*external data.*fp32 VAE decoder.*sdxl-vae-fp16-fix/);
    } finally {
      await pipe.release();
    }
  });

  it('upcasting rewrites types, casts, initializers and constants; the fp32 model computes the same graph', async () => {
    const bytes = readFileSync(join(testModelDir('fp16-vae'), 'vae_decoder', 'model.onnx'));
    const s = await ort.InferenceSession.create(upcastModelToFloat32(bytes));
    expect(s.inputMetadata[0]).toMatchObject({ name: 'latent_sample', type: 'float32' });
    const out = await s.run({ latent_sample: new ort.Tensor('float32', latent.map((v) => v / FP16_VAE_SCALE), [1, 4, h, w]) });
    expect(out.sample.type).toBe('float32');
    const px = out.sample.data as Float32Array;
    // Pixel (0,0) of each channel against the formula, in fp32.
    for (let c = 0; c < 3; c++) {
      let v = FP16_VAE_BIAS[c];
      for (let k = 0; k < 4; k++) v += FP16_VAE_WEIGHTS[c][k] * latent[k * h * w];
      expect(px[c * 64 * h * w]).toBeCloseTo(Math.tanh(v), 5);
    }
    await s.release();
  });
});

describe('SDXL text encoders without hidden_states.N', () => {
  it('uses last_hidden_state and warns what quality is lost, at load and with every result', async () => {
    const pipe = await StableDiffusionPipeline.load(testModelDir('xl-nohidden'));
    try {
      expect(pipe.warnings).toHaveLength(2);
      expect(pipe.warnings[0]).toMatch(/text_encoder\/model\.onnx has no hidden_states\.N outputs.*penultimate layer.*prompts are followed less closely.*optimum-cli export onnx/);
      const r = await pipe.generate({ prompt: 'a castle', seed: 2, steps: 2, guidance: 2, width: 64, height: 64 });
      expect(r.warnings.some((w) => /text_encoder_2\/model\.onnx has no hidden_states/.test(w))).toBe(true);
      const { cond } = await pipe.encodePrompt('a castle');
      expect(cond.width).toBe(80);
    } finally {
      await pipe.release();
    }
  });

  it('an export with hidden_states.N loads without that warning', async () => {
    const pipe = await StableDiffusionPipeline.load(testModelDir('xl'));
    try {
      expect(pipe.warnings).toEqual([]);
    } finally {
      await pipe.release();
    }
  });
});
