import { describe, expect, it } from 'vitest';
import { estimateSeconds, planStages, type Stage } from '../../../engine/blend/stages.ts';

// Measured-looking timings: 0.05 s per UNet step of one branch, 0.2 s per branch's decode. With
// these, a port of the reference reproduces the fidelity review's numbers (8 and 6 branches).
const UNET = 0.05;
const DECODE = 0.2;

const stems = (stages: Stage[]) => stages.reduce((a, s) => a + s.stems, 0);

/** The stage plans the growth rule passes through: one branch per stage, then one branch at a time (the reference's order). */
function growth(steps: number, depth: number, count: number): Stage[][] {
  const k = Math.ceil(steps / 10);
  const idxs: number[] = [];
  for (let i = Math.floor(steps * depth); i < steps; i += k) idxs.push(i);
  const n = idxs.map(() => 1);
  const plans: Stage[][] = [];
  for (let j = 0; j < count; j++) {
    plans.push(idxs.map((idx, s) => ({ idx, stems: n[s] })));
    let target = n.length - 1;
    for (let s = 0; s < n.length - 1; s++) {
      if (n[s + 1] / n[s] >= 1) {
        target = s;
        break;
      }
    }
    n[target] += 1;
  }
  return plans;
}

/** A port of lunarring/latentblending get_time_based_branching with t_compute_max_allowed: estimate, grow, then compare. */
function referencePlan(steps: number, depth: number, seconds: number): Stage[] {
  const plans = growth(steps, depth, 1000);
  for (let j = 0; ; j++) if (estimateSeconds(plans[j], steps, UNET, DECODE) > seconds) return plans[j + 1];
}

const plan = (steps: number, depth: number, seconds: number, maxBranches?: number) =>
  planStages(steps, depth, { computeSeconds: seconds, maxBranches, unetStepSeconds: UNET, decodeSeconds: DECODE });

describe('a compute budget smaller than one branch per stage', () => {
  it('the review cases: the reference port gives 8 and 6 branches, over twice the budget', () => {
    expect(stems(referencePlan(30, 0.3, 5))).toBe(8);
    expect(estimateSeconds(referencePlan(30, 0.3, 5), 30, UNET, DECODE)).toBeCloseTo(10.25);
    expect(stems(referencePlan(50, 0.5, 8))).toBe(6);
    expect(estimateSeconds(referencePlan(50, 0.5, 8), 50, UNET, DECODE)).toBeCloseTo(11.6);
  });

  it('N=30, depth 0.3, 5 s: the two single branches that fit, at the deepest and the shallowest stage (was one, the deepest)', () => {
    // Keyframes 3.4 s; one branch per stage (steps 9, 12, ..., 27) would be 9 s. 1.6 s is left:
    // branches at 9 and 27 cost 1.25 + 0.35 = exactly 1.6; three spread (9, 18, 27) would cost 2.4.
    const stages = plan(30, 0.3, 5);
    expect(stages).toEqual([
      { idx: 9, stems: 1 },
      { idx: 27, stems: 1 },
    ]);
    expect(estimateSeconds(stages, 30, UNET, DECODE)).toBeCloseTo(5);
  });

  it('N=50, depth 0.5, 8 s: two single branches at steps 25 and 45 (was one at 25)', () => {
    // Keyframes 5.4 s, 2.6 s left: 25 and 45 cost 1.45 + 0.45 = 1.9; 25, 35, 45 would cost 2.85.
    const stages = plan(50, 0.5, 8);
    expect(stages).toEqual([
      { idx: 25, stems: 1 },
      { idx: 45, stems: 1 },
    ]);
    expect(estimateSeconds(stages, 50, UNET, DECODE)).toBeLessThanOrEqual(8);
  });

  it('spreads as many single branches as fit over the whole depth range', () => {
    // 3.6 s after the keyframes: 9, 15, 21, 27 cost 3.2; five spread (9, 14, 18, 23, 27) cost 3.95.
    const stages = plan(30, 0.3, 7);
    expect(stages.map((s) => s.idx)).toEqual([9, 15, 21, 27]);
    expect(stages.every((s) => s.stems === 1)).toBe(true);
    expect(estimateSeconds(stages, 30, UNET, DECODE)).toBeLessThanOrEqual(7);
  });

  it('a budget below the keyframe pair still plans one branch, at the first injection step', () => {
    expect(plan(30, 0.3, 1)).toEqual([{ idx: 9, stems: 1 }]);
    expect(plan(50, 0.5, 0.1)).toEqual([{ idx: 25, stems: 1 }]);
    // Keyframes fit, but not one more branch: still one.
    expect(plan(30, 0.3, 3.5)).toEqual([{ idx: 9, stems: 1 }]);
  });

  it('with a branch limit as well, the spread honours both (the limit alone used to decide)', () => {
    // maxBranches 5 allows 3 singles (9, 18, 27: 5.8 s); 5 s holds only two.
    const stages = plan(30, 0.3, 5, 5);
    expect(stages.map((s) => s.idx)).toEqual([9, 27]);
    expect(plan(30, 0.3, 100, 5).map((s) => s.idx)).toEqual([9, 18, 27]);
  });
});

describe('a compute budget is a ceiling', () => {
  it('plans the last plan of the growth within the budget: the next one exceeds it, the reference returns the one after', () => {
    for (const [steps, depth] of [
      [30, 0.5],
      [30, 0.3],
      [50, 0.5],
      [25, 0.65],
    ]) {
      const plans = growth(steps, depth, 200);
      // Every estimate here is a multiple of 0.05 s: budgets off that grid keep rounding out of it.
      for (const seconds of [10.02, 12.51, 15.03, 20.01, 33.04, 40.02, 60.03]) {
        if (estimateSeconds(plans[0], steps, UNET, DECODE) > seconds) continue; // covered above
        const got = plan(steps, depth, seconds);
        const j = plans.findIndex((p) => JSON.stringify(p) === JSON.stringify(got));
        expect(j, `N=${steps} depth ${depth} ${seconds}s`).toBeGreaterThanOrEqual(0);
        expect(estimateSeconds(plans[j], steps, UNET, DECODE)).toBeLessThanOrEqual(seconds);
        expect(estimateSeconds(plans[j + 1], steps, UNET, DECODE)).toBeGreaterThan(seconds);
        expect(stems(referencePlan(steps, depth, seconds))).toBe(stems(got) + 2);
      }
    }
  });
});
