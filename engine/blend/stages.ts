/**
 * Which injection steps the tree branches at, and how many branches each stage gets.
 *
 * Stages start at floor(N * depthStrength) and follow every ceil(N / 10) steps up to N - 1; each
 * starts with one branch. Branches are then added one at a time to the first stage whose successor
 * has at least as many (keeping earlier, cheaper-to-differ stages fuller), else to the last, until
 * the branch limit or the compute budget is reached. Injection step 0 is never used: a branch
 * needs parents' latents from the step before it.
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
  if (limit < idxs.length) {
    // Fewer branches than stages: spread single branches across the depth range.
    const first = idxs[0];
    const last = idxs[idxs.length - 1];
    const spread = [...new Set(linspace(first, last, limit).map((v) => Math.round(v)))];
    return spread.map((idx) => ({ idx, stems: 1 }));
  }

  const stems = idxs.map(() => 1);
  const total = () => stems.reduce((a, b) => a + b, 0);
  const cost = () =>
    estimateSeconds(
      idxs.map((idx, s) => ({ idx, stems: stems[s] })),
      steps,
      budget.unetStepSeconds ?? 0,
      budget.decodeSeconds ?? 0,
    );
  if (budget.computeSeconds !== undefined && cost() > budget.computeSeconds) {
    // Not even one branch per stage fits: keep as many early stages as do.
    while (stems.length > 1 && cost() > budget.computeSeconds) {
      stems.pop();
      idxs.pop();
    }
    return idxs.map((idx, s) => ({ idx, stems: stems[s] }));
  }
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
    if (budget.computeSeconds !== undefined && cost() > budget.computeSeconds) {
      stems[target] -= 1; // the budget is a ceiling, not a target to overshoot
      break;
    }
  }
  return idxs.map((idx, s) => ({ idx, stems: stems[s] }));
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
