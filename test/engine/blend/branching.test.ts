/**
 * Issue 10's scheduler and blending flaws, on the demo model (real onnxruntime): branches start at
 * a known step index (Karras DPM++ repeats rounded timesteps), LCM branches share their injected
 * noise, turbo families plan one stage, the circular walk does not repeat its first frame.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StableDiffusionPipeline, stepNoise } from '../../../engine/index.ts';
import { LatentBlender, branchStepNoise } from '../../../engine/blend/transition.ts';
import { renderWalk } from '../../../engine/blend/walks.ts';
import { createPerceptualMetric } from '../../../engine/blend/perceptual.ts';
import { testModelDir } from '../../../models/paths.ts';
import { demoVariant, meanAbsDiff } from '../../helpers/demo.ts';

const PROMPTS = { promptA: 'a red sunset over the sea', promptB: 'a green forest in spring' };

let dir: string;
let pipe: StableDiffusionPipeline;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blendfarm-branching-'));
  pipe = await StableDiffusionPipeline.load(testModelDir('demo'));
});
afterAll(async () => {
  await pipe?.release();
  await rm(dir, { recursive: true, force: true });
});

describe('Karras DPM++ 2M: a branch starts at its step index, not at a looked-up timestep', () => {
  it('renders at 45, 60 and 80 steps and depths 0.3 to 0.7, including branches begun at a repeated timestep', async () => {
    const folder = await demoVariant(dir, 'karras', { config: (c) => (c.use_karras_sigmas = true) });
    const karras = await StableDiffusionPipeline.load(folder);
    const blender = new LatentBlender(karras);
    let begunAtRepeat = 0;
    try {
      for (const steps of [45, 60, 80]) {
        const ts = karras.scheduler(steps).timesteps;
        const repeated = new Set(ts.flatMap((t, i) => (i + 1 < ts.length && ts[i + 1] === t ? [i] : [])));
        // Rounding the Karras ramp repeats low timesteps at these step counts (the cause of the crash).
        expect(repeated.size, `${steps} steps`).toBeGreaterThan(0);
        for (const depthStrength of [0.3, 0.5, 0.7]) {
          const r = await blender.transition({ ...PROMPTS, seedA: 1, seedB: 2, width: 64, height: 64, steps, depthStrength, maxBranches: 6, order: 'batched' });
          expect(r.frames).toHaveLength(6);
          for (const f of r.frames) expect(f.image.data.some((v) => v > 0)).toBe(true);
          begunAtRepeat += r.history.filter((h) => repeated.has(h.injIdx)).length;
        }
      }
      // Before the fix this threw "expected timestep 0 ... but got 1" (or similar) for these branches.
      expect(begunAtRepeat).toBeGreaterThan(0);
    } finally {
      await karras.release();
    }
  });
});

describe('LCM: the noise injected between steps is shared by all branches', () => {
  it('derives a branch\'s noise from the two seeds and the step: the ends get their seed\'s, neighbours nearly the same', () => {
    const n = 256;
    expect(Array.from(branchStepNoise(5, 9, 0)(3, n))).toEqual(Array.from(stepNoise(5, 3, n)));
    expect(Array.from(branchStepNoise(5, 9, 1)(3, n))).toEqual(Array.from(stepNoise(9, 3, n)));
    const dist = (a: Float32Array, b: Float32Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0) / n);
    const near = dist(branchStepNoise(5, 9, 0.5)(3, n), branchStepNoise(5, 9, 0.5 + 1 / 64)(3, n));
    const ends = dist(stepNoise(5, 3, n), stepNoise(9, 3, n));
    expect(near).toBeLessThan(ends / 10);
    // Different steps draw different noise.
    expect(dist(stepNoise(5, 3, n), stepNoise(5, 4, n))).toBeGreaterThan(1);
  });

  it("an LCM transition's mean neighbour gap is within 1.3x of DPM++'s on the same seeds", async () => {
    const blender = new LatentBlender(pipe, await createPerceptualMetric());
    const base = { ...PROMPTS, width: 128, height: 128, steps: 6, maxBranches: 9, order: 'sequential' as const };
    const gaps: Record<string, number[]> = { lcm: [], dpmpp_2m: [] };
    for (const [seedA, seedB] of [[1, 2], [3, 4]]) {
      for (const scheduler of ['lcm', 'dpmpp_2m'] as const) {
        const r = await blender.transition({ ...base, seedA, seedB, scheduler });
        expect(r.scheduler).toBe(scheduler);
        gaps[scheduler].push(r.meanGap);
      }
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log('mean neighbour gap, lcm vs dpmpp_2m:', gaps);
    expect(mean(gaps.lcm)).toBeLessThan(1.3 * mean(gaps.dpmpp_2m));
  });
});

describe('turbo families plan one stage holding every branch, as the reference does', () => {
  it('all branches are injected at one step', async () => {
    const folder = await demoVariant(dir, 'turbo', { meta: (m) => (m.family = 'sd-turbo') });
    const turbo = await StableDiffusionPipeline.load(folder);
    try {
      expect(turbo.folder.family).toBe('sd-turbo');
      const r = await new LatentBlender(turbo).transition({ ...PROMPTS, seedA: 1, seedB: 2, width: 64, height: 64, steps: 4, maxBranches: 7 });
      expect(r.stages).toEqual([{ idx: 2, stems: 5 }]);
      expect(new Set(r.history.map((h) => h.injIdx))).toEqual(new Set([2]));
      expect(r.frames).toHaveLength(7);
    } finally {
      await turbo.release();
    }
  });
});

describe('circular walk', () => {
  it('renders distinct frames on [0, 2pi): the last is not the first, and the loop closes like a neighbour step', async () => {
    const w = await renderWalk(pipe, { ...PROMPTS, mode: 'circular', seedA: 1, seedB: 2, frames: 8, steps: 6, width: 64, height: 64 });
    expect(w.frames).toHaveLength(8);
    const steps = w.frames.map((f, i) => meanAbsDiff(f.data, w.frames[(i + 1) % w.frames.length].data));
    expect(steps.every((d) => d > 0)).toBe(true); // no frame repeats (the wrap-around step included)
    const closing = steps[7];
    const inner = steps.slice(0, 7);
    expect(closing).toBeLessThan(2 * Math.max(...inner));
    expect(closing).toBeGreaterThan(0.5 * Math.min(...inner));
    // fracts are the prompt mix: 0 at the start, 1 half way round.
    expect(w.fracts[0]).toBe(0);
    expect(w.fracts[4]).toBeCloseTo(1, 12);
  });
});
