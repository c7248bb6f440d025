/**
 * DDIM (Song et al. 2020), deterministic (eta = 0): diffusers' DDIMScheduler.
 * Stateless between steps: each step only needs t and the schedule's step ratio.
 */
import {
  addNoiseWithAlphaCumprod,
  alphaCumprodAt,
  checkSameLength,
  checkStepCount,
  emptyLike,
  makeAlphasCumprod,
  makeBetas,
  resolveSchedulerConfig,
  spacedTimesteps,
  type ResolvedSchedulerConfig,
  type Sample,
  type Scheduler,
  type SchedulerConfig,
  type SchedulerOptions,
  type SchedulerRegistration,
  type StepResult,
  SCHEDULER_BASE_DEFAULTS,
} from './scheduler.ts';

/** DDIMScheduler's __init__ defaults (keys DDIM does not use keep neutral values). */
export const DDIM_DEFAULTS: Omit<ResolvedSchedulerConfig, '_class_name'> = {
  ...SCHEDULER_BASE_DEFAULTS,
  timestep_spacing: 'leading',
  clip_sample: true,
};

const NAME = 'DDIM scheduler';

export class DDIMScheduler implements Scheduler {
  readonly kind = DDIM.kind;
  readonly config: ResolvedSchedulerConfig;
  readonly initNoiseSigma = 1;
  readonly order = 1;
  readonly alphasCumprod: Float64Array;
  /** alphas_cumprod used past the end of the schedule (prev timestep < 0). */
  readonly finalAlphaCumprod: number;
  private _timesteps: number[] = [];
  private _numInferenceSteps: number | null = null;

  constructor(config: SchedulerConfig | Record<string, unknown>, private readonly opts: SchedulerOptions = {}) {
    this.config = resolveSchedulerConfig(config, DDIM_DEFAULTS, NAME);
    this.alphasCumprod = makeAlphasCumprod(makeBetas(this.config));
    this.finalAlphaCumprod = this.config.set_alpha_to_one ? 1 : this.alphasCumprod[0];
  }

  get timesteps(): number[] {
    return this._timesteps;
  }

  get numInferenceSteps(): number | null {
    return this._numInferenceSteps;
  }

  setTimesteps(numInferenceSteps: number): void {
    checkStepCount(NAME, numInferenceSteps, this.config.num_train_timesteps);
    this._timesteps = spacedTimesteps(this.config, numInferenceSteps, true);
    this._numInferenceSteps = numInferenceSteps;
  }

  scaleModelInput(sample: Sample, _t: number): Sample {
    return sample.slice();
  }

  step(modelOutput: Sample, t: number, sample: Sample): StepResult {
    if (this._numInferenceSteps === null) throw new Error(`${NAME}: call setTimesteps(steps) before stepping`);
    checkSameLength(NAME, 'model output', modelOutput, sample);
    const { prediction_type: prediction, clip_sample: clip, clip_sample_range: range } = this.config;

    // diffusers steps back by the fixed ratio even for trailing/linspace spacing; keep that.
    const prevT = t - Math.floor(this.config.num_train_timesteps / this._numInferenceSteps);
    const alphaProd = alphaCumprodAt(NAME, this.alphasCumprod, t);
    const alphaProdPrev = prevT >= 0 ? this.alphasCumprod[prevT] : this.finalAlphaCumprod;
    const sa = Math.sqrt(alphaProd);
    const sb = Math.sqrt(1 - alphaProd);
    const saPrev = Math.sqrt(alphaProdPrev);
    const sbPrev = Math.sqrt(1 - alphaProdPrev);

    const prevSample = emptyLike(sample);
    const denoised = emptyLike(sample);
    for (let i = 0; i < sample.length; i++) {
      const m = modelOutput[i];
      const x = sample[i];
      let x0: number;
      let eps: number;
      if (prediction === 'epsilon') {
        x0 = (x - sb * m) / sa;
        eps = m;
      } else if (prediction === 'v_prediction') {
        x0 = sa * x - sb * m;
        eps = sa * m + sb * x;
      } else {
        x0 = m;
        eps = (x - sa * x0) / sb;
      }
      // Clipping changes x0 only; the noise direction stays the model's (use_clipped_model_output off).
      if (clip) x0 = Math.min(range, Math.max(-range, x0));
      denoised[i] = x0;
      prevSample[i] = saPrev * x0 + sbPrev * eps;
    }
    return { prevSample, denoised };
  }

  addNoise(original: Sample, noise: Sample, t: number): Sample {
    checkSameLength(NAME, 'noise', noise, original);
    return addNoiseWithAlphaCumprod(original, noise, alphaCumprodAt(NAME, this.alphasCumprod, t));
  }

  setBeginIndex(index: number): void {
    // Stateless: each step only needs its own t. Still checked, so a bad index fails here too.
    if (this._numInferenceSteps === null) throw new Error(`${NAME}: call setTimesteps(steps) before setBeginIndex`);
    if (!Number.isInteger(index) || index < 0 || index >= this._timesteps.length) {
      throw new RangeError(`${NAME}: begin index must be a whole number from 0 to ${this._timesteps.length - 1} (a position in .timesteps), got ${index}`);
    }
  }

  reset(): void {
    // Nothing carries over between DDIM steps.
  }

  clone(opts?: SchedulerOptions): DDIMScheduler {
    const copy = new DDIMScheduler(this.config, opts ?? this.opts);
    if (this._numInferenceSteps !== null) copy.setTimesteps(this._numInferenceSteps);
    return copy;
  }
}

/** The registry entry (see ./index.ts): kind, the diffusers classes it implements, constructor. */
export const DDIM: SchedulerRegistration<'ddim'> = {
  kind: 'ddim',
  label: 'DDIM',
  classNames: ['DDIMScheduler'],
  create: (config, opts) => new DDIMScheduler(config, opts),
};
