/**
 * Which injection steps the tree branches at, and how many branches each stage gets.
 *
 * Stages start at floor(N * depthStrength) and follow every ceil(N / 10) steps up to N - 1; each
 * starts with one branch. Branches are then added one at a time to the first stage whose successor
 * has at least as many (keeping earlier, cheaper-to-differ stages fuller), else to the last, until
 * the branch limit or the compute budget is reached. Injection step 0 is never used: a branch
 * needs parents' latents from the step before it.
 *
 * The compute budget is a ceiling: the plan is the last one of that growth whose estimate
 * (estimateSeconds) is within it: one more branch would exceed it. The reference
 * (get_time_based_branching) estimates a plan, grows it and only then compares, so it returns the plan
 * one branch past the first one over its budget (two past the last within it), and at least one
 * branch per stage plus one however small the budget.
 * When the branch limit or the budget holds fewer branches than there are stages, single branches are
 * spread evenly over the injection steps from the first stage to the last (the depth range is kept,
 * not cut from the shallow end); at least one branch is planned, even when the keyframes alone
 * exceed the budget.
 *
 * Turbo models (`oneStage`) get one stage at round(N * depthStrength) (Python's round: halves to even)
 * holding every branch, as the reference does for SDXL-Turbo (injection step 2 of 4): with so few
 * steps there is no tree to grow.
 */
import { linspace } from '../schedulers/scheduler.ts';
import { InvalidRequestError } from '../errors.ts';

export interface Stage {
  /** Injection step: the branch's first own UNet step. */
  idx: number;
  /** Branches started at this step. */
  stems: number;
}

export interface StageBudget {
  /** Total branches including the two keyframes (>= 2). */
  maxBranches?: number;
  /** Seconds of compute for the whole transition, with the timings below. */
  computeSeconds?: number;
  /** Seconds per UNet step of one branch, and per VAE decode (measured). */
  unetStepSeconds?: number;
  decodeSeconds?: number;
  /** One stage holding all branches (turbo families). */
  oneStage?: boolean;
}

export function estimateSeconds(stages: Stage[], steps: number, unetStep: number, decode: number): number {
  let t = 2 * (steps * unetStep + decode);
  for (const s of stages) t += (steps - s.idx) * s.stems * unetStep + decode * s.stems;
  return t;
}

/** Latent blending branches off after the first step and mixes before the last: one step leaves nothing to share. */
export const MIN_BLEND_STEPS = 2;

/** The most branches (keyframes) one transition may have, a budget's hard ceiling included. */
export const MAX_BRANCHES = 500;

/** Images in a transition's tree, both ends included, when a request gives neither a branch count nor a compute budget. */
export const DEFAULT_BRANCHES = 15;

/** What a stage plan needs of the request: a depth strictly inside (0, 1) and at least MIN_BLEND_STEPS steps to branch between. */
export function checkStageRequest(steps: number, depthStrength: number): void {
  if (!(depthStrength > 0 && depthStrength < 1)) throw new InvalidRequestError(`depth strength must be between 0 and 1 (exclusive), got ${depthStrength}`);
  if (steps < MIN_BLEND_STEPS) throw new InvalidRequestError(`latent blending needs at least ${MIN_BLEND_STEPS} denoising steps, got ${steps}`);
}

export function planStages(steps: number, depthStrength: number, budget: StageBudget): Stage[] {
  checkStageRequest(steps, depthStrength);
  const base = Math.max(1, Math.floor(steps * depthStrength));
  const k = Math.ceil(steps / 10);
  const idxs: number[] = [];
  for (let i = base; i <= steps - 1; i += k) idxs.push(i);
  if (idxs.length === 0) idxs.push(steps - 1);

  const maxBranches = budget.maxBranches ?? Infinity;
  const limit = maxBranches - 2;
  if (budget.maxBranches === undefined && budget.computeSeconds === undefined) {
    throw new InvalidRequestError('give a budget: maxBranches or computeSeconds');
  }
  if (limit <= 0) return [];
  if (budget.oneStage) {
    const idx = Math.min(steps - 1, Math.max(1, roundHalfEven(steps * depthStrength)));
    return [{ idx, stems: oneStageStems(steps, idx, budget, limit) }];
  }
  const unet = budget.unetStepSeconds ?? 0;
  const decode = budget.decodeSeconds ?? 0;
  const fits = (stages: Stage[]) => budget.computeSeconds === undefined || withinBudget(estimateSeconds(stages, steps, unet, decode), budget.computeSeconds);
  const stems = idxs.map(() => 1);
  const plan = () => idxs.map((idx, s) => ({ idx, stems: stems[s] }));
  if (limit < idxs.length || !fits(plan())) {
    // Fewer branches than stages (by the limit or the budget): as many single branches as both
    // allow, spread across the depth range. At least one, even if the keyframes alone overrun.
    let best = spreadSingles(idxs, 1);
    for (let n = 2; n <= Math.min(limit, idxs.length); n++) {
      const spread = spreadSingles(idxs, n);
      if (fits(spread)) best = spread;
    }
    return best;
  }

  const total = () => stems.reduce((a, b) => a + b, 0);
  // A hard ceiling so a tiny measured step time cannot plan an absurd tree.
  const ceiling = Math.min(limit, MAX_BRANCHES);
  for (;;) {
    if (total() >= ceiling) break;
    let target = stems.length - 1;
    for (let s = 0; s < stems.length - 1; s++) {
      if (stems[s + 1] / stems[s] >= 1) {
        target = s;
        break;
      }
    }
    stems[target] += 1;
    if (!fits(plan())) {
      stems[target] -= 1; // the budget is a ceiling, not a target to overshoot
      break;
    }
  }
  return plan();
}

/** `n` single branches at injection steps spread evenly from the first stage's to the last's (duplicates merged). */
function spreadSingles(idxs: number[], n: number): Stage[] {
  const first = idxs[0];
  const last = idxs[idxs.length - 1];
  return [...new Set(linspace(first, last, n).map((v) => Math.round(v)))].map((idx) => ({ idx, stems: 1 }));
}

/** An estimate within the budget, allowing for floating-point rounding in the sum (1e-9 of it). */
function withinBudget(estimate: number, computeSeconds: number): boolean {
  return estimate <= computeSeconds * (1 + 1e-9);
}

/** Branches in a single stage at `idx`: the branch limit, or as many as the compute budget holds (at least one). */
function oneStageStems(steps: number, idx: number, budget: StageBudget, limit: number): number {
  const ceiling = Math.min(limit, MAX_BRANCHES);
  if (budget.computeSeconds === undefined) return ceiling;
  const unet = budget.unetStepSeconds ?? 0;
  const decode = budget.decodeSeconds ?? 0;
  const perBranch = (steps - idx) * unet + decode;
  if (perBranch <= 0) return ceiling;
  const fit = Math.floor((budget.computeSeconds - estimateSeconds([], steps, unet, decode)) / perBranch);
  return Math.max(1, Math.min(ceiling, fit));
}

/** Python 3's round(): to the nearest whole number, halves to the even one (round(2.5) = 2, round(3.5) = 4). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
