/**
 * Euler method on the probability-flow ODE in sigma space (Karras et al. 2022, Algorithm 2 without
 * churn): diffusers' EulerDiscreteScheduler, optionally with Karras sigmas.
 * Samples live in "sigma space" (x0 + sigma * noise), hence scaleModelInput's 1/sqrt(sigma^2 + 1).
 */
import {
  checkSameLength,
  checkStepCount,
  emptyLike,
  indexOfTimestep,
  interpOnIndexGrid,
  karrasSigmas,
  makeAlphasCumprod,
  makeBetas,
  resolveSchedulerConfig,
  SchedulerConfigError,
  sigmasFromAlphasCumprod,
  sigmaToTimestep,
  spacedTimesteps,
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

/** EulerDiscreteScheduler's __init__ defaults (keys Euler does not use keep neutral values). */
export const EULER_DEFAULTS: Omit<ResolvedSchedulerConfig, '_class_name'> = { ...SCHEDULER_BASE_DEFAULTS };

const NAME = 'Euler scheduler';
const f32 = Math.fround;

export class EulerDiscreteScheduler implements Scheduler {
  readonly kind = EULER.kind;
  readonly config: ResolvedSchedulerConfig;
  readonly order = 1;
  readonly alphasCumprod: Float64Array;
  /** sigma per train timestep (ascending with t). */
  private readonly trainSigmas: Float64Array;
  private _timesteps: number[] = [];
  private _sigmas: number[];
  private _numInferenceSteps: number | null = null;
  private readonly cursor = new StepCursor(NAME);

  constructor(config: SchedulerConfig | Record<string, unknown>, private readonly opts: SchedulerOptions = {}) {
    this.config = resolveSchedulerConfig(config, EULER_DEFAULTS, NAME);
    if (this.config.interpolation_type !== 'linear') {
      throw new SchedulerConfigError(`Unsupported ${NAME} config: interpolation_type '${this.config.interpolation_type}' is not implemented; use 'linear'`);
    }
    const alphasCumprod = makeAlphasCumprod(makeBetas(this.config));
    // A zero alphas_cumprod (zero-terminal-SNR) would make the top sigma infinite; diffusers nudges it.
    if (this.config.rescale_betas_zero_snr) alphasCumprod[alphasCumprod.length - 1] = 2 ** -24;
    this.alphasCumprod = alphasCumprod;
    this.trainSigmas = sigmasFromAlphasCumprod(alphasCumprod);
    this._sigmas = [...Array.from(this.trainSigmas).reverse(), 0];
  }

  get timesteps(): number[] {
    return this._timesteps;
  }

  get sigmas(): number[] {
    return this._sigmas;
  }

  get numInferenceSteps(): number | null {
    return this._numInferenceSteps;
  }

  get initNoiseSigma(): number {
    const maxSigma = Math.max(...this._sigmas);
    // With leading spacing the first step is below the top sigma; diffusers then uses sqrt(s^2 + 1).
    const spacing = this.config.timestep_spacing;
    return spacing === 'linspace' || spacing === 'trailing' ? maxSigma : f32(Math.sqrt(f32(f32(maxSigma * maxSigma) + 1)));
  }

  setTimesteps(numInferenceSteps: number): void {
    checkStepCount(NAME, numInferenceSteps, this.config.num_train_timesteps);
    let timesteps = spacedTimesteps(this.config, numInferenceSteps, false).map(f32);
    let sigmas = timesteps.map((t) => interpOnIndexGrid(t, this.trainSigmas));
    if (this.config.use_karras_sigmas) {
      // Karras ramp between the sigmas of the first and last spaced timesteps.
      sigmas = karrasSigmas(sigmas[sigmas.length - 1], sigmas[0], numInferenceSteps);
      const logSigmas = Array.from(this.trainSigmas, (s) => f32(Math.log(s)));
      timesteps = sigmas.map((s) => f32(sigmaToTimestep(s, logSigmas)));
    }
    const last = this.config.final_sigmas_type === 'sigma_min' ? this.trainSigmas[0] : 0;
    this._sigmas = [...sigmas, last].map(f32);
    this._timesteps = timesteps;
    this._numInferenceSteps = numInferenceSteps;
    this.cursor.index = null;
    this.cursor.begin = null;
  }

  scaleModelInput(sample: Sample, t: number): Sample {
    const sigma = this._sigmas[this.cursor.at(this._timesteps, t)];
    const scale = 1 / Math.sqrt(sigma * sigma + 1);
    const out = emptyLike(sample);
    for (let i = 0; i < out.length; i++) out[i] = sample[i] * scale;
    return out;
  }

  step(modelOutput: Sample, t: number, sample: Sample): StepResult {
    checkSameLength(NAME, 'model output', modelOutput, sample);
    const index = this.cursor.at(this._timesteps, t);
    const sigma = this._sigmas[index];
    const dt = this._sigmas[index + 1] - sigma;
    const prediction = this.config.prediction_type;
    const vOut = -sigma / Math.sqrt(sigma * sigma + 1);
    const vSkip = 1 / (sigma * sigma + 1);

    const prevSample = emptyLike(sample);
    const denoised = emptyLike(sample);
    for (let i = 0; i < sample.length; i++) {
      const x = sample[i];
      const m = modelOutput[i];
      const x0 = prediction === 'epsilon' ? x - sigma * m
        : prediction === 'v_prediction' ? m * vOut + x * vSkip
        : m;
      const derivative = (x - x0) / sigma;
      denoised[i] = x0;
      prevSample[i] = x + derivative * dt;
    }
    this.cursor.advance();
    return { prevSample, denoised };
  }

  /** x0 + sigma_t * noise: Euler's samples are not scaled by sqrt(abar). t must be in .timesteps. */
  addNoise(original: Sample, noise: Sample, t: number): Sample {
    checkSameLength(NAME, 'noise', noise, original);
    const sigma = this._sigmas[indexOfTimestep(NAME, this._timesteps, t)];
    const out = emptyLike(original);
    for (let i = 0; i < out.length; i++) out[i] = original[i] + sigma * noise[i];
    return out;
  }

  setBeginIndex(index: number): void {
    this.cursor.setBegin(index, this._timesteps);
  }

  reset(): void {
    this.cursor.index = null;
  }

  clone(opts?: SchedulerOptions): EulerDiscreteScheduler {
    const copy = new EulerDiscreteScheduler(this.config, opts ?? this.opts);
    if (this._numInferenceSteps !== null) copy.setTimesteps(this._numInferenceSteps);
    return copy;
  }
}

/** The registry entry (see ./index.ts): kind, the diffusers classes it implements, constructor. */
export const EULER: SchedulerRegistration<'euler'> = {
  kind: 'euler',
  label: 'Euler',
  classNames: ['EulerDiscreteScheduler'],
  create: (config, opts) => new EulerDiscreteScheduler(config, opts),
};
