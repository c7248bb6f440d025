import { describe, expect, it } from 'vitest';
import { planStages, estimateSeconds } from '../../../engine/blend/stages.ts';
import { branch1Coefficients, crossfeedCoefficients, dampedGuidance, transitionDefaults } from '../../../engine/blend/transition.ts';
import { img2imgStartIndex } from '../../../engine/blend/img2img.ts';
import { slerp } from '../../../engine/blend/slerp.ts';
import { familyDefaults } from '../../../engine/pipeline/model-folder.ts';

describe('stage schedule', () => {
  it('reproduces the reference example: N=30, depth 0.5, 15 branches -> stems [4,3,3,2,1]', () => {
    const stages = planStages(30, 0.5, { maxBranches: 15 });
    expect(stages.map((s) => s.idx)).toEqual([15, 18, 21, 24, 27]);
    expect(stages.map((s) => s.stems)).toEqual([4, 3, 3, 2, 1]);
  });

  it('never injects at step 0 and spreads single branches when the limit is below the stage count', () => {
    expect(planStages(10, 0.05, { maxBranches: 20 })[0].idx).toBe(1);
    const few = planStages(30, 0.5, { maxBranches: 5 });
    expect(few.map((s) => s.stems)).toEqual([1, 1, 1]);
    expect(few.map((s) => s.idx)).toEqual([15, 21, 27]);
    expect(planStages(30, 0.5, { maxBranches: 2 })).toEqual([]);
  });

  it('keeps a compute budget as a ceiling, using the measured step and decode times', () => {
    const unet = 0.05;
    const decode = 0.2;
    for (const budget of [8, 15, 40]) {
      const stages = planStages(30, 0.5, { computeSeconds: budget, unetStepSeconds: unet, decodeSeconds: decode });
      const used = estimateSeconds(stages, 30, unet, decode);
      expect(used).toBeLessThanOrEqual(budget);
      // The budget is used, not ignored: within one first-stage branch of it.
      expect(used).toBeGreaterThan(budget - ((30 - 15) * unet + decode));
    }
    const small = planStages(30, 0.5, { computeSeconds: 8, unetStepSeconds: unet, decodeSeconds: decode });
    const large = planStages(30, 0.5, { computeSeconds: 40, unetStepSeconds: unet, decodeSeconds: decode });
    const total = (s: typeof small) => s.reduce((a, b) => a + b.stems, 0);
    expect(total(large)).toBeGreaterThan(total(small));
  });
});

describe("the reference's SDXL settings", () => {
  it('SDXL renders at guidance 4 by default, as the reference latent blending does (it had 5)', () => {
    expect(familyDefaults.sdxl).toMatchObject({ width: 1024, height: 1024, steps: 30, guidance: 4 });
    expect(familyDefaults['sdxl-turbo'].guidance).toBe(0);
  });
});

describe('turbo families: one stage', () => {
  it("injects at the reference's int(round(N * depth)), halves to even, within [1, N - 1]", () => {
    const idx = (steps: number, depth: number) => planStages(steps, depth, { maxBranches: 5, oneStage: true })[0].idx;
    expect(idx(4, 0.5)).toBe(2);
    expect(idx(4, 0.7)).toBe(3); // round(2.8); floor would give 2
    expect(idx(3, 0.5)).toBe(2); // round(1.5) = 2 (even)
    expect(idx(5, 0.5)).toBe(2); // round(2.5) = 2 (even), not 3
    expect(idx(8, 0.1)).toBe(1); // round(0.8)
    expect(idx(4, 0.95)).toBe(3); // round(3.8) = 4 leaves no step to blend in: the last step
    expect(idx(4, 0.1)).toBe(1); // round(0.4) = 0: a branch needs its parents' latents from a step before
  });

  it('holds every branch at round(N * depth), as the reference does for SDXL-Turbo (step 2 of 4)', () => {
    expect(transitionDefaults('sdxl-turbo').oneStage).toBe(true);
    expect(transitionDefaults('sd-turbo').oneStage).toBe(true);
    expect(transitionDefaults('sd1').oneStage).toBe(false);
    expect(planStages(4, 0.5, { maxBranches: 12, oneStage: true })).toEqual([{ idx: 2, stems: 10 }]);
    // A compute budget fills the one stage with as many branches as fit (at least one).
    const stages = planStages(4, 0.5, { computeSeconds: 3, unetStepSeconds: 0.1, decodeSeconds: 0.1, oneStage: true });
    expect(stages).toHaveLength(1);
    expect(estimateSeconds(stages, 4, 0.1, 0.1)).toBeLessThanOrEqual(3);
    expect(estimateSeconds([{ idx: 2, stems: stages[0].stems + 1 }], 4, 0.1, 0.1)).toBeGreaterThan(3);
    expect(planStages(4, 0.5, { computeSeconds: 0.01, unetStepSeconds: 0.1, decodeSeconds: 0.1, oneStage: true })).toEqual([{ idx: 2, stems: 1 }]);
  });
});

describe('img2img start (upscale refinement)', () => {
  it("starts at N - int(N * strength), diffusers' get_timesteps, not floor(N * (1 - strength))", () => {
    expect(img2imgStartIndex(12, 0.3, 12)).toBe(9); // 12 - int(3.6); floor(12 * 0.7) would be 8
    expect(img2imgStartIndex(50, 0.3, 50)).toBe(35);
    expect(img2imgStartIndex(10, 0.35, 10)).toBe(7); // 10 - int(3.5)
    expect(img2imgStartIndex(10, 1, 10)).toBe(0);
    expect(img2imgStartIndex(10, 0.05, 10)).toBe(9); // int(0.5) = 0 steps: still run the last one
  });
});

describe('building blocks', () => {
  it("branch-1 crossfeed: the reference's linspace(P, P*D, round(N*R)) indexed from step 0", () => {
    // N = 10, R = 0.6: stop 6, weights linspace(0.1, 0.08, 6) = 0.1, 0.096, ..., 0.08 at steps 0..5.
    const c = branch1Coefficients({ power: 0.1, range: 0.6, decay: 0.8 }, 10);
    expect(c[0]).toBeCloseTo(0.1, 12);
    expect(c[1]).toBeCloseTo(0.096, 12);
    expect(c[5]).toBeCloseTo(0.08, 12);
    expect(c.slice(6)).toEqual([0, 0, 0, 0]);
  });

  it('damps guidance towards the middle: 4 becomes 3 at f=0.5, unchanged at the ends; off stays off', () => {
    expect(dampedGuidance(4, 0.5, 0.5)).toBeCloseTo(3, 12);
    expect(dampedGuidance(4, 0, 0.5)).toBe(4);
    expect(dampedGuidance(4, 1, 0.5)).toBe(4);
    expect(dampedGuidance(4, 0.25, 0.5)).toBeCloseTo(3.5, 12);
    expect(dampedGuidance(0, 0.5, 0.5)).toBe(0);
  });

  it('crossfeed weights: linspace(P, P*D) over [from, round(N*R)), zero elsewhere', () => {
    const c = crossfeedCoefficients({ power: 0.3, range: 0.6, decay: 0.9 }, 10, 2);
    expect(c.slice(0, 2)).toEqual([0, 0]);
    expect(c[2]).toBeCloseTo(0.3, 12);
    expect(c[5]).toBeCloseTo(0.27, 12);
    expect(c.slice(6)).toEqual([0, 0, 0, 0]);
    expect(crossfeedCoefficients({ power: 0, range: 1, decay: 1 }, 5, 0)).toEqual([0, 0, 0, 0, 0]);
  });

  it('slerp keeps the norm of equal-norm vectors and hits both ends', () => {
    const a = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: 64 }, (_, i) => Math.cos(i * 1.7));
    const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    const bn = b.map((x) => (x * norm(a)) / norm(b));
    const mid = slerp(a, bn, 0.5);
    expect(norm(mid)).toBeCloseTo(norm(a), 4);
    expect(Array.from(slerp(a, bn, 0))).toEqual(Array.from(a));
    expect(Array.from(slerp(a, bn, 1))).toEqual(Array.from(bn));
    // Nearly parallel inputs fall back to lerp instead of dividing by ~0.
    const near = a.map((x) => x * 1.0000001);
    expect(Number.isFinite(slerp(a, near, 0.5)[3])).toBe(true);
  });
});
