/**
 * The built-in perceptual metric as an ONNX graph (models/perceptual-graph.ts, run by the engine's
 * OnnxBuiltinMetric on a GPU) computes what the JavaScript version computes: on real photos and
 * their distortions, on odd sizes with partial chroma blocks and odd pyramid levels, batched or
 * not; frames too small for every pyramid level stay in JavaScript. A transition measured with it
 * grows the same tree. Runs on the CPU provider here; on a GPU only the provider differs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { BUILTIN_METRIC_FULL_PYRAMID_SIDE } from '../../engine/blend/perceptual.ts';
import {
  BuiltinPerceptualMetric,
  InvalidRequestError,
  ONNX_METRIC_PIXELS_PER_CALL,
  OnnxBuiltinMetric,
  SeededRandom,
  StableDiffusionPipeline,
  builtinDistance,
  createPerceptualMetric,
  type RawImage,
} from '../../engine/index.ts';
import { LatentBlender } from '../../engine/blend/transition.ts';
import { builtinPerceptualGraph, builtinPerceptualGraphBuilder } from '../../models/perceptual-graph.ts';
import { testModelDir } from '../../models/paths.ts';

async function photo(name: string, size?: [number, number]): Promise<RawImage> {
  const file = fileURLToPath(new URL(`../fixtures/photos/${name}`, import.meta.url));
  let s = sharp(file).removeAlpha();
  if (size) s = s.resize(size[0], size[1], { fit: 'cover' });
  const { data, info } = await s.raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height, channels: 3 };
}

function noisy(img: RawImage, sigma: number, seed: number): RawImage {
  const rng = new SeededRandom(seed);
  return { ...img, data: img.data.map((v) => Math.max(0, Math.min(255, Math.round(v + sigma * rng.nextGaussian())))) };
}

function shifted(img: RawImage, by: number): RawImage {
  return { ...img, data: img.data.map((v, i) => Math.max(0, Math.min(255, v + (i % 3 === 2 ? -by : by)))) };
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

let metric: OnnxBuiltinMetric;
beforeAll(async () => {
  metric = await OnnxBuiltinMetric.load(builtinPerceptualGraph(), { ep: 'cpu' });
});
afterAll(() => metric?.release());

describe('built-in perceptual metric as an ONNX graph', () => {
  it('matches the JavaScript metric on real photos and their distortions, one pair per call and all in one batch', async () => {
    for (const name of ['chelsea.png', 'coffee.png']) {
      const img = await photo(name); // 451x300 and 600x400: partial 8x8 chroma blocks, odd pyramid levels
      const others = [noisy(img, 6, 1), shifted(img, 9), noisy(shifted(img, 3), 20, 2), img];
      const pairs = others.map((o) => [img, o] as const);
      const js = pairs.map(([a, b]) => builtinDistance(a, b));
      const batched = await metric.distances(pairs);
      expect(batched).toHaveLength(pairs.length);
      for (const [i, [a, b]] of pairs.entries()) {
        const one = await metric.distance(a, b);
        if (js[i] === 0) {
          expect(one).toBe(0);
          expect(batched[i]).toBe(0);
        } else {
          expect(rel(one, js[i]), `${name} pair ${i}`).toBeLessThan(1e-5);
          expect(rel(batched[i], js[i]), `${name} pair ${i} batched`).toBeLessThan(1e-5);
        }
      }
      // Distinct values, so agreement is not a coincidence of constants.
      expect(new Set(js.map((v) => v.toFixed(4))).size).toBe(js.length);
    }
  });

  it('splits many large pairs over several calls (ONNX_METRIC_PIXELS_PER_CALL) and keeps their order', async () => {
    const a = await photo('coffee.png', [1024, 512]);
    const pairs = [0, 1, 2, 3, 4, 5].map((k) => [a, noisy(a, 2 + 3 * k, k)] as const);
    const runs: number[] = [];
    const session = (metric as unknown as { loaded: { session: { run: (feeds: Record<string, { dims: readonly number[] }>) => Promise<unknown> } } }).loaded.session;
    const run = session.run.bind(session);
    session.run = (feeds) => {
      runs.push(feeds.a.dims[0]);
      return run(feeds);
    };
    try {
      const got = await metric.distances(pairs);
      expect(runs).toEqual([4, 2]); // 4 pairs of 1024x512 = ONNX_METRIC_PIXELS_PER_CALL
      expect(ONNX_METRIC_PIXELS_PER_CALL).toBe(4 * 1024 * 512);
      pairs.forEach(([x, y], i) => expect(rel(got[i], builtinDistance(x, y)), `pair ${i}`).toBeLessThan(1e-5));
      for (let i = 1; i < got.length; i++) expect(got[i]).toBeGreaterThan(got[i - 1]); // more noise, larger gap: order kept
    } finally {
      session.run = run;
    }
  });

  it('matches at the sizes a transition renders, and at odd ones', async () => {
    for (const [w, h] of [[512, 512], [768, 512], [BUILTIN_METRIC_FULL_PYRAMID_SIDE, BUILTIN_METRIC_FULL_PYRAMID_SIDE], [97, 131]]) {
      const a = await photo('coffee.png', [w, h]);
      const b = noisy(shifted(a, 5), 10, w);
      expect(rel(await metric.distance(a, b), builtinDistance(a, b)), `${w}x${h}`).toBeLessThan(1e-5);
    }
  });

  it('uses no Conv (a GPU provider may run convolutions in TF32): element-wise ops, reductions, one AveragePool', () => {
    const ops = new Set(builtinPerceptualGraphBuilder().toGraphProto(new Set()).node.map((n) => n.opType));
    expect(ops.has('Conv')).toBe(false);
    expect([...ops].filter((op) => !['Cast', 'Sub', 'Mul', 'Add', 'Div', 'Abs', 'ReduceSum', 'ReduceMean', 'Unsqueeze', 'Concat', 'Pad', 'Slice', 'Shape', 'AveragePool', 'Identity'].includes(op))).toEqual([]);
  });

  it('leaves frames too small for every pyramid level to the JavaScript metric, exactly', async () => {
    const side = BUILTIN_METRIC_FULL_PYRAMID_SIDE - 8;
    const a = await photo('chelsea.png', [side, side + 8]);
    const b = noisy(a, 12, 3);
    expect(await metric.distance(a, b)).toBe(builtinDistance(a, b));
  });

  it('refuses frames of different sizes with a request error', async () => {
    const a = await photo('chelsea.png');
    const b = await photo('coffee.png');
    await expect(metric.distances([[a, a], [a, b]])).rejects.toThrow(InvalidRequestError);
    await expect(metric.distance(a, b)).rejects.toThrow(/same size, got 451x300 and 600x400/);
  });

  it('is chosen for GPU providers only: the CPU keeps the JavaScript metric (the same speed there)', async () => {
    expect(await createPerceptualMetric(undefined, { ep: 'cpu' }, builtinPerceptualGraph)).toBeInstanceOf(BuiltinPerceptualMetric);
    expect(await createPerceptualMetric(undefined, {}, builtinPerceptualGraph)).toBeInstanceOf(BuiltinPerceptualMetric);
    expect(metric.name).toMatch(/^builtin-laplacian .*, on cpu$/);
  });

  it('grows the same transition tree as the JavaScript metric, measuring each stage in one call', async () => {
    const pipe = await StableDiffusionPipeline.load(testModelDir('demo'));
    try {
      const opts = { promptA: 'a red sunset over the sea', promptB: 'a green forest in spring', seedA: 1, seedB: 2, width: 128, height: 128, maxBranches: 9, order: 'batched' as const };
      let calls = 0;
      const counted = {
        name: metric.name,
        distance: (a: RawImage, b: RawImage) => metric.distance(a, b),
        distances: (pairs: ReadonlyArray<readonly [RawImage, RawImage]>) => {
          calls++;
          return metric.distances(pairs);
        },
      };
      const js = await new LatentBlender(pipe).transition(opts);
      const onnx = await new LatentBlender(pipe, counted).transition(opts);
      expect(onnx.frames.map((f) => [f.fract, f.injIdx])).toEqual(js.frames.map((f) => [f.fract, f.injIdx]));
      for (const [i, g] of onnx.gaps.entries()) expect(rel(g, js.gaps[i])).toBeLessThan(1e-5);
      // One call for the keyframes' gap, then one per wave (a stage's branches are placed in measured waves), however many branches each added.
      expect(calls).toBe(1 + new Set(onnx.history.map((h) => `${h.injIdx}/${h.wave}`)).size);
      expect(onnx.timings.metricPairs).toBeGreaterThan(calls);
      expect(onnx.metric).toBe(metric.name);
    } finally {
      await pipe.release();
    }
  });
});
