/**
 * DPM-Solver++ multistep (Lu et al. 2022), data prediction, order 1 or 2 ("DPM++ 2M"):
 * diffusers' DPMSolverMultistepScheduler with algorithm_type 'dpmsolver++', optional Karras sigmas.
 * Works in the VP parameterisation x_t = alpha_t * x0 + sigma_t * eps with sigma = sigma_t / alpha_t.
 */
import {
  checkSameLength,
  checkStepCount,
  emptyLike,
  indexOfTimestep,
  interpOnIndexGrid,
  karrasSigmas,
  linspace,
  makeAlphasCumprod,
  makeBetas,
  resolveSchedulerConfig,
  roundHalfEven,
  SchedulerConfigError,
  sigmasFromAlphasCumprod,
  sigmaToTimestep,
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

/** DPMSolverMultistepScheduler's __init__ defaults (keys it does not use keep neutral values). */
export const DPMPP_2M_DEFAULTS: Omit<ResolvedSchedulerConfig, '_class_name'> = { ...SCHEDULER_BASE_DEFAULTS };

const NAME = 'DPM++ 2M scheduler';
const f32 = Math.fround;

/** (alpha_t, sigma_t, lambda_t = log(alpha_t / sigma_t)) for a VE sigma; lambda is +Inf at sigma 0. */
function vpCoefficients(sigma: number): { alpha: number; sigmaT: number; lambda: number } {
  const alpha = 1 / Math.sqrt(sigma * sigma + 1);
  const sigmaT = sigma * alpha;
  return { alpha, sigmaT, lambda: Math.log(alpha) - Math.log(sigmaT) };
}

export class DPMSolverMultistepScheduler implements Scheduler {
  readonly kind = DPMPP_2M.kind;
  readonly config: ResolvedSchedulerConfig;
  readonly initNoiseSigma = 1;
  readonly order = 1;
  readonly alphasCumprod: Float64Array;
  private readonly trainSigmas: Float64Array;
  private _timesteps: number[] = [];
  private _sigmas: number[];
  private _numInferenceSteps: number | null = null;
  private readonly cursor = new StepCursor(NAME);
  /** Data predictions (x0) of the previous steps, oldest first. */
  private modelOutputs: (Float64Array | null)[];
  private lowerOrderNums = 0;

  constructor(config: SchedulerConfig | Record<string, unknown>, private readonly opts: SchedulerOptions = {}) {
    this.config = resolveSchedulerConfig(config, DPMPP_2M_DEFAULTS, NAME);
    if (this.config.algorithm_type !== 'dpmsolver++') {
      throw new SchedulerConfigError(`Unsupported ${NAME} config: algorithm_type must be 'dpmsolver++' (got "${this.config.algorithm_type}")`);
    }
    if (this.config.solver_order > 2) {
      throw new SchedulerConfigError(`Unsupported ${NAME} config: solver_order must be 1 or 2 (got ${this.config.solver_order})`);
    }
    const alphasCumprod = makeAlphasCumprod(makeBetas(this.config));
    if (this.config.rescale_betas_zero_snr) alphasCumprod[alphasCumprod.length - 1] = 2 ** -24;
    this.alphasCumprod = alphasCumprod;
    this.trainSigmas = sigmasFromAlphasCumprod(alphasCumprod);
    this._sigmas = Array.from(this.trainSigmas);
    this.modelOutputs = new Array(this.config.solver_order).fill(null);
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

  /** diffusers spaces n + 1 points and drops the last, so the final step does not land on t = 0. */
  private spacedTimesteps(n: number): number[] {
    const numTrain = this.config.num_train_timesteps;
    switch (this.config.timestep_spacing) {
      case 'linspace':
        return linspace(0, numTrain - 1, n + 1).map(roundHalfEven).reverse().slice(0, n);
      case 'leading': {
        const ratio = Math.floor(numTrain / (n + 1));
        const out: number[] = [];
        for (let i = n; i >= 1; i--) out.push(i * ratio + this.config.steps_offset);
        return out;
      }
      case 'trailing':
        return trailingTimesteps(numTrain, n, numTrain);
    }
  }

  setTimesteps(numInferenceSteps: number): void {
    checkStepCount(NAME, numInferenceSteps, this.config.num_train_timesteps);
    let timesteps = this.spacedTimesteps(numInferenceSteps);
    let sigmas: number[];
    if (this.config.use_karras_sigmas) {
      // Unlike Euler, diffusers ramps over the full training range here and rounds the timesteps.
      const n = this.trainSigmas.length;
      sigmas = karrasSigmas(this.trainSigmas[0], this.trainSigmas[n - 1], numInferenceSteps);
      const logSigmas = Array.from(this.trainSigmas, (s) => f32(Math.log(s)));
      timesteps = sigmas.map((s) => sigmaToTimestep(s, logSigmas));
      if (this.config.beta_schedule !== 'squaredcos_cap_v2') timesteps = timesteps.map(roundHalfEven);
    } else {
      sigmas = timesteps.map((t) => interpOnIndexGrid(t, this.trainSigmas));
    }
    const last = this.config.final_sigmas_type === 'sigma_min' ? this.trainSigmas[0] : 0;
    this._sigmas = [...sigmas, last].map(f32);
    this._timesteps = timesteps;
    this._numInferenceSteps = numInferenceSteps;
    this.cursor.begin = null;
    this.reset();
  }

  scaleModelInput(sample: Sample, _t: number): Sample {
    return sample.slice();
  }

  step(modelOutput: Sample, t: number, sample: Sample): StepResult {
    checkSameLength(NAME, 'model output', modelOutput, sample);
    const index = this.cursor.at(this._timesteps, t);
    const steps = this._timesteps.length;
    const { lower_order_final: lowerOrderFinal, euler_at_final: eulerAtFinal } = this.config;
    // First order on the last step when asked, for short schedules, and always when ending at sigma 0
    // (the second-order correction is undefined there).
    const finalFirstOrder = index === steps - 1 &&
      (eulerAtFinal || (lowerOrderFinal && steps < 15) || this.config.final_sigmas_type === 'zero');

    const x0 = this.dataPrediction(modelOutput, sample, this._sigmas[index]);
    this.modelOutputs.shift();
    this.modelOutputs.push(x0);

    const x = this.config.solver_order === 1 || this.lowerOrderNums < 1 || finalFirstOrder
      ? this.firstOrderUpdate(x0, sample, index)
      : this.secondOrderUpdate(sample, index);

    if (this.lowerOrderNums < this.config.solver_order) this.lowerOrderNums += 1;
    this.cursor.advance();

    const prevSample = emptyLike(sample);
    prevSample.set(x);
    const denoised = emptyLike(sample);
    denoised.set(x0);
    return { prevSample, denoised };
  }

  private dataPrediction(modelOutput: Sample, sample: Sample, sigma: number): Float64Array {
    const { alpha, sigmaT } = vpCoefficients(sigma);
    const out = new Float64Array(sample.length);
    const prediction = this.config.prediction_type;
    for (let i = 0; i < out.length; i++) {
      const x = sample[i];
      const m = modelOutput[i];
      out[i] = prediction === 'epsilon' ? (x - sigmaT * m) / alpha
        : prediction === 'v_prediction' ? alpha * x - sigmaT * m
        : m;
    }
    return out;
  }

  private firstOrderUpdate(x0: Float64Array, sample: Sample, index: number): Float64Array {
    const to = vpCoefficients(this._sigmas[index + 1]);
    const from = vpCoefficients(this._sigmas[index]);
    const h = to.lambda - from.lambda;
    const keep = to.sigmaT / from.sigmaT;
    const push = to.alpha * (Math.exp(-h) - 1);
    const out = new Float64Array(sample.length);
    for (let i = 0; i < out.length; i++) out[i] = keep * sample[i] - push * x0[i];
    return out;
  }

  private secondOrderUpdate(sample: Sample, index: number): Float64Array {
    const to = vpCoefficients(this._sigmas[index + 1]);
    const s0 = vpCoefficients(this._sigmas[index]);
    const s1 = vpCoefficients(this._sigmas[index - 1]);
    const m0 = this.modelOutputs[this.modelOutputs.length - 1]!;
    const m1 = this.modelOutputs[this.modelOutputs.length - 2]!;
    const h = to.lambda - s0.lambda;
    const r0 = (s0.lambda - s1.lambda) / h;
    const keep = to.sigmaT / s0.sigmaT;
    const push = to.alpha * (Math.exp(-h) - 1);
    // D1 = (m0 - m1) / r0 is the finite-difference derivative; midpoint and Heun weight it differently.
    const d1Weight = this.config.solver_type === 'midpoint' ? -0.5 * push : to.alpha * ((Math.exp(-h) - 1) / h + 1);
    const out = new Float64Array(sample.length);
    for (let i = 0; i < out.length; i++) {
      const d1 = (m0[i] - m1[i]) / r0;
      out[i] = keep * sample[i] - push * m0[i] + d1Weight * d1;
    }
    return out;
  }

  /** alpha_t * x0 + sigma_t * noise at the schedule's sigma for t (t must be in .timesteps). */
  addNoise(original: Sample, noise: Sample, t: number): Sample {
    checkSameLength(NAME, 'noise', noise, original);
    const { alpha, sigmaT } = vpCoefficients(this._sigmas[indexOfTimestep(NAME, this._timesteps, t)]);
    const out = emptyLike(original);
    for (let i = 0; i < out.length; i++) out[i] = alpha * original[i] + sigmaT * noise[i];
    return out;
  }

  setBeginIndex(index: number): void {
    this.cursor.setBegin(index, this._timesteps);
  }

  reset(): void {
    this.cursor.index = null;
    this.modelOutputs = new Array(this.config.solver_order).fill(null);
    this.lowerOrderNums = 0;
  }

  clone(opts?: SchedulerOptions): DPMSolverMultistepScheduler {
    const copy = new DPMSolverMultistepScheduler(this.config, opts ?? this.opts);
    if (this._numInferenceSteps !== null) copy.setTimesteps(this._numInferenceSteps);
    return copy;
  }
}

/** The registry entry (see ./index.ts): kind, the diffusers classes it implements, constructor. */
export const DPMPP_2M: SchedulerRegistration<'dpmpp_2m'> = {
  kind: 'dpmpp_2m',
  label: 'DPM++ 2M',
  classNames: ['DPMSolverMultistepScheduler'],
  create: (config, opts) => new DPMSolverMultistepScheduler(config, opts),
};
