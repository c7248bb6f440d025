/**
 * PNDM's pseudo linear multistep sampler (Liu et al. 2022, "PLMS") with the Runge-Kutta warm-up
 * skipped: diffusers' PNDMScheduler with skip_prk_steps = true, the scheduler Stable Diffusion 1.x
 * and 2.x exports name. Every step is formula (9) of the paper (a DDIM-style transfer from t to
 * t - num_train // steps) applied to a combination of the model outputs so far:
 *   first step        e0                                    (predictor, to t1)
 *   second step       (e0 + e1) / 2, again from the first sample (corrector, to t1 again)
 *   then              Adams-Bashforth of order 2, 3, 4 over the stored outputs.
 * The corrector is why the schedule repeats its second timestep: N steps make N + 1 UNet calls
 * (timesteps [981, 961, 961, 941, ..., 1] for SD at 50 steps).
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
  resolveSchedulerConfig,
  roundHalfEven,
  SchedulerConfigError,
  StepCursor,
  trailingTimesteps,
  type ResolvedSchedulerConfig,
  type Sample,
  type Scheduler,
  type SchedulerConfig,
  type SchedulerOptions,
  type SchedulerRegistration,
  type StepResult,
  SCHEDULER_BASE_DEFAULTS,
} from './scheduler.ts';

/** PNDMScheduler's __init__ defaults (keys PNDM does not use keep neutral values). */
export const PNDM_DEFAULTS: Omit<ResolvedSchedulerConfig, '_class_name'> = {
  ...SCHEDULER_BASE_DEFAULTS,
  timestep_spacing: 'leading',
  set_alpha_to_one: false,
  skip_prk_steps: false,
};

const NAME = 'PNDM scheduler';

/** Adams-Bashforth weights by the number of stored outputs (newest first), as diffusers' step_plms. */
const AB_WEIGHTS: readonly (readonly number[])[] = [
  [1],
  [3 / 2, -1 / 2],
  [23 / 12, -16 / 12, 5 / 12],
  [55 / 24, -59 / 24, 37 / 24, -9 / 24],
];

export class PNDMScheduler implements Scheduler {
  readonly kind = PNDM.kind;
  readonly config: ResolvedSchedulerConfig;
  readonly initNoiseSigma = 1;
  readonly order = 1;
  readonly alphasCumprod: Float64Array;
  /** alphas_cumprod used past the end of the schedule (prev timestep < 0). */
  readonly finalAlphaCumprod: number;
  private _timesteps: number[] = [];
  private _numInferenceSteps: number | null = null;
  private readonly cursor = new StepCursor(NAME);
  /** Model outputs of the multistep phase, oldest first (at most 4 kept). */
  private ets: Sample[] = [];
  /** The sample the first step started from; the corrector (second step) restarts from it. */
  private curSample: Sample | null = null;

  constructor(config: SchedulerConfig | Record<string, unknown>, private readonly opts: SchedulerOptions = {}) {
    this.config = resolveSchedulerConfig(config, PNDM_DEFAULTS, NAME);
    if (!this.config.skip_prk_steps) {
      throw new SchedulerConfigError(
        `Unsupported ${NAME} config: skip_prk_steps is false, and PNDM's Runge-Kutta warm-up steps are not implemented; ` +
          "set skip_prk_steps to true (as Stable Diffusion's scheduler configs do) or choose another scheduler",
      );
    }
    if (this.config.prediction_type === 'sample') {
      throw new SchedulerConfigError(`Unsupported ${NAME} config: prediction_type must be 'epsilon' or 'v_prediction' (got "sample")`);
    }
    this.alphasCumprod = makeAlphasCumprod(makeBetas(this.config));
    this.finalAlphaCumprod = this.config.set_alpha_to_one ? 1 : this.alphasCumprod[0];
  }

  get timesteps(): number[] {
    return this._timesteps;
  }

  get numInferenceSteps(): number | null {
    return this._numInferenceSteps;
  }

  /** The step ratio diffusers steps back by, whatever the spacing. */
  private get ratio(): number {
    return Math.floor(this.config.num_train_timesteps / this._numInferenceSteps!);
  }

  setTimesteps(numInferenceSteps: number): void {
    const numTrain = this.config.num_train_timesteps;
    checkStepCount(NAME, numInferenceSteps, numTrain);
    // diffusers' `_timesteps`, ascending.
    let base: number[];
    switch (this.config.timestep_spacing) {
      case 'linspace':
        base = linspace(0, numTrain - 1, numInferenceSteps).map(roundHalfEven);
        break;
      case 'leading': {
        const ratio = Math.floor(numTrain / numInferenceSteps);
        base = Array.from({ length: numInferenceSteps }, (_, i) => i * ratio + this.config.steps_offset);
        break;
      }
      case 'trailing':
        base = trailingTimesteps(numTrain, numInferenceSteps, numTrain).reverse();
        break;
    }
    // plms_timesteps = concatenate([_timesteps[:-1], _timesteps[-2:-1], _timesteps[-1:]])[::-1]
    const n = base.length;
    this._timesteps = [...base.slice(0, n - 1), ...base.slice(Math.max(0, n - 2), n - 1), base[n - 1]].reverse();
    this._numInferenceSteps = numInferenceSteps;
    this.cursor.begin = null;
    this.reset();
  }

  scaleModelInput(sample: Sample, _t: number): Sample {
    return sample.slice();
  }

  step(modelOutput: Sample, t: number, sample: Sample): StepResult {
    if (this._numInferenceSteps === null) throw new Error(`${NAME}: call setTimesteps(steps) before stepping`);
    checkSameLength(NAME, 'model output', modelOutput, sample);
    const index = this.cursor.at(this._timesteps, t);
    let from = t;
    let to = t - this.ratio;
    let start: Sample = sample;
    let combined: Sample;

    if (index === 1 && this.curSample) {
      // Corrector: average the two outputs and redo the first transfer from its starting sample.
      const first = this.ets[this.ets.length - 1];
      combined = Float64Array.from(modelOutput, (m, i) => (m + first[i]) / 2);
      start = this.curSample;
      this.curSample = null;
      to = t;
      from = t + this.ratio;
    } else if (index === 1) {
      // A trajectory that begins at the corrector (a branch) has no first sample to restart from:
      // its input already sits at this timestep, and the multistep phase starts at the next step.
      this.cursor.advance();
      return { prevSample: sample.slice(), denoised: this.denoise(modelOutput, sample, t) };
    } else {
      this.ets = [...this.ets.slice(-3), Float64Array.from(modelOutput)];
      if (index === 0) this.curSample = sample.slice();
      const w = AB_WEIGHTS[this.ets.length - 1];
      combined = new Float64Array(sample.length);
      for (let k = 0; k < w.length; k++) {
        const e = this.ets[this.ets.length - 1 - k];
        for (let i = 0; i < combined.length; i++) combined[i] += w[k] * e[i];
      }
    }

    const prevSample = this.transfer(start, from, to, combined);
    const denoised = this.denoise(combined, start, from);
    this.cursor.advance();
    return { prevSample, denoised };
  }

  /** diffusers' _get_prev_sample: formula (9) of the PNDM paper, from timestep `from` to `to`. */
  private transfer(sample: Sample, from: number, to: number, modelOutput: Sample): Sample {
    const alphaProd = alphaCumprodAt(NAME, this.alphasCumprod, from);
    const alphaProdPrev = to >= 0 ? this.alphasCumprod[to] : this.finalAlphaCumprod;
    const betaProd = 1 - alphaProd;
    const betaProdPrev = 1 - alphaProdPrev;
    const sampleCoeff = Math.sqrt(alphaProdPrev / alphaProd);
    const denom = alphaProd * Math.sqrt(betaProdPrev) + Math.sqrt(alphaProd * betaProd * alphaProdPrev);
    const v = this.config.prediction_type === 'v_prediction';
    const sa = Math.sqrt(alphaProd);
    const sb = Math.sqrt(betaProd);
    const out = emptyLike(sample);
    for (let i = 0; i < out.length; i++) {
      const eps = v ? sa * modelOutput[i] + sb * sample[i] : modelOutput[i];
      out[i] = sampleCoeff * sample[i] - ((alphaProdPrev - alphaProd) * eps) / denom;
    }
    return out;
  }

  /** Clean-sample estimate for a (combined) model output at timestep t. */
  private denoise(modelOutput: Sample, sample: Sample, t: number): Sample {
    const a = alphaCumprodAt(NAME, this.alphasCumprod, t);
    const sa = Math.sqrt(a);
    const sb = Math.sqrt(1 - a);
    const v = this.config.prediction_type === 'v_prediction';
    const out = emptyLike(sample);
    for (let i = 0; i < out.length; i++) {
      out[i] = v ? sa * sample[i] - sb * modelOutput[i] : (sample[i] - sb * modelOutput[i]) / sa;
    }
    return out;
  }

  addNoise(original: Sample, noise: Sample, t: number): Sample {
    checkSameLength(NAME, 'noise', noise, original);
    return addNoiseWithAlphaCumprod(original, noise, alphaCumprodAt(NAME, this.alphasCumprod, t));
  }

  setBeginIndex(index: number): void {
    this.cursor.setBegin(index, this._timesteps);
  }

  reset(): void {
    this.cursor.reset();
    this.ets = [];
    this.curSample = null;
  }

  clone(opts?: SchedulerOptions): PNDMScheduler {
    const copy = new PNDMScheduler(this.config, opts ?? this.opts);
    if (this._numInferenceSteps !== null) copy.setTimesteps(this._numInferenceSteps);
    return copy;
  }
}

/** The registry entry (see ./index.ts): kind, the diffusers classes it implements, constructor. */
export const PNDM: SchedulerRegistration<'pndm'> = {
  kind: 'pndm',
  label: 'PNDM (PLMS)',
  classNames: ['PNDMScheduler'],
  create: (config, opts) => new PNDMScheduler(config, opts),
};
