// What a job asks the renderer to make: the one request schema. Every entry point (bot, CLI, web)
// builds its input from its own options and hands it to `parseJobParams`, the only place user input
// is validated, against the limits table in limits.ts; bad values are refused at submission with a
// clear message instead of failing on a GPU later. Stored as jsonb in jobs.params; the engine
// adapter (apps/worker/engine-renderer.ts) renames the fields into the engine's RenderRequest.
import { drawSeed, type VideoFormat } from '../engine/index.ts';
import { JOB_KINDS, type JobKind } from '../db/schema.ts';
import { DEFAULT_UPSCALE_FACTOR, FIXED_SCALE_UPSCALERS, JOB_VIDEO_FORMATS, LIMITS, type Range, UPSCALE_FACTORS, upscalerMakes } from './limits.ts';
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
}

export const QUALITY_PRESETS = {
  draft: { steps: 4, maxBranches: 8 },
  standard: { steps: 20, maxBranches: 24 },
  high: { steps: 30, maxBranches: 48 },
  max: { steps: 50, maxBranches: 96 },
} as const satisfies Record<string, { steps: number; maxBranches: number }>;
export type QualityPreset = keyof typeof QUALITY_PRESETS;

export const DEFAULT_PARAMS = {
  negativePrompt: '',
  durationSeconds: 4,
  fps: 12,
  width: 512,
  height: 512,
  ...QUALITY_PRESETS.standard,
  depthStrength: 0.5,
  model: 'demo',
  format: 'mp4',
} as const satisfies Partial<JobParams>;

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
export type JobParamsInput = Partial<Omit<JobParams, 'seeds'>> & { seeds?: Array<number | null>; quality?: QualityPreset };

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

const KNOWN_KEYS = new Set([...Object.keys(DEFAULT_PARAMS), 'prompts', 'seeds', 'guidance', 'upscaleFactor', 'upscaler', 'quality', 'maxBytes']);

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

  const model = readText(raw.model ?? DEFAULT_PARAMS.model, 'model', issues, { allowEmpty: false });
  if (model && !/^[A-Za-z0-9._-]{1,100}$/.test(model)) issues.push(`model must be a model id of letters, digits, ".", "_" or "-" (got ${JSON.stringify(model)})`);

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
    if (typeof raw.upscaler !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(raw.upscaler)) {
      issues.push(`upscaler must be an upscaler id of letters, digits, ".", "_" or "-" such as esrgan-slim (got ${JSON.stringify(raw.upscaler)})`);
    } else if (upscaleFactor && !upscalerMakes(raw.upscaler, upscaleFactor)) {
      const only = FIXED_SCALE_UPSCALERS[raw.upscaler as keyof typeof FIXED_SCALE_UPSCALERS];
      issues.push(`upscaler ${raw.upscaler} cannot make ${upscaleFactor}x (it upscales ${only}x only); ask for upscaleFactor ${only} or another upscaler`);
    } else upscaler = raw.upscaler;
  }

  const seeds = readSeeds(raw.seeds, prompts.length, issues);

  if (issues.length > 0) throw new JobParamsError(issues);
  const params: JobParams = { prompts, negativePrompt, seeds, durationSeconds, fps, width, height, steps, maxBranches, depthStrength, model, format: format as VideoFormat };
  if (guidance !== undefined) params.guidance = guidance;
  if (upscaleFactor) params.upscaleFactor = upscaleFactor;
  if (upscaler) params.upscaler = upscaler;
  if (maxBytes !== undefined) params.maxBytes = maxBytes;
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

/** Output frame size in pixels; what a worker's maxPixels is compared against. */
export function outputPixels(params: JobParams): number {
  const factor = params.upscaleFactor ?? 1;
  return params.width * factor * params.height * factor;
}
