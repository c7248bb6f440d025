// What a job asks the renderer to make: the one request schema. Every entry point (bot, CLI, web)
// builds its input from its own options and hands it to `parseJobParams`, the only place user input
// is validated, against the limits table in limits.ts; bad values are refused at submission with a
// clear message instead of failing on a GPU later. Stored as jsonb in jobs.params; the engine
// adapter (apps/worker/engine-renderer.ts) renames the fields into the engine's RenderRequest.
import { DEFAULT_IMAGE_STRENGTH, drawSeed, IMAGE_INPUT_FORMATS, inspectImage, InvalidRequestError, MASK_PRESETS, MAX_UPSCALED_VIDEO_PIXELS, MIN_BLEND_STEPS, maxTransitionFrames, type ModelFamily, pictureLimitIssue, promptLengthNotices as enginePromptLengthNotices, type MaskPreset, type VideoFormat } from '../engine/index.ts';
import { DEFAULT_MODEL_ID, ID_CHARACTERS } from '../config/index.ts';
import { JOB_KINDS, type JobKind } from '../db/schema.ts';
import { DEFAULT_UPSCALE_FACTOR, FIXED_SCALE_UPSCALERS, IMAGE_LIMITS, JOB_VIDEO_FORMATS, LIMITS, type Range, UPSCALE_FACTORS, upscalerMakes } from './limits.ts';
import { unstorableTextIssue } from './text.ts';

export interface JobParams {
  /**
   * blend: exactly 2; movie/reroll/upscale: 2..16. extend: only the new prompts, which continue
   * the parent's movie (parentJobId); the whole movie has 16 at most (see follow-up.ts).
   */
  prompts: string[];
  negativePrompt: string;
  /** One seed per prompt (0..LIMITS.seed.max); missing seeds are drawn at submission so results are reproducible. */
  seeds: number[];
  /** Seconds of video per transition. */
  durationSeconds: number;
  fps: number;
  width: number;
  height: number;
  steps: number;
  /** Branch budget per transition (engine `maxBranches`); more branches, smoother transitions. */
  maxBranches: number;
  /** How deep in the diffusion the branches split off (engine `depthStrength`). */
  depthStrength: number;
  /** Classifier-free guidance scale; undefined lets the engine pick the model's default. */
  guidance?: number;
  /** Model id known to workers (a worker only claims jobs whose model it advertises). */
  model: string;
  /** One of JOB_VIDEO_FORMATS. */
  format: VideoFormat;
  /** upscale only (default DEFAULT_UPSCALE_FACTOR, 4): output is width*factor x height*factor, i.e. factor² the pixels. */
  upscaleFactor?: (typeof UPSCALE_FACTORS)[number];
  /**
   * upscale only: the upscaler a worker must use (an id workers advertise: esrgan-slim, esrgan-medium,
   * esrgan-thick, x4-diffusion); unset: the best the claiming worker has for the factor.
   */
  upscaler?: string;
  /** Largest acceptable video file (a front end's upload limit); the encoder aims below it. */
  maxBytes?: number;
  /**
   * Users' pictures as transition ends (blend, movie, reroll): at most one per prompt (0-based
   * `index`), re-rendered under that prompt at `strength` (LIMITS.imageStrength). The picture itself
   * is the job's stored input `image-<index + 1>` (inputNames).
   */
  images?: JobImage[];
  /**
   * Inpainting transition (needs an inpainting model): the picture (input `inpaint-image`) stays as
   * it is outside the mask; inside, it changes from prompt to prompt. The mask is a preset or
   * "picture": input `inpaint-mask`, white = change.
   */
  inpaint?: { mask: MaskPreset | 'picture' };
  /** vary only: a variation animation of input `start-image` (frames: variationFrames). */
  variation?: { variations: number; intermediate: number; noiseShift: number };
  /**
   * extend only, set by submitJob from the movie the job continues (never given by a front end:
   * parseJobParams refuses it): that movie has pictures (Movie.images), from which the renderer
   * re-renders its last keyframe, so the job needs a model that takes pictures (modelAbilityFor).
   */
  movieHasPictures?: true;
}

export interface JobImage {
  index: number;
  strength: number;
}

/** The engine's img2img default and mask presets, which the job parameters use as they are. */
export { DEFAULT_IMAGE_STRENGTH, MASK_PRESETS, type MaskPreset };

/** What a job needs of a model (WorkerCapabilities.modelAbilities), from its kind and parameters. */
export const MODEL_ABILITIES = ['text', 'picture', 'inpaint', 'variation'] as const;
export type ModelAbility = (typeof MODEL_ABILITIES)[number];

/**
 * text: text-to-video transitions; picture: transitions that start or end at a picture (a model
 * with a VAE encoder), and extensions of a movie that does (movieHasPictures); inpaint: inpainting transitions (an inpainting UNet); variation: variation
 * animations (an image-variation model). Upscale jobs need an upscaler instead (worker-registry.ts).
 */
export function modelAbilityFor(kind: JobKind, params: Pick<JobParams, 'images' | 'inpaint' | 'movieHasPictures'>): ModelAbility {
  if (kind === 'vary') return 'variation';
  if (params.inpaint) return 'inpaint';
  if (params.images?.length || params.movieHasPictures) return 'picture';
  return 'text';
}

/**
 * The model a job uses when it names none: DEFAULT_MODEL_ID, the id a worker gives its main model
 * (BLENDFARM_MODEL_DIR, or the built-in demo model) unless BLENDFARM_MODEL_ID says otherwise; or
 * the id workers give their inpainting / variation model.
 */
export const DEFAULT_MODELS: Readonly<Record<ModelAbility, string>> = { text: DEFAULT_MODEL_ID, picture: DEFAULT_MODEL_ID, inpaint: 'inpaint', variation: 'variation' };

/** Default animation of a vary job: 8 generations of 4 frames, 33 frames (under 3 s at 12 fps). */
export const DEFAULT_VARIATION = { variations: 8, intermediate: 4, noiseShift: 0.4 } as const;

export const QUALITY_PRESETS = {
  draft: { steps: 4, maxBranches: 8 },
  standard: { steps: 20, maxBranches: 24 },
  high: { steps: 30, maxBranches: 48 },
  max: { steps: 50, maxBranches: 96 },
} as const satisfies Record<string, { steps: number; maxBranches: number }>;
export type QualityPreset = keyof typeof QUALITY_PRESETS;
/** The preset of a job that names neither `quality` nor `steps` (DEFAULT_PARAMS). */
export const DEFAULT_QUALITY = 'standard' satisfies QualityPreset;

/**
 * The steps of each quality preset on a few-step distilled ("turbo") model, whose family (the
 * engine's ModelFamily, read from the model's folder) the workers advertise
 * (WorkerCapabilities.modelFamilies); branches stay QUALITY_PRESETS'. Such a model is made for 1 to
 * 4 steps (guidance 0, the engine's family default): 20 would cost 5x the time for no better
 * picture. standard, high and max: 4, the reference latent blending's sdxl-turbo setting
 * (lunarring/latentblending BlendingEngine.set_num_inference_steps) and the engine's sdxl-turbo
 * default, which gives the blending tree injection depths 2 and 3 to branch at; more steps are
 * past what the model was distilled for, so the better presets buy smoothness with their branches.
 * draft: MIN_BLEND_STEPS (2, also the engine's sd-turbo default), the fewest latent blending can
 * branch between (1 step leaves no depth to inject at: the engine refuses it).
 */
const TURBO_PRESET_STEPS = { draft: MIN_BLEND_STEPS, standard: 4, high: 4, max: 4 } as const satisfies Record<QualityPreset, number>;
/**
 * What workers advertise for an LCM-distilled model (a UNet with time_cond_proj_dim, of any base
 * family) in place of its family: its presets are LCM's, not its base family's.
 */
export const LCM_PRESET_FAMILY = 'lcm';
/** A model's family as workers advertise it for its presets (WorkerCapabilities.modelFamilies). */
export type PresetFamily = ModelFamily | typeof LCM_PRESET_FAMILY;
/**
 * An LCM-distilled model's presets: LCM samples well from 2 to 8 steps (the engine's LCM default, and
 * diffusers' LCM pipeline's, is 4); unlike a turbo model's, more steps still add detail up to 8, so
 * high and max buy some.
 */
const LCM_PRESET_STEPS = { draft: MIN_BLEND_STEPS, standard: 4, high: 6, max: 8 } as const satisfies Record<QualityPreset, number>;
export const FAMILY_PRESET_STEPS: Readonly<Partial<Record<PresetFamily, Readonly<Record<QualityPreset, number>>>>> = {
  'sd-turbo': TURBO_PRESET_STEPS,
  'sdxl-turbo': TURBO_PRESET_STEPS,
  [LCM_PRESET_FAMILY]: LCM_PRESET_STEPS,
};

export const DEFAULT_PARAMS = {
  negativePrompt: '',
  durationSeconds: 4,
  fps: 12,
  width: 512,
  height: 512,
  ...QUALITY_PRESETS[DEFAULT_QUALITY],
  depthStrength: 0.5,
  model: DEFAULT_MODELS.text,
  format: 'mp4',
} as const satisfies Partial<JobParams>;

/**
 * What is wrong with a model or upscaler id, as the end of "must be a ... id of ...", or undefined
 * when it is fine: `range` characters (LIMITS.modelId, LIMITS.upscalerId), letters, digits, ".", "_"
 * and "-" only. An id too long is told its length, not echoed.
 */
function idIssue(id: unknown, range: Range, example = ''): string | undefined {
  const rule = `${range.min} to ${range.max} letters, digits, ".", "_" or "-"${example}`;
  if (typeof id !== 'string') return `${rule} (got ${JSON.stringify(id)})`;
  if (id.length > range.max) return `${rule} (got ${id.length} characters)`;
  if (id.length < range.min || !ID_CHARACTERS.test(id)) return `${rule} (got ${JSON.stringify(id)})`;
  return undefined;
}

/**
 * What is wrong with a model id a job names, as parseJobParams says it ("model must be a model id of
 * 1 to 100 letters, ..."); undefined when it is fine. For front ends that take a model id before a
 * job exists (a server's default model).
 */
export function modelIdIssue(id: unknown): string | undefined {
  const issue = idIssue(id, LIMITS.modelId);
  return issue === undefined ? undefined : `model must be a model id of ${issue}`;
}

/**
 * The quality preset whose steps a job's input (as given to parseJobParams) leaves to the farm: its
 * `quality`, or DEFAULT_QUALITY when it names none; undefined when it gives `steps` (kept as given),
 * names no known preset, or is not an object.
 */
export function stepsPresetOf(input: unknown): QualityPreset | undefined {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return undefined;
  const fields = input as Record<string, unknown>;
  if (Object.hasOwn(fields, 'steps') && fields.steps !== undefined) return undefined;
  const quality = Object.hasOwn(fields, 'quality') ? fields.quality : undefined;
  if (quality === undefined) return DEFAULT_QUALITY;
  return typeof quality === 'string' && Object.hasOwn(QUALITY_PRESETS, quality) ? (quality as QualityPreset) : undefined;
}

/**
 * A job's parameters (parseJobParams of `input`) with its quality preset's steps for the model's
 * family (FAMILY_PRESET_STEPS): `families` holds the family each worker able to run the job
 * advertises for its model (undefined: none advertised). Only when the input left the steps to a
 * preset (stepsPresetOf), at least one worker is given, and every one's family has a table giving
 * the same steps; otherwise `params` as they are (QUALITY_PRESETS' steps). Upscale jobs render no
 * diffusion: unchanged. Pure: submission (jobs.ts) reads the workers and stores the result, so the
 * worker renders those steps, the reservation prices them, and follow-ups, which copy the steps,
 * keep them.
 */
export function withFamilyPresetSteps(kind: JobKind, input: unknown, params: JobParams, families: ReadonlyArray<string | undefined>): JobParams {
  const preset = stepsPresetOf(input);
  if (kind === 'upscale' || preset === undefined || families.length === 0) return params;
  const steps = new Set(families.map((f) => (f !== undefined && Object.hasOwn(FAMILY_PRESET_STEPS, f) ? FAMILY_PRESET_STEPS[f as PresetFamily]![preset] : undefined)));
  const [only] = steps;
  return steps.size === 1 && only !== undefined && only !== params.steps ? { ...params, steps: only } : params;
}

export class JobParamsError extends Error {
  readonly issues: string[];
  constructor(issues: string[]) {
    super(`Invalid job parameters: ${issues.join('; ')}.`);
    this.name = 'JobParamsError';
    this.issues = issues;
  }
}

/**
 * Input as a front end would send it: any subset, a quality preset name, and seeds where null
 * means "pick one".
 */
export type JobParamsInput = Partial<Omit<JobParams, 'seeds' | 'images' | 'variation'>> & {
  seeds?: Array<number | null>;
  quality?: QualityPreset;
  /** strength: default DEFAULT_IMAGE_STRENGTH. */
  images?: Array<{ index: number; strength?: number }>;
  variation?: Partial<NonNullable<JobParams['variation']>>;
};

export function isJobKind(value: unknown): value is JobKind {
  return typeof value === 'string' && (JOB_KINDS as readonly string[]).includes(value);
}

/** How many prompts a job of `kind` lists in its own parameters. */
function promptCountRule(kind: JobKind): { min: number; max: number; text: string } {
  const { min, max } = LIMITS.prompts;
  if (kind === 'blend') return { min: 2, max: 2, text: 'a blend needs exactly 2 prompts' };
  // An extension's own prompts follow at least the `min` prompts of the movie it extends.
  if (kind === 'extend') return { min: 1, max: max - min, text: `an extension needs 1 to ${max - min} new prompts` };
  if (kind === 'upscale') return { min, max, text: `an upscale needs the source's ${min} to ${max} prompts` };
  if (kind === 'vary') return { min: LIMITS.guidancePrompts.min, max: LIMITS.guidancePrompts.max, text: `a variation animation takes at most ${LIMITS.guidancePrompts.max} guidance prompts` };
  return { min, max, text: `a ${kind} needs ${min} to ${max} prompts` };
}

/**
 * The one range check: undefined when `value` is in `range`, else the issue, naming the field,
 * the range and the value, e.g. "width must be an integer that is a multiple of 8 between 64 and
 * 2048 (got 500)".
 */
function rangeIssue(field: string, value: unknown, range: Range): string | undefined {
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    value >= range.min &&
    value <= range.max &&
    (!range.integer || Number.isInteger(value)) &&
    (!range.multipleOf || value % range.multipleOf === 0);
  if (ok) return undefined;
  const what = `${range.integer ? 'an integer' : 'a number'}${range.multipleOf ? ` that is a multiple of ${range.multipleOf}` : ''}`;
  return `${field} must be ${what} between ${range.min} and ${range.max} (got ${JSON.stringify(value)})`;
}

const KNOWN_KEYS = new Set([...Object.keys(DEFAULT_PARAMS), 'prompts', 'seeds', 'guidance', 'upscaleFactor', 'upscaler', 'quality', 'maxBytes', 'images', 'inpaint', 'variation']);

/**
 * Validates and completes parameters for a job of `kind`. Throws JobParamsError listing every
 * problem found (e.g. "width must be an integer that is a multiple of 8 between 64 and 2048 (got 500)").
 */
export function parseJobParams(kind: JobKind, input: unknown): JobParams {
  if (!isJobKind(kind)) throw new JobParamsError([`kind must be one of ${JOB_KINDS.join(', ')} (got ${String(kind)})`]);
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new JobParamsError(['parameters must be an object']);
  }
  // Own keys only: nothing is read through the prototype chain (a "__proto__" key, or an object
  // made with another prototype, cannot smuggle values in).
  const raw: Record<string, unknown> = Object.create(null);
  const issues: string[] = [];
  for (const key of Object.keys(input)) {
    if (KNOWN_KEYS.has(key)) raw[key] = (input as Record<string, unknown>)[key];
    else issues.push(`unknown parameter ${JSON.stringify(key)}`);
  }
  if (Object.getPrototypeOf(input) !== Object.prototype && Object.getPrototypeOf(input) !== null) issues.push('parameters must be a plain object');

  let preset: { steps: number; maxBranches: number } | undefined;
  if (raw.quality !== undefined) {
    if (typeof raw.quality === 'string' && Object.hasOwn(QUALITY_PRESETS, raw.quality)) preset = QUALITY_PRESETS[raw.quality as QualityPreset];
    else issues.push(`quality must be one of ${Object.keys(QUALITY_PRESETS).join(', ')} (got ${JSON.stringify(raw.quality)})`);
  }

  const prompts = readPrompts(kind, raw.prompts, issues);
  const negativePrompt = readText(raw.negativePrompt ?? DEFAULT_PARAMS.negativePrompt, 'negativePrompt', issues, { allowEmpty: true });

  const num = (key: keyof JobParams, fallback: number, range: Range): number => {
    const value = raw[key] ?? fallback;
    const issue = rangeIssue(key, value, range);
    if (issue) issues.push(issue);
    return value as number;
  };

  const durationSeconds = num('durationSeconds', DEFAULT_PARAMS.durationSeconds, LIMITS.durationSeconds);
  const fps = num('fps', DEFAULT_PARAMS.fps, LIMITS.fps);
  const width = num('width', DEFAULT_PARAMS.width, LIMITS.side);
  const height = num('height', DEFAULT_PARAMS.height, LIMITS.side);
  const steps = num('steps', preset?.steps ?? DEFAULT_PARAMS.steps, LIMITS.steps);
  const maxBranches = num('maxBranches', preset?.maxBranches ?? DEFAULT_PARAMS.maxBranches, LIMITS.maxBranches);
  const depthStrength = num('depthStrength', DEFAULT_PARAMS.depthStrength, LIMITS.depthStrength);
  const guidance = raw.guidance === undefined ? undefined : num('guidance', 0, LIMITS.guidance);
  const maxBytes = raw.maxBytes === undefined ? undefined : num('maxBytes', 0, LIMITS.maxBytes);

  const images = readImages(kind, raw.images, prompts.length, issues);
  const inpaint = readInpaint(kind, raw.inpaint, issues);
  const variation = readVariation(kind, raw.variation, issues);
  const model = readText(raw.model ?? DEFAULT_MODELS[modelAbilityFor(kind, { images, inpaint })], 'model', issues, { allowEmpty: false });
  const modelIssue = model === undefined ? undefined : modelIdIssue(model);
  if (modelIssue) issues.push(modelIssue);

  const format = raw.format ?? DEFAULT_PARAMS.format;
  if (!(JOB_VIDEO_FORMATS as readonly unknown[]).includes(format)) issues.push(`format must be one of ${JOB_VIDEO_FORMATS.join(', ')} (got ${JSON.stringify(format)})`);

  let upscaleFactor: JobParams['upscaleFactor'];
  if (kind === 'upscale') {
    const factor = raw.upscaleFactor ?? DEFAULT_UPSCALE_FACTOR;
    if ((UPSCALE_FACTORS as readonly unknown[]).includes(factor)) upscaleFactor = factor as JobParams['upscaleFactor'];
    else issues.push(`upscaleFactor must be one of ${UPSCALE_FACTORS.join(', ')} (got ${JSON.stringify(factor)})`);
  } else if (raw.upscaleFactor !== undefined) {
    issues.push(`upscaleFactor only applies to upscale jobs`);
  }
  let upscaler: string | undefined;
  if (raw.upscaler !== undefined && kind !== 'upscale') issues.push('upscaler only applies to upscale jobs');
  else if (raw.upscaler !== undefined) {
    const upscalerIssue = idIssue(raw.upscaler, LIMITS.upscalerId, ' such as esrgan-slim');
    if (upscalerIssue || typeof raw.upscaler !== 'string') {
      issues.push(`upscaler must be an upscaler id of ${upscalerIssue}`);
    } else if (upscaleFactor && !upscalerMakes(raw.upscaler, upscaleFactor)) {
      const only = FIXED_SCALE_UPSCALERS[raw.upscaler as keyof typeof FIXED_SCALE_UPSCALERS];
      issues.push(`upscaler ${raw.upscaler} cannot make ${upscaleFactor}x (it upscales ${only}x only); ask for upscaleFactor ${only} or another upscaler`);
    } else upscaler = raw.upscaler;
  }

  const seeds = readSeeds(raw.seeds, seedCount(kind, prompts), issues);

  // The whole upscaled video, once its numbers are known to be good (an upscale lists the whole movie's prompts).
  if (issues.length === 0 && upscaleFactor) {
    const tooBig = upscaleSizeIssue({ prompts, durationSeconds, fps, width, height, upscaleFactor, upscaler });
    if (tooBig) issues.push(tooBig);
  }
  if (issues.length > 0) throw new JobParamsError(issues);
  const params: JobParams = { prompts, negativePrompt, seeds, durationSeconds, fps, width, height, steps, maxBranches, depthStrength, model, format: format as VideoFormat };
  if (guidance !== undefined) params.guidance = guidance;
  if (upscaleFactor) params.upscaleFactor = upscaleFactor;
  if (upscaler) params.upscaler = upscaler;
  if (maxBytes !== undefined) params.maxBytes = maxBytes;
  if (images) params.images = images;
  if (inpaint) params.inpaint = inpaint;
  if (variation) params.variation = variation;
  return params;
}

/**
 * A stored job's parameters (jobs.params, as parseJobParams made them) checked again by
 * parseJobParams, under the rules a submission passes now: retryJob queues nothing a submission
 * would refuse, so a row stored before a rule existed is refused with the JobParamsError (the
 * same words) the submission would get. For a row that passed, the result equals `stored`:
 * parseJobParams stores every default it fills in and every seed it draws, trimmed text, sorted
 * pictures, so reading its own output changes nothing. movieHasPictures, which submitJob derives
 * for an extension from the movie it continues and which a request may not give (parseJobParams
 * refuses it), is kept for an extension and dropped elsewhere (it means nothing there).
 */
export function recheckStoredParams(kind: JobKind, stored: unknown): JobParams {
  if (typeof stored !== 'object' || stored === null || Array.isArray(stored)) return parseJobParams(kind, stored);
  const { movieHasPictures, ...request } = stored as Partial<JobParams>;
  const params = parseJobParams(kind, request);
  if (kind === 'extend' && movieHasPictures === true) params.movieHasPictures = true;
  return params;
}

/**
 * Trimmed text; empty (unless allowed), over-long text and text Postgres cannot store (NUL, lone
 * surrogates: text.ts) are the issues (LIMITS.promptLength).
 */
function readText(value: unknown, key: string, issues: string[], options: { allowEmpty: boolean }): string {
  if (typeof value !== 'string') {
    issues.push(`${key} must be text (got ${JSON.stringify(value)})`);
    return '';
  }
  const unstorable = unstorableTextIssue(key, value);
  if (unstorable) {
    issues.push(unstorable);
    return '';
  }
  const trimmed = value.trim();
  const { min, max } = LIMITS.promptLength;
  if (!options.allowEmpty && trimmed.length < min) issues.push(`${key} must not be empty`);
  if (trimmed.length > max) issues.push(`${key} must be at most ${max} characters (got ${trimmed.length})`);
  return trimmed;
}

function readPrompts(kind: JobKind, value: unknown, issues: string[]): string[] {
  const rule = promptCountRule(kind);
  if (!Array.isArray(value)) {
    issues.push(`prompts must be a list of text (${rule.text})`);
    return [];
  }
  if (value.length < rule.min || value.length > rule.max) issues.push(`${rule.text} (got ${value.length})`);
  return value.map((prompt, i) => readText(prompt, `prompt ${i + 1}`, issues, { allowEmpty: false }));
}

function readSeeds(value: unknown, count: number, issues: string[]): number[] {
  if (value === undefined) return Array.from({ length: count }, () => drawSeed());
  if (!Array.isArray(value) || value.length !== count) {
    issues.push(`seeds must be a list with one seed per prompt (${count})`);
    return [];
  }
  return value.map((seed, i) => {
    if (seed === null || seed === undefined) return drawSeed();
    const issue = rangeIssue(`seed ${i + 1}`, seed, LIMITS.seed);
    if (issue) issues.push(issue);
    return seed as number;
  });
}

/**
 * Frames of the video a movie with these parameters makes, at most, by the engine's rule
 * (maxTransitionFrames: durationSeconds x fps per transition rounded up, at least two; the engine
 * rounds a job's movie once, so it writes as many or fewer, also when the movie was made by an
 * extension of an earlier job), one transition per pair of prompts. An upscale job's parameters list
 * the prompts of the whole movie it upscales (followUpParams, from parentMovieParams: an extended
 * movie's included), so for an upscale these are the frames of the video it upscales. The price
 * (policy/cost.ts) counts frames the same way.
 */
export function movieFrames(params: Pick<JobParams, 'prompts' | 'durationSeconds' | 'fps'>, moviePrompts = params.prompts.length): number {
  return Math.max(1, moviePrompts - 1) * maxTransitionFrames(params.fps, params.durationSeconds);
}

/**
 * The factor an upscale asked for without one gets (the bot's Upscale button and 🔍): the largest
 * of UPSCALE_FACTORS up to DEFAULT_UPSCALE_FACTOR that keeps the whole video within
 * MAX_UPSCALED_VIDEO_PIXELS (upscaleSizeIssue) and that `upscaler`, when named, makes; when none
 * does, DEFAULT_UPSCALE_FACTOR, which submission then refuses saying why.
 */
export function defaultUpscaleFactor(params: Pick<JobParams, 'prompts' | 'durationSeconds' | 'fps' | 'width' | 'height'>, upscaler?: string): (typeof UPSCALE_FACTORS)[number] {
  const fits = [...UPSCALE_FACTORS]
    .reverse()
    .find((f) => f <= DEFAULT_UPSCALE_FACTOR && (upscaler === undefined || upscalerMakes(upscaler, f)) && upscaleSizeIssue({ ...params, upscaler, upscaleFactor: f }) === undefined);
  return fits ?? DEFAULT_UPSCALE_FACTOR;
}

/** Gigapixels as the upscale refusal writes them: one decimal, more where one would read as the limit itself. */
function gigapixelsText(pixels: number): string {
  let digits = 1;
  while (digits < 3 && pixels !== MAX_UPSCALED_VIDEO_PIXELS && (pixels / 1e9).toFixed(digits) === (MAX_UPSCALED_VIDEO_PIXELS / 1e9).toFixed(digits)) digits++;
  return (pixels / 1e9).toFixed(digits);
}

/**
 * Why an upscale job cannot be queued for its size, or undefined when it can: its whole output
 * (movieFrames x the upscaled frame's pixels) more than the engine's MAX_UPSCALED_VIDEO_PIXELS
 * (the upscaler's work, and the frames the engine's decoder reads, grow with it: such a job would
 * fail on the worker after the upscaler loads, or run for hours). Names the largest factor that
 * fits when a smaller one does (and that the named upscaler cannot make it, if so), else what to
 * shorten. parseJobParams applies it to every upscale job submitted (submitJob: a new one, and a
 * follow-up, which submitFollowUp submits through it) and retried (retryJob, through
 * recheckStoredParams: a row stored before the rule existed is refused too).
 */
export function upscaleSizeIssue(params: Pick<JobParams, 'prompts' | 'durationSeconds' | 'fps' | 'width' | 'height' | 'upscaler'> & { upscaleFactor: number }): string | undefined {
  const frames = movieFrames(params);
  const total = (factor: number) => frames * params.width * factor * params.height * factor;
  const factor = params.upscaleFactor;
  if (total(factor) <= MAX_UPSCALED_VIDEO_PIXELS) return undefined;
  const transitions = Math.max(1, params.prompts.length - 1);
  const frame = (f: number) => `${params.width * f}x${params.height * f}`;
  const what =
    `this video upscaled ${factor}x would be ${frames} frames of ${frame(factor)} (${transitions} transition${transitions === 1 ? '' : 's'} of ${params.durationSeconds} s at ${params.fps} fps), ` +
    `${gigapixelsText(total(factor))} gigapixels in all, more than the farm's ${MAX_UPSCALED_VIDEO_PIXELS / 1e9}-gigapixel limit for an upscaled video`;
  const fits = [...UPSCALE_FACTORS].reverse().find((f) => f < factor && total(f) <= MAX_UPSCALED_VIDEO_PIXELS);
  if (fits !== undefined) {
    const other = params.upscaler !== undefined && !upscalerMakes(params.upscaler, fits) ? ` with another upscaler (${params.upscaler} makes ${FIXED_SCALE_UPSCALERS[params.upscaler]}x only)` : '';
    return `${what}; ${fits}x fits (${gigapixelsText(total(fits))} gigapixels): upscale it ${fits}x${other} instead`;
  }
  const smallest = UPSCALE_FACTORS[0];
  const fitFrames = Math.floor(MAX_UPSCALED_VIDEO_PIXELS / (params.width * smallest * params.height * smallest));
  const even = factor === smallest ? '' : `, and even ${smallest}x would be ${gigapixelsText(total(smallest))} gigapixels`;
  return `${what}${even}; at ${smallest}x at most ${fitFrames} frames of ${params.width}x${params.height} fit: upscale a shorter movie (fewer prompts, seconds per transition or fps) or a smaller one`;
}

/** Output frame size in pixels; what a worker's maxPixels is compared against. */
export function outputPixels(params: JobParams): number {
  const factor = params.upscaleFactor ?? 1;
  return params.width * factor * params.height * factor;
}

/** An object's own keys, or an issue; unknown keys are issues too (strict, like the top level). */
function ownFields(value: unknown, what: string, known: readonly string[], issues: string[]): Record<string, unknown> | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null)) {
    issues.push(`${what} must be an object`);
    return undefined;
  }
  const out: Record<string, unknown> = Object.create(null);
  for (const key of Object.keys(value)) {
    if (known.includes(key)) out[key] = (value as Record<string, unknown>)[key];
    else issues.push(`unknown parameter ${JSON.stringify(key)} in ${what}`);
  }
  return out;
}

const PICTURE_KINDS: readonly JobKind[] = ['blend', 'movie', 'reroll'];

function readImages(kind: JobKind, value: unknown, promptCount: number, issues: string[]): JobImage[] | undefined {
  if (value === undefined) return undefined;
  if (!PICTURE_KINDS.includes(kind)) {
    issues.push(`images (pictures as transition ends) apply to blends and movies, not to ${kind} jobs`);
    return undefined;
  }
  if (!Array.isArray(value) || value.length === 0 || value.length > promptCount) {
    issues.push(`images must be a list of 1 to ${promptCount} pictures, one per prompt at most`);
    return undefined;
  }
  const seen = new Set<number>();
  const images: JobImage[] = [];
  value.forEach((entry, i) => {
    const fields = ownFields(entry, `images[${i}]`, ['index', 'strength'], issues);
    if (!fields) return;
    const indexIssue = rangeIssue(`images[${i}].index`, fields.index, { min: 0, max: Math.max(0, promptCount - 1), integer: true });
    if (indexIssue) issues.push(`${indexIssue}: the 0-based number of the prompt the picture belongs to`);
    else if (seen.has(fields.index as number)) issues.push(`prompt ${(fields.index as number) + 1} has two pictures; give at most one per prompt`);
    const strength = fields.strength ?? DEFAULT_IMAGE_STRENGTH;
    const strengthIssue = rangeIssue('strength', strength, LIMITS.imageStrength);
    if (strengthIssue) issues.push(strengthIssue);
    if (!indexIssue && !strengthIssue) {
      seen.add(fields.index as number);
      images.push({ index: fields.index as number, strength: strength as number });
    }
  });
  return images.sort((a, b) => a.index - b.index);
}

function readInpaint(kind: JobKind, value: unknown, issues: string[]): JobParams['inpaint'] {
  if (value === undefined) return undefined;
  if (![...PICTURE_KINDS, 'extend'].includes(kind)) {
    issues.push(`inpaint applies to blends and movies, not to ${kind} jobs`);
    return undefined;
  }
  const fields = ownFields(value, 'inpaint', ['mask'], issues);
  if (!fields) return undefined;
  const choices = [...MASK_PRESETS, 'picture'];
  if (!choices.includes(fields.mask as string)) {
    issues.push(`mask must be one of ${choices.join(', ')} (got ${JSON.stringify(fields.mask)}): a preset, or "picture" for a mask picture (white = change)`);
    return undefined;
  }
  return { mask: fields.mask as MaskPreset | 'picture' };
}

function readVariation(kind: JobKind, value: unknown, issues: string[]): JobParams['variation'] {
  if (kind !== 'vary') {
    if (value !== undefined) issues.push(`variation applies to vary jobs only`);
    return undefined;
  }
  const fields = value === undefined ? Object.create(null) : ownFields(value, 'variation', ['variations', 'intermediate', 'noiseShift'], issues);
  if (!fields) return undefined;
  const variation = {
    variations: fields.variations ?? DEFAULT_VARIATION.variations,
    intermediate: fields.intermediate ?? DEFAULT_VARIATION.intermediate,
    noiseShift: fields.noiseShift ?? DEFAULT_VARIATION.noiseShift,
  };
  const found = [
    rangeIssue('variations', variation.variations, LIMITS.variations),
    rangeIssue('intermediate', variation.intermediate, LIMITS.intermediate),
    rangeIssue('noiseShift', variation.noiseShift, LIMITS.noiseShift),
  ].filter((x) => x !== undefined);
  issues.push(...found);
  if (found.length) return undefined;
  const v = variation as NonNullable<JobParams['variation']>;
  const frames = variationFrames(v);
  if (frames > LIMITS.variationFrames.max) {
    issues.push(`variations x intermediate makes ${frames} frames (1 + ${v.variations} x ${v.intermediate}), more than ${LIMITS.variationFrames.max}; ask for fewer variations or frames per variation`);
  }
  return v;
}

/** Frames of a variation animation: the start picture, then `intermediate` frames per generation. */
export function variationFrames(variation: NonNullable<JobParams['variation']>): number {
  return 1 + variation.variations * variation.intermediate;
}

/**
 * `frames` (the whole animation, the picture included) as variations x intermediate:
 * frames per variation as close to the default as divides frames - 1 within the limits, so the
 * video has exactly the frames asked for; undefined when no such split exists (frames - 1 a prime
 * above the most variations, say).
 */
export function variationShape(frames: number): { variations: number; intermediate: number } | undefined {
  const steps = frames - 1;
  if (!Number.isInteger(frames) || frames < LIMITS.variationFrames.min || frames > LIMITS.variationFrames.max) return undefined;
  const fits = (i: number) => steps % i === 0 && steps / i >= LIMITS.variations.min && steps / i <= LIMITS.variations.max;
  const candidates = Array.from({ length: LIMITS.intermediate.max - LIMITS.intermediate.min + 1 }, (_, k) => k + LIMITS.intermediate.min).sort(
    (a, b) => Math.abs(a - DEFAULT_VARIATION.intermediate) - Math.abs(b - DEFAULT_VARIATION.intermediate) || a - b,
  );
  const intermediate = candidates.find(fits);
  return intermediate === undefined ? undefined : { variations: steps / intermediate, intermediate };
}

/** The most frames a variation animation can have that split exactly (what /vary offers): the largest count within the farm's limits that splits (variationShape). */
export const MAX_SPLITTABLE_VARIATION_FRAMES = (() => {
  for (let f = LIMITS.variationFrames.max; f > LIMITS.variationFrames.min; f--) if (variationShape(f)) return f;
  return LIMITS.variationFrames.min;
})();

/**
 * The frame count nearest `frames` that splits (variationShape), up to MAX_SPLITTABLE_VARIATION_FRAMES; of two
 * as near, the larger (they asked for at least `frames`). The count itself when it splits.
 */
export function nearestSplittableVariationFrames(frames: number): number {
  if (!Number.isFinite(frames)) return variationFrames(DEFAULT_VARIATION);
  const asked = Math.min(Math.max(Math.round(frames), LIMITS.variationFrames.min), MAX_SPLITTABLE_VARIATION_FRAMES);
  for (let d = 0; d <= MAX_SPLITTABLE_VARIATION_FRAMES; d++) {
    if (asked + d <= MAX_SPLITTABLE_VARIATION_FRAMES && variationShape(asked + d)) return asked + d;
    if (asked - d >= LIMITS.variationFrames.min && variationShape(asked - d)) return asked - d;
  }
  return MAX_SPLITTABLE_VARIATION_FRAMES; // unreachable: MAX_SPLITTABLE_VARIATION_FRAMES itself splits
}

/** Names of the pictures stored with a job (job_inputs.name), as its parameters refer to them. */
export const INPUT_NAMES = {
  /** The picture for prompt index i (0-based): image-1, image-2, ... */
  image: (index: number) => `image-${index + 1}`,
  inpaintImage: 'inpaint-image',
  inpaintMask: 'inpaint-mask',
  startImage: 'start-image',
} as const;

/** The inputs a job with these parameters needs, in a fixed order. */
export function inputNames(kind: JobKind, params: Pick<JobParams, 'images' | 'inpaint'>): string[] {
  if (kind === 'vary') return [INPUT_NAMES.startImage];
  const names = (params.images ?? []).map((img) => INPUT_NAMES.image(img.index));
  if (params.inpaint) names.push(INPUT_NAMES.inpaintImage);
  if (params.inpaint?.mask === 'picture') names.push(INPUT_NAMES.inpaintMask);
  return names;
}

/** A picture stored with a job: the file as uploaded and its type. */
export interface JobInput {
  bytes: Uint8Array;
  mime: string;
}

/**
 * What the member should hear about a transition's or movie's prompts before it renders (blend,
 * movie, reroll): each prompt certainly longer than the text encoder reads, with no model loaded
 * (the engine's promptLengthNotices). Other kinds: none. The worker's result says exactly which
 * prompts were cut (RenderResult.warnings), this one included.
 */
export function promptLengthNotices(kind: JobKind, params: Pick<JobParams, 'prompts' | 'negativePrompt'>): string[] {
  if (kind !== 'blend' && kind !== 'movie' && kind !== 'reroll') return [];
  return enginePromptLengthNotices(params.prompts, params.negativePrompt);
}

/** How many seeds a job takes: one per prompt (prompt i starts from seed i), one for a variation animation whatever its guidance prompts. */
export function seedCount(kind: JobKind, prompts: readonly string[]): number {
  return kind === 'vary' ? 1 : prompts.length;
}

/** The picture types a user may send, as MIME types (image/png, image/jpeg, image/webp). */
export const IMAGE_MIME_TYPES: readonly string[] = IMAGE_INPUT_FORMATS.map((f) => `image/${f}`);

/**
 * The cheap check a front end makes from an upload's metadata, before downloading it: the type and
 * size Discord reports, and the width and height it reports for a picture it could read (absent
 * for others). The issue, naming the input, or undefined. The bytes are checked by checkJobInputs
 * anyway (a text file named .png, or a picture whose reported size is wrong, passes this one).
 */
export function inputMetadataIssue(name: string, meta: { size: number; contentType?: string | null; width?: number | null; height?: number | null }): string | undefined {
  const type = meta.contentType?.split(';')[0].trim().toLowerCase();
  if (type && !IMAGE_MIME_TYPES.includes(type)) return `${name} is ${type}, not a picture; attach a PNG, JPEG or WebP picture`;
  if (meta.size > IMAGE_LIMITS.maxBytes) return pictureLimitIssue.bytes(name, meta.size, IMAGE_LIMITS.maxBytes);
  const { width: w, height: h } = meta;
  if (typeof w === 'number' && typeof h === 'number' && w > 0 && h > 0 && w * h > IMAGE_LIMITS.maxPixels) return pictureLimitIssue.pixels(name, w, h, IMAGE_LIMITS.maxPixels);
  return undefined;
}

/**
 * The other half of the one validator, for the pictures (async: it reads their headers): exactly the
 * inputs the parameters refer to, each a PNG, JPEG or WebP within IMAGE_LIMITS (the engine's
 * inspectImage: format from the content, byte size, decoded pixels). Throws JobParamsError naming
 * each bad input (e.g. "image-1 is not a picture that can be read; use a PNG, JPEG or WebP file").
 */
export async function checkJobInputs(kind: JobKind, params: Pick<JobParams, 'images' | 'inpaint'>, inputs: Readonly<Record<string, Uint8Array>> = {}): Promise<Record<string, JobInput>> {
  const needed = inputNames(kind, params);
  const issues: string[] = [];
  const checked: Record<string, JobInput> = {};
  for (const name of Object.keys(inputs)) if (!needed.includes(name)) issues.push(`${name} is not used by this ${kind} job; leave it out`);
  for (const name of needed) {
    const bytes = Object.hasOwn(inputs, name) ? inputs[name] : undefined;
    if (!(bytes instanceof Uint8Array)) {
      issues.push(`${name} is missing; attach a PNG, JPEG or WebP picture`);
      continue;
    }
    try {
      const { format } = await inspectImage(bytes, name, IMAGE_LIMITS);
      checked[name] = { bytes, mime: `image/${format}` };
    } catch (err) {
      if (!(err instanceof InvalidRequestError)) throw err;
      issues.push(err.message);
    }
  }
  if (issues.length) throw new JobParamsError(issues);
  return checked;
}
