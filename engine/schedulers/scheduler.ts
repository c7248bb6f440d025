/**
 * The shared shape of the diffusion schedulers (diffusers' SchedulerMixin, in camelCase) and the
 * pieces every scheduler builds on: config parsing/validation, the beta / alphas_cumprod tables,
 * timestep spacing and the Karras sigma ramp.
 *
 * Precision: diffusers builds betas, alphas_cumprod and sigmas as float32 tensors, so those tables
 * are computed here with Math.fround at each operation torch does in float32; everything else runs
 * in float64. That keeps trajectories within ~1e-6 of diffusers instead of drifting by ~3e-5.
 */

export type Sample = Float32Array | Float64Array;


export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';
export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';
export type FinalSigmasType = 'zero' | 'sigma_min';
export type InterpolationType = 'linear' | 'log_linear';
export type SolverType = 'midpoint' | 'heun';

/** diffusers' scheduler_config.json (snake_case keys as written there). Unknown keys are ignored. */
export interface SchedulerConfig {
  _class_name?: string;
  num_train_timesteps?: number;
  beta_start?: number;
  beta_end?: number;
  beta_schedule?: BetaSchedule;
  trained_betas?: number[] | null;
  prediction_type?: PredictionType;
  timestep_spacing?: TimestepSpacing;
  steps_offset?: number;
  set_alpha_to_one?: boolean;
  clip_sample?: boolean;
  clip_sample_range?: number;
  use_karras_sigmas?: boolean;
  solver_order?: number;
  algorithm_type?: string;
  solver_type?: SolverType;
  final_sigmas_type?: FinalSigmasType;
  lower_order_final?: boolean;
  euler_at_final?: boolean;
  interpolation_type?: InterpolationType;
  original_inference_steps?: number;
  timestep_scaling?: number;
  rescale_betas_zero_snr?: boolean;
  skip_prk_steps?: boolean;
}

/** A validated config with every setting filled in (from the scheduler's own diffusers defaults). */
export type ResolvedSchedulerConfig = Required<Omit<SchedulerConfig, 'trained_betas' | '_class_name'>> & {
  trained_betas: number[] | null;
  _class_name?: string;
};

export interface SchedulerOptions {
  /** Standard normal sampler; LCM draws the noise it injects between steps from it (when stepNoise is not given). */
  rng?: () => number;
  /**
   * The noise LCM injects after step `stepIndex` (standard normal, `length` values). Takes precedence
   * over rng: a pure function of the step lets several trajectories share their noise (latent blending).
   */
  stepNoise?: (stepIndex: number, length: number) => Sample;
}

/**
 * One entry of the scheduler registry (./index.ts): each scheduler file declares its own, next to
 * its class, like diffusers' `_compatibles`.
 */
export interface SchedulerRegistration<K extends string = string> {
  readonly kind: K;
  /** Human name, for messages and help texts. */
  readonly label: string;
  /** The diffusers class names (scheduler_config.json `_class_name`) this scheduler implements. */
  readonly classNames: readonly string[];
  create(config: SchedulerConfig | Record<string, unknown>, opts?: SchedulerOptions): Scheduler;
}

export interface StepResult {
  prevSample: Sample;
  /** The scheduler's estimate of the clean sample (diffusers' pred_original_sample / denoised). */
  denoised: Sample;
}

export interface Scheduler {
  /** The registry's name for it (a SchedulerKind, see ./index.ts; typed as a string here so this file needs nothing from the registry). */
  readonly kind: string;
  readonly config: ResolvedSchedulerConfig;
  /** Timesteps to feed the UNet, in order; empty until setTimesteps. */
  readonly timesteps: number[];
  /** Noise levels per step plus the final one (euler, dpmpp_2m). */
  readonly sigmas?: number[];
  readonly initNoiseSigma: number;
  readonly order: number;
  readonly numInferenceSteps: number | null;
  setTimesteps(numInferenceSteps: number): void;
  /** Scales the sample the way the UNet expects at timestep t; always returns a new array. */
  scaleModelInput(sample: Sample, t: number): Sample;
  /** One denoising step; steps must come in the order of `timesteps`. */
  step(modelOutput: Sample, t: number, sample: Sample): StepResult;
  /** Noises a clean sample to timestep t (img2img, latent blending). */
  addNoise(original: Sample, noise: Sample, t: number): Sample;
  /**
   * The index in .timesteps of the first step this trajectory will run (diffusers' set_begin_index).
   * A trajectory that starts mid-schedule (a latent-blending branch, img2img) must say where: looking
   * its first timestep up is ambiguous when the schedule repeats a timestep (PNDM, Karras DPM++).
   * Without it, the first step's index is looked up from its timestep, as diffusers does.
   */
  setBeginIndex(index: number): void;
  /** Forgets the step state (step index, previous model outputs); keeps config, timesteps and begin index. */
  reset(): void;
  /** A scheduler with the same config and timesteps but its own, fresh step state. */
  clone(opts?: SchedulerOptions): Scheduler;
}

// ---------------------------------------------------------------------------------------------
// Config

const BETA_SCHEDULES: readonly BetaSchedule[] = ['linear', 'scaled_linear', 'squaredcos_cap_v2'];
const PREDICTION_TYPES: readonly PredictionType[] = ['epsilon', 'v_prediction', 'sample'];
const TIMESTEP_SPACINGS: readonly TimestepSpacing[] = ['leading', 'trailing', 'linspace'];
const FINAL_SIGMAS_TYPES: readonly FinalSigmasType[] = ['zero', 'sigma_min'];
const INTERPOLATION_TYPES: readonly InterpolationType[] = ['linear', 'log_linear'];
const SOLVER_TYPES: readonly SolverType[] = ['midpoint', 'heun'];

/** Settings diffusers has that we do not implement: refuse them rather than silently ignore them. */
const UNSUPPORTED_WHEN_SET: ReadonlyArray<[key: string, isSet: (v: unknown) => boolean, why: string]> = [
  ['thresholding', (v) => v === true, 'dynamic thresholding is not implemented; set it to false'],
  ['use_exponential_sigmas', (v) => v === true, 'exponential sigmas are not implemented; set it to false'],
  ['use_beta_sigmas', (v) => v === true, 'beta sigmas are not implemented; set it to false'],
  ['use_lu_lambdas', (v) => v === true, 'Lu lambdas are not implemented; set it to false'],
  ['use_flow_sigmas', (v) => v === true, 'flow-matching sigmas are not implemented; set it to false'],
  ['timestep_type', (v) => v != null && v !== 'discrete', "only 'discrete' timesteps are implemented"],
];

/**
 * The __init__ defaults diffusers' schedulers share (each scheduler file spreads this and sets
 * what its own class defaults differently, so every default is still visible per scheduler).
 */
export const SCHEDULER_BASE_DEFAULTS: Omit<ResolvedSchedulerConfig, '_class_name'> = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
  prediction_type: 'epsilon',
  timestep_spacing: 'linspace',
  steps_offset: 0,
  set_alpha_to_one: true,
  clip_sample: false,
  clip_sample_range: 1,
  use_karras_sigmas: false,
  solver_order: 2,
  algorithm_type: 'dpmsolver++',
  solver_type: 'midpoint',
  final_sigmas_type: 'zero',
  lower_order_final: true,
  euler_at_final: false,
  interpolation_type: 'linear',
  original_inference_steps: 50,
  timestep_scaling: 10,
  rescale_betas_zero_snr: false,
  skip_prk_steps: false,
};

export class SchedulerConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchedulerConfigError';
  }
}

function describe(value: unknown): string {
  return typeof value === 'string' ? `"${value}"` : JSON.stringify(value) ?? String(value);
}

/**
 * Merges a scheduler_config.json over one scheduler's diffusers defaults (like diffusers'
 * from_config) and checks every known key. null counts as "not given". Throws SchedulerConfigError.
 */
export function resolveSchedulerConfig(
  raw: SchedulerConfig | Record<string, unknown>,
  defaults: Omit<ResolvedSchedulerConfig, '_class_name'>,
  schedulerName: string,
): ResolvedSchedulerConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new SchedulerConfigError(
      `${schedulerName} config must be an object like scheduler_config.json, got ${describe(raw)}`,
    );
  }
  const src = raw as Record<string, unknown>;
  const fail = (key: string, what: string): never => {
    throw new SchedulerConfigError(
      `Invalid ${schedulerName} config: ${key} must be ${what} (got ${describe(src[key])})`,
    );
  };
  const given = (key: string): boolean => src[key] !== undefined && src[key] !== null;

  const num = (key: keyof typeof defaults, check: (n: number) => boolean, what: string): number => {
    if (!given(key)) return defaults[key] as number;
    const v = src[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) fail(key, what);
    return v as number;
  };
  const int = (key: keyof typeof defaults, min: number, max = Infinity): number =>
    num(key, (n) => Number.isInteger(n) && n >= min && n <= max,
      max === Infinity ? `a whole number >= ${min}` : `a whole number from ${min} to ${max}`);
  const bool = (key: keyof typeof defaults): boolean => {
    if (!given(key)) return defaults[key] as boolean;
    if (typeof src[key] !== 'boolean') fail(key, 'true or false');
    return src[key] as boolean;
  };
  const oneOf = <T extends string>(key: keyof typeof defaults, allowed: readonly T[]): T => {
    if (!given(key)) return defaults[key] as T;
    const v = src[key];
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      fail(key, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`);
    }
    return v as T;
  };

  for (const [key, isSet, why] of UNSUPPORTED_WHEN_SET) {
    if (isSet(src[key])) {
      throw new SchedulerConfigError(`Unsupported ${schedulerName} config: ${key} = ${describe(src[key])}; ${why}`);
    }
  }

  const num_train_timesteps = int('num_train_timesteps', 1);
  const beta_start = num('beta_start', (n) => n >= 0 && n < 1, 'a number from 0 up to (not including) 1');
  const beta_end = num('beta_end', (n) => n > 0 && n < 1, 'a number between 0 and 1');

  let trained_betas: number[] | null = null;
  if (given('trained_betas')) {
    const tb = src.trained_betas;
    if (!Array.isArray(tb) || tb.length !== num_train_timesteps ||
        !tb.every((b) => typeof b === 'number' && b > 0 && b < 1)) {
      fail('trained_betas', `an array of ${num_train_timesteps} numbers between 0 and 1 (one per train timestep)`);
    }
    trained_betas = (tb as number[]).slice();
  }

  let algorithm_type = defaults.algorithm_type;
  if (given('algorithm_type')) {
    if (typeof src.algorithm_type !== 'string') fail('algorithm_type', 'a string');
    algorithm_type = src.algorithm_type as string;
  }

  const resolved: ResolvedSchedulerConfig = {
    num_train_timesteps,
    beta_start,
    beta_end,
    beta_schedule: oneOf('beta_schedule', BETA_SCHEDULES),
    trained_betas,
    prediction_type: oneOf('prediction_type', PREDICTION_TYPES),
    timestep_spacing: oneOf('timestep_spacing', TIMESTEP_SPACINGS),
    steps_offset: int('steps_offset', 0, num_train_timesteps - 1),
    set_alpha_to_one: bool('set_alpha_to_one'),
    clip_sample: bool('clip_sample'),
    clip_sample_range: num('clip_sample_range', (n) => n > 0, 'a positive number'),
    use_karras_sigmas: bool('use_karras_sigmas'),
    solver_order: int('solver_order', 1, 3),
    algorithm_type,
    solver_type: oneOf('solver_type', SOLVER_TYPES),
    final_sigmas_type: oneOf('final_sigmas_type', FINAL_SIGMAS_TYPES),
    lower_order_final: bool('lower_order_final'),
    euler_at_final: bool('euler_at_final'),
    interpolation_type: oneOf('interpolation_type', INTERPOLATION_TYPES),
    original_inference_steps: int('original_inference_steps', 1, num_train_timesteps),
    timestep_scaling: num('timestep_scaling', (n) => n > 0, 'a positive number'),
    rescale_betas_zero_snr: bool('rescale_betas_zero_snr'),
    skip_prk_steps: bool('skip_prk_steps'),
  };
  if (typeof src._class_name === 'string') resolved._class_name = src._class_name;
  return resolved;
}

// ---------------------------------------------------------------------------------------------
// Tables (float32 like diffusers, stored as float64 numbers)

const f32 = Math.fround;

/** torch.linspace(start, end, n, dtype=float32): both halves counted from their own end. */
function torchLinspaceF32(start: number, end: number, n: number): Float64Array {
  const out = new Float64Array(n);
  const s = f32(start);
  const e = f32(end);
  const step = n > 1 ? f32(f32(e - s) / (n - 1)) : 0;
  const halfway = Math.floor(n / 2);
  for (let i = 0; i < n; i++) {
    out[i] = i < halfway ? f32(s + f32(step * i)) : f32(e - f32(step * (n - 1 - i)));
  }
  return out;
}

/** diffusers' betas_for_alpha_bar with the cosine alpha-bar ("squaredcos_cap_v2"), max beta 0.999. */
function cosineBetas(n: number): Float64Array {
  const alphaBar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = f32(Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), 0.999));
  }
  return out;
}

/** Running product like torch.cumprod on CPU: accumulates in double, stores each value as float32. */
function cumprodF32(values: Float64Array): Float64Array {
  const out = new Float64Array(values.length);
  let acc = 1;
  for (let i = 0; i < values.length; i++) {
    acc *= values[i];
    out[i] = f32(acc);
  }
  return out;
}

/** diffusers' rescale_zero_terminal_snr: shifts alphas_cumprod so the last timestep is pure noise. */
function rescaleZeroTerminalSnr(betas: Float64Array): Float64Array {
  const alphas = betas.map((b) => f32(1 - b));
  const sqrtBar = cumprodF32(alphas).map((a) => f32(Math.sqrt(a)));
  const first = sqrtBar[0];
  const last = sqrtBar[sqrtBar.length - 1];
  const scale = f32(first / f32(first - last));
  const bar = sqrtBar.map((v) => {
    const shifted = f32(f32(v - last) * scale);
    return f32(shifted * shifted);
  });
  const out = new Float64Array(betas.length);
  for (let i = 0; i < bar.length; i++) {
    const alpha = i === 0 ? bar[0] : f32(bar[i] / bar[i - 1]);
    out[i] = f32(1 - alpha);
  }
  return out;
}

/** Per-train-timestep betas as diffusers builds them (float32 values). */
export function makeBetas(config: ResolvedSchedulerConfig): Float64Array {
  const n = config.num_train_timesteps;
  let betas: Float64Array;
  if (config.trained_betas) {
    betas = Float64Array.from(config.trained_betas, (b) => f32(b));
  } else if (config.beta_schedule === 'linear') {
    betas = torchLinspaceF32(config.beta_start, config.beta_end, n);
  } else if (config.beta_schedule === 'scaled_linear') {
    betas = torchLinspaceF32(Math.sqrt(config.beta_start), Math.sqrt(config.beta_end), n).map((v) => f32(v * v));
  } else {
    betas = cosineBetas(n);
  }
  return config.rescale_betas_zero_snr ? rescaleZeroTerminalSnr(betas) : betas;
}

/** alphas_cumprod[t] = prod_{s<=t} (1 - beta_s), float32 values like diffusers. */
export function makeAlphasCumprod(betas: Float64Array): Float64Array {
  return cumprodF32(betas.map((b) => f32(1 - b)));
}

/** Noise level per train timestep, sigma_t = sqrt((1 - abar_t) / abar_t), float32 values. */
export function sigmasFromAlphasCumprod(alphasCumprod: Float64Array): Float64Array {
  return alphasCumprod.map((a) => f32(Math.sqrt(f32(f32(1 - a) / a))));
}

// ---------------------------------------------------------------------------------------------
// numpy-style helpers (diffusers computes timesteps with numpy; rounding must match it)

/** np.round: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** np.linspace(start, stop, num, endpoint) with numpy's own arithmetic. */
export function linspace(start: number, stop: number, num: number, endpoint = true): number[] {
  const div = endpoint ? num - 1 : num;
  const step = div > 0 ? (stop - start) / div : 0;
  const out: number[] = [];
  for (let i = 0; i < num; i++) out.push(i * step + start);
  if (endpoint && num > 1) out[num - 1] = stop;
  return out;
}

/**
 * np.arange(start, 0, -step) rounded: the "trailing" spacing. numpy can produce one extra,
 * near-zero entry through float round-off (e.g. 61 steps); diffusers then yields timestep -1, so we
 * take exactly `count` entries instead.
 */
export function trailingTimesteps(start: number, count: number, numTrain: number): number[] {
  const delta = (start - numTrain / count) - start; // numpy fills start + i * (second - first)
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(roundHalfEven(start + i * delta) - 1);
  return out;
}

/** np.interp(x, [0, 1, ..., n-1], table) for x inside the table. */
export function interpOnIndexGrid(x: number, table: ArrayLike<number>): number {
  const last = table.length - 1;
  if (x <= 0) return table[0];
  if (x >= last) return table[last];
  const j = Math.floor(x);
  if (j === x) return table[j];
  return (table[j + 1] - table[j]) * (x - j) + table[j];
}

/**
 * The DDIM / Euler timestep schedule for `timestep_spacing` (diffusers' set_timesteps). Values are
 * descending train timesteps; `roundLinspace` is false for Euler, which keeps fractional ones.
 */
export function spacedTimesteps(config: ResolvedSchedulerConfig, steps: number, roundLinspace: boolean): number[] {
  const numTrain = config.num_train_timesteps;
  switch (config.timestep_spacing) {
    case 'linspace': {
      const ts = linspace(0, numTrain - 1, steps).reverse();
      return roundLinspace ? ts.map(roundHalfEven) : ts;
    }
    case 'leading': {
      const ratio = Math.floor(numTrain / steps);
      const out: number[] = [];
      for (let i = steps - 1; i >= 0; i--) out.push(i * ratio + config.steps_offset);
      return out;
    }
    case 'trailing':
      return trailingTimesteps(numTrain, steps, numTrain);
  }
}

export function checkStepCount(schedulerName: string, steps: number, max: number): void {
  if (!Number.isInteger(steps) || steps < 1 || steps > max) {
    throw new RangeError(`${schedulerName}: number of inference steps must be a whole number from 1 to ${max}, got ${steps}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Karras sigmas

/** Karras et al. (2022) noise levels: rho-spaced from sigmaMax down to sigmaMin, `count` values. */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, count: number, rho = 7): number[] {
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  return linspace(0, 1, count).map((r) => (maxInv + r * (minInv - maxInv)) ** rho);
}

/**
 * Fractional train timestep whose sigma is `sigma` (diffusers' _sigma_to_t): linear in log-sigma
 * between the two neighbouring entries of the ascending `logSigmas` table, clamped to its range.
 */
export function sigmaToTimestep(sigma: number, logSigmas: ArrayLike<number>): number {
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  let low = 0;
  for (let i = 0; i < logSigmas.length; i++) if (logSigma - logSigmas[i] >= 0) low = i;
  low = Math.min(low, logSigmas.length - 2);
  const lo = logSigmas[low];
  const hi = logSigmas[low + 1];
  const w = Math.min(1, Math.max(0, (lo - logSigma) / (lo - hi)));
  return (1 - w) * low + w * (low + 1);
}

// ---------------------------------------------------------------------------------------------
// Sample helpers and step bookkeeping

export function emptyLike(sample: Sample): Sample {
  return sample instanceof Float32Array ? new Float32Array(sample.length) : new Float64Array(sample.length);
}

export function checkSameLength(schedulerName: string, what: string, a: Sample, b: Sample): void {
  if (a.length !== b.length) {
    throw new RangeError(`${schedulerName}: ${what} has ${a.length} values but the sample has ${b.length}; they must match`);
  }
}

/**
 * Position of t in the schedule (diffusers' index_for_timestep): the second match when t occurs
 * twice, so a run started mid-schedule (img2img) does not skip a sigma.
 */
export function indexOfTimestep(schedulerName: string, timesteps: readonly number[], t: number): number {
  if (timesteps.length === 0) throw new Error(`${schedulerName}: call setTimesteps(steps) first`);
  const first = timesteps.indexOf(t);
  if (first < 0) {
    throw new RangeError(
      `${schedulerName}: timestep ${t} is not in this schedule (${timesteps.length} steps: ${timesteps.slice(0, 6).join(', ')}${timesteps.length > 6 ? ', ...' : ''}); use a value from .timesteps`,
    );
  }
  const second = timesteps.indexOf(t, first + 1);
  return second >= 0 ? second : first;
}

/**
 * The step index shared by stateful schedulers: the begin index when one was set (setBeginIndex),
 * else found from t on the first call (so a fresh clone can join a trajectory mid-way), then
 * advanced by step(). Catches out-of-order calls.
 */
export class StepCursor {
  index: number | null = null;
  /** Where the next trajectory starts (diffusers' _begin_index); survives reset(). */
  begin: number | null = null;

  constructor(private readonly schedulerName: string) {}

  /** Sets the first step's index; checked against the schedule on the first step. */
  setBegin(index: number, timesteps: readonly number[]): void {
    if (timesteps.length === 0) throw new Error(`${this.schedulerName}: call setTimesteps(steps) before setBeginIndex`);
    if (!Number.isInteger(index) || index < 0 || index >= timesteps.length) {
      throw new RangeError(`${this.schedulerName}: begin index must be a whole number from 0 to ${timesteps.length - 1} (a position in .timesteps), got ${index}`);
    }
    this.begin = index;
    this.index = null;
  }

  /** Forgets the position (a new trajectory starts at the begin index, or where its timestep says). */
  reset(): void {
    this.index = null;
  }

  /** Index for timestep t, initialising from the begin index or the schedule if this trajectory has not started. */
  at(timesteps: readonly number[], t: number): number {
    if (this.index === null) {
      this.index = this.begin ?? indexOfTimestep(this.schedulerName, timesteps, t);
    }
    if (this.index >= timesteps.length) {
      throw new Error(
        `${this.schedulerName}: all ${timesteps.length} steps are done; call reset() or clone() to run another trajectory`,
      );
    } else if (timesteps[this.index] !== t) {
      throw new Error(
        `${this.schedulerName}: expected timestep ${timesteps[this.index]} (step ${this.index + 1} of ${timesteps.length}) but got ${t}; ` +
          'steps must follow .timesteps in order (use clone() for a separate trajectory)',
      );
    }
    return this.index;
  }

  advance(): void {
    if (this.index !== null) this.index += 1;
  }
}

/** alphas_cumprod[t] for an integer train timestep, with a clear error otherwise. */
export function alphaCumprodAt(schedulerName: string, alphasCumprod: Float64Array, t: number): number {
  if (!Number.isInteger(t) || t < 0 || t >= alphasCumprod.length) {
    throw new RangeError(`${schedulerName}: timestep must be a whole number from 0 to ${alphasCumprod.length - 1}, got ${t}`);
  }
  return alphasCumprod[t];
}

/** DDPM forward process q(x_t | x_0): sqrt(abar) * x0 + sqrt(1 - abar) * noise. */
export function addNoiseWithAlphaCumprod(original: Sample, noise: Sample, alphaCumprod: number): Sample {
  const out = emptyLike(original);
  const a = Math.sqrt(alphaCumprod);
  const b = Math.sqrt(1 - alphaCumprod);
  for (let i = 0; i < out.length; i++) out[i] = a * original[i] + b * noise[i];
  return out;
}

/**
 * Clean-sample estimate from a DDPM-style model output at alphas_cumprod `alphaProd`
 * (the parameterisations shared by DDIM and LCM).
 */
export function predictOriginal(
  predictionType: PredictionType,
  modelOutput: Sample,
  sample: Sample,
  alphaProd: number,
): Float64Array {
  const sa = Math.sqrt(alphaProd);
  const sb = Math.sqrt(1 - alphaProd);
  const out = new Float64Array(sample.length);
  for (let i = 0; i < out.length; i++) {
    const m = modelOutput[i];
    const x = sample[i];
    out[i] = predictionType === 'epsilon' ? (x - sb * m) / sa
      : predictionType === 'v_prediction' ? sa * x - sb * m
      : m;
  }
  return out;
}
