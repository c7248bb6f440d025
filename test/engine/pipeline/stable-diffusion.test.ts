/**
 * The Stable Diffusion pipeline end to end on the CPU with the project's closed-form test models:
 * real tokenizer, real onnxruntime sessions, real schedulers. Because the demo UNet is the exact
 * noise predictor of a known distribution, these tests check where samplers land, not just shapes.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { StableDiffusionPipeline, ExecutionProviderError, ModelFileError, InvalidRequestError } from '../../../engine/index.ts';
import { testModelDir } from '../../../models/paths.ts';
import { demoMean, meanAbsDiff, standardized } from '../../helpers/demo.ts';
import { useTempDir } from '../../helpers/temp-dir.ts';

const SIZE = { width: 128, height: 128 };

describe('text-to-image, fp32 demo model', () => {
  let pipe: StableDiffusionPipeline;
  beforeAll(async () => {
    pipe = await StableDiffusionPipeline.load(testModelDir('demo'));
  });
  afterAll(() => pipe?.release());

  it('reads the model folder: family, dtype, defaults, names from the sessions', () => {
    expect(pipe.folder.family).toBe('sd1');
    expect(pipe.folder.isDemo).toBe(true);
    expect(pipe.dtype).toBe('float32');
    expect(pipe.folder.defaults.width).toBe(256);
  });

  it('gives the same image for the same seed and a different one for another seed', async () => {
    const a = await pipe.generate({ prompt: 'a red boat', seed: 7, steps: 6, ...SIZE });
    const b = await pipe.generate({ prompt: 'a red boat', seed: 7, steps: 6, ...SIZE });
    const c = await pipe.generate({ prompt: 'a red boat', seed: 8, steps: 6, ...SIZE });
    expect(a.images[0].width).toBe(128);
    expect(a.images[0].height).toBe(128);
    expect(a.images[0].data.length).toBe(128 * 128 * 3);
    expect(Buffer.from(a.images[0].data).equals(Buffer.from(b.images[0].data))).toBe(true);
    expect(meanAbsDiff(a.images[0].data, c.images[0].data)).toBeGreaterThan(1);
    expect(a.seeds).toEqual([7]);
  });

  it('renders visibly different images for different prompts', async () => {
    const a = await pipe.generate({ prompt: 'a quiet forest at dawn', seed: 1, steps: 8, ...SIZE });
    const b = await pipe.generate({ prompt: 'neon city skyline in the rain', seed: 1, steps: 8, ...SIZE });
    expect(meanAbsDiff(a.images[0].data, b.images[0].data)).toBeGreaterThan(10);
  });

  for (const scheduler of ['ddim', 'dpmpp_2m', 'euler'] as const) {
    it(`${scheduler} lands on the model's data distribution N(mu(prompt), s^2)`, async () => {
      const prompt = 'a watercolour of mountains';
      const r = await pipe.generate({ prompt, seed: 42, steps: 30, guidance: 1, scheduler, ...SIZE });
      const mu = await demoMean(pipe, prompt, { guidance: 1, ...SIZE });
      const { mean, std } = standardized(r.latents, mu);
      expect(Math.abs(mean)).toBeLessThan(0.08);
      expect(std).toBeGreaterThan(0.9);
      expect(std).toBeLessThan(1.1);
      // ... and clearly not on another prompt's distribution.
      const other = await demoMean(pipe, 'a plate of spaghetti', { guidance: 1, ...SIZE });
      expect(standardized(r.latents, other).std).toBeGreaterThan(std + 0.15);
    });
  }

  it('classifier-free guidance lands on mu_u + g (mu_c - mu_u); 0 and 1 skip the unconditional pass', async () => {
    const prompt = 'an orange cat';
    const negative = 'blurry';
    const before = pipe.unet.items;
    const g1 = await pipe.generate({ prompt, negativePrompt: negative, seed: 3, steps: 10, guidance: 1, ...SIZE });
    const itemsG1 = pipe.unet.items - before;
    const g0 = await pipe.generate({ prompt, negativePrompt: negative, seed: 3, steps: 10, guidance: 0, ...SIZE });
    expect(itemsG1).toBe(10);
    expect(Buffer.from(g0.images[0].data).equals(Buffer.from(g1.images[0].data))).toBe(true);

    const mid = pipe.unet.items;
    const g3 = await pipe.generate({ prompt, negativePrompt: negative, seed: 3, steps: 30, guidance: 3, scheduler: 'ddim', ...SIZE });
    expect(pipe.unet.items - mid).toBe(60);
    const muGuided = await demoMean(pipe, prompt, { negative, guidance: 3, ...SIZE });
    const muCond = await demoMean(pipe, prompt, { negative, guidance: 1, ...SIZE });
    const landed = standardized(g3.latents, muGuided);
    expect(Math.abs(landed.mean)).toBeLessThan(0.08);
    expect(landed.std).toBeLessThan(1.1);
    expect(standardized(g3.latents, muCond).std).toBeGreaterThan(1.2);
  });

  it('a batch renders image i exactly as a single render with seed + i', async () => {
    const batch = await pipe.generate({ prompt: 'glass marbles', seed: 100, steps: 5, batchSize: 2, ...SIZE });
    const single = await pipe.generate({ prompt: 'glass marbles', seed: 101, steps: 5, ...SIZE });
    expect(batch.seeds).toEqual([100, 101]);
    expect(meanAbsDiff(batch.images[1].data, single.images[0].data)).toBeLessThan(0.01);
    expect(meanAbsDiff(batch.images[0].data, batch.images[1].data)).toBeGreaterThan(1);
  });

  it('reports truncation of a prompt longer than 77 tokens', async () => {
    const long = Array.from({ length: 90 }, (_, i) => `word${i}`).join(' ');
    const r = await pipe.generate({ prompt: long, seed: 1, steps: 1, ...SIZE });
    const tokens = pipe.tokenizers[0].encodeWithInfo(long).tokenCount - 2;
    expect(tokens).toBeGreaterThan(75);
    expect(r.warnings).toContain(
      `The prompt is ${tokens} CLIP tokens long; the text encoder reads 75 (77 CLIP tokens with its start and end), so its end was cut off: shorten it to keep every word.`,
    );
    expect((await pipe.generate({ prompt: 'short', seed: 1, steps: 1, ...SIZE })).warnings.join(' ')).not.toMatch(/cut off/);
  });

  it('tokenizes each prompt once for both the encoder and the length warning (it tokenized it again for the warning)', async () => {
    const long = Array.from({ length: 85 }, (_, i) => `tile${i}`).join(' ');
    const negative = Array.from({ length: 80 }, (_, i) => `blur${i}`).join(' ');
    const tokenizer = pipe.tokenizers[0];
    const [promptTokens, negativeTokens] = [tokenizer.encodeWithInfo(long).tokenCount - 2, tokenizer.encodeWithInfo(negative).tokenCount - 2];
    const spy = vi.spyOn(tokenizer, 'encodeWithInfo');
    try {
      const r = await pipe.generate({ prompt: long, negativePrompt: negative, seed: 1, steps: 1, guidance: 2, width: 64, height: 64 });
      expect(spy.mock.calls.map(([text]) => text)).toEqual([long, negative]);
      // The same warnings as before, from that one count.
      expect(r.warnings).toContain(`The prompt is ${promptTokens} CLIP tokens long; the text encoder reads 75 (77 CLIP tokens with its start and end), so its end was cut off: shorten it to keep every word.`);
      expect(r.warnings).toContain(`The negative prompt is ${negativeTokens} CLIP tokens long; the text encoder reads 75 (77 CLIP tokens with its start and end), so its end was cut off: shorten it to keep every word.`);
    } finally {
      spy.mockRestore();
    }
  });

  it('refuses sizes that are not multiples of 8 with a clear message', async () => {
    await expect(pipe.generate({ prompt: 'x', width: 100, height: 128, steps: 1 })).rejects.toThrow(InvalidRequestError);
    await expect(pipe.generate({ prompt: 'x', width: 100, height: 128, steps: 1 })).rejects.toThrow(/width must be a multiple of 8/);
  });

  it('stops when the signal is aborted', async () => {
    const ac = new AbortController();
    const p = pipe.generate({ prompt: 'x', seed: 1, steps: 50, ...SIZE, signal: ac.signal, onStep: (i) => i === 2 && ac.abort() });
    await expect(p).rejects.toThrow(/abort/i);
  });
});

describe('other model variants', () => {
  it('fp16 model: Uint16Array tensors in and out, int64 timesteps, same picture as fp32 within fp16 error', async () => {
    const p16 = await StableDiffusionPipeline.load(testModelDir('fp16'));
    const p32 = await StableDiffusionPipeline.load(testModelDir('demo'));
    try {
      expect(p16.dtype).toBe('float16');
      const opts = { prompt: 'a lighthouse', seed: 5, steps: 8, ...SIZE };
      const a = await p16.generate(opts);
      const b = await p16.generate(opts);
      const c = await p32.generate(opts);
      expect(Buffer.from(a.images[0].data).equals(Buffer.from(b.images[0].data))).toBe(true);
      expect(meanAbsDiff(a.images[0].data, c.images[0].data)).toBeLessThan(2);
      const other = await p16.generate({ ...opts, prompt: 'a field of sunflowers' });
      expect(meanAbsDiff(a.images[0].data, other.images[0].data)).toBeGreaterThan(10);
    } finally {
      await p16.release();
      await p32.release();
    }
  });

  it('v-prediction model (SD 2.x 768-v style) lands on its distribution', async () => {
    const pipe = await StableDiffusionPipeline.load(testModelDir('vpred'));
    try {
      expect(pipe.folder.family).toBe('sd2-v');
      for (const scheduler of ['ddim', 'dpmpp_2m'] as const) {
        const r = await pipe.generate({ prompt: 'a snowy owl', seed: 9, steps: 30, guidance: 1, scheduler, ...SIZE });
        const mu = await demoMean(pipe, 'a snowy owl', { guidance: 1, ...SIZE });
        const { mean, std } = standardized(r.latents, mu);
        expect(Math.abs(mean)).toBeLessThan(0.08);
        expect(Math.abs(std - 1)).toBeLessThan(0.1);
      }
    } finally {
      await pipe.release();
    }
  });

  it('SDXL layout: two text encoders, pooled text_embeds and time_ids', async () => {
    const pipe = await StableDiffusionPipeline.load(testModelDir('xl'));
    try {
      expect(pipe.folder.family).toBe('sdxl');
      expect(pipe.unet.isXL).toBe(true);
      const { cond, uncond } = await pipe.encodePrompt('a castle', '');
      expect(cond.width).toBe(80); // 32 + 48, penultimate layers of both encoders
      expect(cond.pooled).toHaveLength(24);
      // SDXL zeroes the empty negative prompt instead of encoding "".
      expect(uncond.hidden.every((v) => v === 0)).toBe(true);
      const a = await pipe.generate({ prompt: 'a castle', seed: 2, steps: 8, guidance: 2, ...SIZE });
      const b = await pipe.generate({ prompt: 'a submarine', seed: 2, steps: 8, guidance: 2, ...SIZE });
      expect(a.images[0].width).toBe(128);
      expect(meanAbsDiff(a.images[0].data, b.images[0].data)).toBeGreaterThan(5);
    } finally {
      await pipe.release();
    }
  });
});

describe('clear errors', () => {
  let dir: string;
  useTempDir('blendfarm-model-', (d) => (dir = d));

  it('names a missing component file and what was expected', async () => {
    const broken = join(dir, 'no-unet');
    await cp(testModelDir('demo'), broken, { recursive: true });
    await rm(join(broken, 'unet', 'model.onnx'));
    const err = await StableDiffusionPipeline.load(broken).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelFileError);
    expect((err as Error).message).toMatch(/unet[\\/]model\.onnx: file not found \(expected the unet exported to ONNX/);
  });

  it('names a missing external weights file', async () => {
    const broken = join(dir, 'no-weights');
    await cp(testModelDir('demo'), broken, { recursive: true });
    await rm(join(broken, 'text_encoder', 'model.onnx_data'));
    await expect(StableDiffusionPipeline.load(broken)).rejects.toThrow(/text_encoder[\\/]model\.onnx: .*external weight file/);
  });

  it('names a malformed scheduler config', async () => {
    const broken = join(dir, 'bad-json');
    await cp(testModelDir('demo'), broken, { recursive: true });
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(broken, 'scheduler', 'scheduler_config.json'), '{ not json');
    await expect(StableDiffusionPipeline.load(broken)).rejects.toThrow(/scheduler_config\.json: not valid JSON/);
  });

  it('a missing model folder points at the docs', async () => {
    await expect(StableDiffusionPipeline.load(join(dir, 'nope'))).rejects.toThrow(/folder not found .*models\/README\.md/);
  });

  it('a model file given instead of its folder is called a file (it was "folder not found", though the path is there)', async () => {
    const file = join(testModelDir('demo'), 'unet', 'model.onnx');
    await expect(StableDiffusionPipeline.load(file)).rejects.toThrow(`${file}: is a file, not a folder; give the model's folder, the one holding model_index.json (expected a Stable Diffusion pipeline exported to ONNX; see models/README.md)`);
  });

  it('says which execution provider could not be loaded and why', async () => {
    const err = await StableDiffusionPipeline.load(testModelDir('demo'), { ep: 'cuda' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExecutionProviderError);
    expect((err as Error).message).toMatch(/^The cuda execution provider could not be loaded: .+use --ep cpu/);
  });
});
