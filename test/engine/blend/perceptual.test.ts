/**
 * The built-in perceptual metric on real photographs (test/fixtures/photos, CC0): it must rank
 * distortions the way LPIPS does. LPIPS rates noise, blur (lost detail) and fine texture far above
 * a small uniform brightness shift, even when all have about the same PSNR; the old metric, which
 * shrank frames to 128 px first, scored a 2-px checkerboard 0 and the shift 0.031.
 */
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { join } from 'node:path';
import { BuiltinPerceptualMetric, ExecutionProviderError, ModelFileError, SeededRandom, builtinDistance, createPerceptualMetric, type RawImage } from '../../../engine/index.ts';
import { GraphBuilder, saveModel } from '../../../models/onnx/index.ts';
import { testModelDir } from '../../../models/paths.ts';
import { useTempDir } from '../../helpers/temp-dir.ts';

const PHOTOS = ['chelsea.png', 'coffee.png'];

async function load(name: string): Promise<RawImage> {
  const file = fileURLToPath(new URL(`../../fixtures/photos/${name}`, import.meta.url));
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height, channels: 3 };
}

const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));
const map = (img: RawImage, f: (v: number, x: number, y: number, i: number) => number): RawImage => {
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < out.length; i++) {
    const p = (i / 3) | 0;
    out[i] = clamp(f(img.data[i], p % img.width, (p / img.width) | 0, i));
  }
  return { ...img, data: out };
};

const shift = (img: RawImage, by: number) => map(img, (v) => v + by);
const checkerboard = (img: RawImage, amp: number, cell = 2) => map(img, (v, x, y) => v + (((((x / cell) | 0) + ((y / cell) | 0)) & 1) ? amp : -amp));
function noise(img: RawImage, sigma: number): RawImage {
  const rng = new SeededRandom(7);
  return map(img, (v) => v + sigma * rng.nextGaussian());
}
async function blur(img: RawImage, sigma: number): Promise<RawImage> {
  const data = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }).blur(sigma).raw().toBuffer();
  return { ...img, data: new Uint8Array(data) };
}

function psnr(a: RawImage, b: RawImage): number {
  let se = 0;
  for (let i = 0; i < a.data.length; i++) se += (a.data[i] - b.data[i]) ** 2;
  return 10 * Math.log10((255 * 255) / (se / a.data.length));
}

const metric = new BuiltinPerceptualMetric();

describe('built-in perceptual metric on real photos', () => {
  for (const name of PHOTOS) {
    it(`${name}: noise, blur and fine texture score far above a brightness shift of similar PSNR`, async () => {
      const img = await load(name);
      const shifted = shift(img, 8);
      const variants = { noise: noise(img, 8), blur: await blur(img, 1.2), checker: checkerboard(img, 8) };
      const dShift = await metric.distance(img, shifted);
      expect(dShift).toBeGreaterThan(0);
      for (const [kind, v] of Object.entries(variants)) {
        // Comparable or milder distortions by PSNR (shift +8 is ~30 dB) ...
        expect(psnr(img, v), kind).toBeGreaterThan(psnr(img, shifted) - 3);
        // ... that LPIPS rates much higher: here at least 3x the shift.
        expect(await metric.distance(img, v), kind).toBeGreaterThan(3 * dShift);
      }
    });
  }

  it('sees full-resolution texture: a 2-px +-40 checkerboard on a 512x512 photo scores far above a +8 shift', async () => {
    const src = await load('coffee.png');
    const data = await sharp(src.data, { raw: { width: src.width, height: src.height, channels: 3 } }).resize(512, 512, { fit: 'cover' }).raw().toBuffer();
    const img: RawImage = { data: new Uint8Array(data), width: 512, height: 512, channels: 3 };
    const dChecker = await metric.distance(img, checkerboard(img, 40));
    const dShift = await metric.distance(img, shift(img, 8));
    expect(dChecker).toBeGreaterThan(10 * dShift);
  });

  it('is zero for identical frames, symmetric, and grows with the size of a distortion', async () => {
    const img = await load('chelsea.png');
    const copy: RawImage = { ...img, data: Uint8Array.from(img.data) };
    expect(await metric.distance(img, copy)).toBe(0);
    const n4 = noise(img, 4);
    const n12 = noise(img, 12);
    expect(await metric.distance(img, n4)).toBe(await metric.distance(n4, img));
    expect(await metric.distance(n12, img)).toBe(await metric.distance(img, n12));
    expect(await metric.distance(img, n12)).toBeGreaterThan(await metric.distance(img, n4));
    expect(await metric.distance(img, shift(img, 24))).toBeGreaterThan(await metric.distance(img, shift(img, 8)));
    expect(await metric.distance(img, await blur(img, 3))).toBeGreaterThan(await metric.distance(img, await blur(img, 1)));
  });

  it('refuses frames of different sizes with a request error', async () => {
    const img = await load('chelsea.png');
    const other = await load('coffee.png');
    await expect(metric.distance(img, other)).rejects.toThrow(/same size, got 451x300 and 600x400/);
  });
});

// createPerceptualMetric on a GPU provider builds the built-in metric's ONNX graph. When that graph
// does not open, a caller that asks for it (onFallback: the worker, the CLIs) gets the JavaScript
// metric, the same values on the CPU, with the reason; one that does not (the benchmarks) gets
// the error. LPIPS never falls back: its values are not the built-in metric's. The failing loads
// here are real ONNX Runtime loads: bytes that are no ONNX model, on 'cuda', fail on any machine
// (where CUDA is missing the provider fails, where it is there the model does).
describe('createPerceptualMetric when a model does not load', () => {
  const notAGraph = () => new TextEncoder().encode('not an ONNX model');

  it('falls back to the JavaScript metric, with the reason, when the built-in graph does not open on a GPU provider', async () => {
    const reasons: string[] = [];
    const fallback = await createPerceptualMetric(undefined, { ep: 'cuda', onFallback: (reason) => reasons.push(reason) }, notAGraph);
    expect(fallback).toBeInstanceOf(BuiltinPerceptualMetric);
    expect(fallback.name).toBe(new BuiltinPerceptualMetric().name);
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/cuda execution provider could not be loaded|the built-in perceptual metric graph: not a loadable ONNX model/);
    expect(reasons[0]).not.toMatch(/\n/);
    const img = await load('chelsea.png');
    for (const other of [noise(img, 6), shift(img, 9), await blur(img, 2), img]) {
      expect(await fallback.distance(img, other)).toBe(builtinDistance(img, other));
    }
  });

  it('throws the load error when the caller takes no fallback (a benchmark of the graph)', async () => {
    const load = createPerceptualMetric(undefined, { ep: 'cuda' }, notAGraph);
    await expect(load).rejects.toThrow(/cuda execution provider could not be loaded|not a loadable ONNX model/);
    await expect(load).rejects.toSatisfy((err) => err instanceof ExecutionProviderError || err instanceof ModelFileError);
  });

  it('throws when an LPIPS model does not load, fallback or not', async () => {
    const reasons: string[] = [];
    const missing = '/nonexistent/lpips.onnx';
    await expect(createPerceptualMetric(missing, { ep: 'cuda', onFallback: (reason) => reasons.push(reason) }, notAGraph)).rejects.toThrow(ModelFileError);
    await expect(createPerceptualMetric(missing, { ep: 'cpu', onFallback: (reason) => reasons.push(reason) })).rejects.toThrow(/lpips\.onnx: file not found/);
    expect(reasons).toEqual([]);
  });
});

describe('an --lpips model that is not a perceptual metric is refused at load', () => {
  let dir = '';
  useTempDir('lpips-', (d) => (dir = d));

  it('a UNet given as --lpips is named, with what the flag is for (it was: "input \'encoder_hidden_states\' is missing in \'feeds\'" after the keyframes)', async () => {
    const unet = join(testModelDir('demo'), 'unet', 'model.onnx');
    const err = await createPerceptualMetric(unet, { ep: 'cpu' }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err!.message).toMatch(new RegExp(`^${unet.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not a perceptual distance \\(LPIPS\\) model: it has 3 inputs, not two\\. The LPIPS model \\(--lpips, BLENDFARM_LPIPS_MODEL\\) rates how different two frames look`));
    expect(err!.message).toMatch(/This one has inputs sample float32 \[.*encoder_hidden_states/);
  });

  it('two inputs that are not images, and a model with two outputs, are refused; a model of the LPIPS shape loads and measures', async () => {
    const model = async (name: string, channels: number, outputs: number) => {
      const g = new GraphBuilder(name);
      const a = g.input('in0', 'float32', [1, channels, 8, 8]);
      const b = g.input('in1', 'float32', [1, channels, 8, 8]);
      const d = g.op('Abs', [g.op('Sub', [a, b])]);
      g.output(d, 'distance', 'float32', [1, channels, 8, 8]);
      if (outputs === 2) g.output(g.op('Neg', [d]), 'other', 'float32', [1, channels, 8, 8]);
      await saveModel(join(dir, name), 'model.onnx', g.toModel());
      return join(dir, name, 'model.onnx');
    };
    await expect(createPerceptualMetric(await model('gray', 1, 1), { ep: 'cpu' })).rejects.toThrow(/not a perceptual distance \(LPIPS\) model: its input in0 has shape \[1, 1, 8, 8\], not \[N, 3, H, W\]/);
    await expect(createPerceptualMetric(await model('two-out', 3, 2), { ep: 'cpu' })).rejects.toThrow(/not a perceptual distance \(LPIPS\) model: it has 2 outputs, not one/);
    const metric = await createPerceptualMetric(await model('ok', 3, 1), { ep: 'cpu' });
    const black: RawImage = { data: new Uint8Array(8 * 8 * 3), width: 8, height: 8, channels: 3 };
    const white: RawImage = { ...black, data: new Uint8Array(8 * 8 * 3).fill(255) };
    expect(await metric.distance(black, white)).toBeCloseTo(2, 5);
    await metric.release?.();
  });
});
