/**
 * Latent Consistency Model sampling (Luo et al. 2023): diffusers' LCMScheduler. Each step maps the
 * sample straight to a clean estimate (with the consistency boundary-condition scalings), then
 * re-noises it to the next timestep; the noise comes from the `rng` option.
 */
import {
  addNoiseWithAlphaCumprod,
  alphaCumprodAt,
  checkSameLength,
  checkStepCount,
  emptyLike,
  linspace,
  makeAlphasCumprod,
  makeBetas,
  predictOriginal,
  resolveSchedulerConfig,
  StepCursor,
  type ResolvedSchedulerConfig,
  type Sample,
  type Scheduler,
  type SchedulerConfig,
  type SchedulerOptions,
  type SchedulerRegistration,
  type StepResult,
  SCHEDULER_BASE_DEFAULTS,
} from './scheduler.ts';

/** LCMScheduler's __init__ defaults (keys LCM does not use keep neutral values). */
export const LCM_DEFAULTS: Omit<ResolvedSchedulerConfig, '_class_name'> = {
  ...SCHEDULER_BASE_DEFAULTS,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  timestep_spacing: 'leading',
};

const NAME = 'LCM scheduler';
/** Data standard deviation the consistency scalings assume (diffusers hard-codes 0.5). */
const SIGMA_DATA = 0.5;

/** Consistency-model boundary condition: c_skip -> 1, c_out -> 0 as t -> 0. */
export function lcmBoundaryScalings(t: number, timestepScaling: number): { cSkip: number; cOut: number } {
  const scaled = t * timestepScaling;
  const denom = scaled * scaled + SIGMA_DATA * SIGMA_DATA;
  return { cSkip: (SIGMA_DATA * SIGMA_DATA) / denom, cOut: scaled / Math.sqrt(denom) };
}

export class LCMScheduler implements Scheduler {
  readonly kind = LCM.kind;
  readonly config: ResolvedSchedulerConfig;
  readonly initNoiseSigma = 1;
  readonly order = 1;
  readonly alphasCumprod: Float64Array;
  readonly finalAlphaCumprod: number;
  private _timesteps: number[] = [];
  private _numInferenceSteps: number | null = null;
  private readonly cursor = new StepCursor(NAME);

  constructor(config: SchedulerConfig | Record<string, unknown>, private readonly opts: SchedulerOptions = {}) {
    this.config = resolveSchedulerConfig(config, LCM_DEFAULTS, NAME);
    this.alphasCumprod = makeAlphasCumprod(makeBetas(this.config));
    this.finalAlphaCumprod = this.config.set_alpha_to_one ? 1 : this.alphasCumprod[0];
  }

  get timesteps(): number[] {
    return this._timesteps;
  }

  get numInferenceSteps(): number | null {
    return this._numInferenceSteps;
  }

  /**
   * Picks `numInferenceSteps` of the distillation's original_inference_steps timesteps
   * (k - 1, 2k - 1, ..., with k = num_train / original), evenly by index from the top.
   * timestep_spacing and steps_offset do not apply to LCM (as in diffusers).
   */
  setTimesteps(numInferenceSteps: number): void {
    const original = this.config.original_inference_steps;
    checkStepCount(NAME, numInferenceSteps, original);
    if (numInferenceSteps > 1 && !this.opts.rng && !this.opts.stepNoise) {
      throw new Error(
        `${NAME}: ${numInferenceSteps}-step LCM needs noise between steps; pass { stepNoise } or { rng } (a standard normal sampler) to createScheduler, or use 1 step`,
      );
    }
    const k = Math.floor(this.config.num_train_timesteps / original);
    const origin: number[] = [];
    for (let i = original; i >= 1; i--) origin.push(i * k - 1);
    // np.floor(np.linspace(0, len, n, endpoint=False)), with numpy's rounding of the float indices.
    this._timesteps = linspace(0, origin.length, numInferenceSteps, false).map((i) => origin[Math.floor(i)]);
    this._numInferenceSteps = numInferenceSteps;
    this.cursor.index = null;
    this.cursor.begin = null;
  }

  scaleModelInput(sample: Sample, _t: number): Sample {
    return sample.slice();
  }

  step(modelOutput: Sample, t: number, sample: Sample): StepResult {
    checkSameLength(NAME, 'model output', modelOutput, sample);
    const index = this.cursor.at(this._timesteps, t);
    const isLast = index === this._timesteps.length - 1;
    const prevT = isLast ? t : this._timesteps[index + 1];
    const alphaProd = alphaCumprodAt(NAME, this.alphasCumprod, t);
    const alphaProdPrev = prevT >= 0 ? this.alphasCumprod[prevT] : this.finalAlphaCumprod;
    const { cSkip, cOut } = lcmBoundaryScalings(t, this.config.timestep_scaling);
    const { clip_sample: clip, clip_sample_range: range } = this.config;

    const x0 = predictOriginal(this.config.prediction_type, modelOutput, sample, alphaProd);
    const denoised = emptyLike(sample);
    for (let i = 0; i < denoised.length; i++) {
      const clean = clip ? Math.min(range, Math.max(-range, x0[i])) : x0[i];
      denoised[i] = cOut * clean + cSkip * sample[i];
    }

    let prevSample: Sample;
    if (isLast) {
      // No noise after the final step, so one-step sampling is deterministic.
      prevSample = denoised.slice();
    } else {
      const noise = this.noiseFor(index, sample.length);
      prevSample = emptyLike(sample);
      const a = Math.sqrt(alphaProdPrev);
      const b = Math.sqrt(1 - alphaProdPrev);
      for (let i = 0; i < prevSample.length; i++) prevSample[i] = a * denoised[i] + b * noise[i];
    }
    this.cursor.advance();
    return { prevSample, denoised };
  }

  /** The noise injected after step `index`: stepNoise's when given (shared across branches), else drawn from rng. */
  private noiseFor(index: number, length: number): Sample {
    const { stepNoise, rng } = this.opts;
    if (stepNoise) {
      const noise = stepNoise(index, length);
      if (noise.length !== length) throw new RangeError(`${NAME}: stepNoise gave ${noise.length} values for a sample of ${length}`);
      return noise;
    }
    if (!rng) throw new Error(`${NAME}: multi-step LCM needs { stepNoise } or { rng } (a standard normal sampler) for the noise between steps`);
    return Float64Array.from({ length }, () => rng());
  }

  addNoise(original: Sample, noise: Sample, t: number): Sample {
    checkSameLength(NAME, 'noise', noise, original);
    return addNoiseWithAlphaCumprod(original, noise, alphaCumprodAt(NAME, this.alphasCumprod, t));
  }

  setBeginIndex(index: number): void {
    this.cursor.setBegin(index, this._timesteps);
  }

  reset(): void {
    this.cursor.index = null;
  }

  clone(opts?: SchedulerOptions): LCMScheduler {
    const copy = new LCMScheduler(this.config, opts ?? this.opts);
    if (this._numInferenceSteps !== null) copy.setTimesteps(this._numInferenceSteps);
    return copy;
  }
}

/** The registry entry (see ./index.ts): kind, the diffusers classes it implements, constructor. */
export const LCM: SchedulerRegistration<'lcm'> = {
  kind: 'lcm',
  label: 'LCM',
  classNames: ['LCMScheduler'],
  create: (config, opts) => new LCMScheduler(config, opts),
};
