// What a job asks the renderer to make. Every entry point (bot, CLI, web) builds one of these
// through `parseJobParams`, so bad values are refused at submission with a clear message
// instead of failing on a GPU later. Stored as jsonb in jobs.params; the engine adapter maps
// the fields to engine options (names follow engine/blend/transition.ts where they overlap).
import { drawSeed } from '../engine/index.ts';
import { JOB_KINDS, type JobKind } from '../db/schema.ts';

export const VIDEO_FORMATS = ['mp4', 'webm', 'gif'] as const;
export type VideoFormat = (typeof VIDEO_FORMATS)[number];

export interface JobParams {
  /** blend: exactly 2; movie/reroll: 2..16; extend: the parent's prompts followed by the new ones (16 in all at most). */
  prompts: string[];
  negativePrompt: string;
  /** One seed per prompt (uint32); missing seeds are drawn at submission so results are reproducible. */
  seeds: number[];
  durationSeconds: number;
  fps: number;
  width: number;
  height: number;
  steps: number;
  /** Branch budget per transition (engine `maxBranches`); more branches, smoother transitions. */
  maxBranches: number;
  /** 0..1: how deep in the diffusion the branches split off (engine `depthStrength`). */
  depthStrength: number;
  /** Classifier-free guidance scale; undefined lets the engine pick the model's default. */
  guidance?: number;
  /** Model id known to workers (a worker only claims jobs whose model it advertises). */
  model: string;
  format: VideoFormat;
  /** upscale only (default 2): output is width*factor x height*factor, i.e. factor² the pixels. */
  upscaleFactor?: 2 | 4;
  /** Largest acceptable video file (a front end's upload limit); the encoder aims below it. */
  maxBytes?: number;
}

export const LIMITS = {
  maxPromptLength: 1000,
  minPrompts: 2,
  maxPrompts: 16,
  minSide: 64,
  maxSide: 2048,
  maxDurationSeconds: 120,
  maxFps: 60,
  maxSteps: 150,
  maxBranches: 256,
  maxGuidance: 30,
  minMaxBytes: 10_000,
  maxMaxBytes: 2_000_000_000,
} as const;

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

function promptCountRule(kind: JobKind): { min: number; max: number; text: string } {
  if (kind === 'blend') return { min: 2, max: 2, text: 'a blend needs exactly 2 prompts' };
  if (kind === 'upscale') return { min: 2, max: LIMITS.maxPrompts, text: `an upscale needs the source's 2 to ${LIMITS.maxPrompts} prompts` };
  return { min: LIMITS.minPrompts, max: LIMITS.maxPrompts, text: `a ${kind} needs 2 to ${LIMITS.maxPrompts} prompts` };
}

/**
 * Validates and completes parameters for a job of `kind`. Throws JobParamsError listing every
 * problem found (e.g. "width must be a multiple of 8 between 64 and 2048 (got 500)").
 */
export function parseJobParams(kind: JobKind, input: unknown): JobParams {
  if (!isJobKind(kind)) throw new JobParamsError([`kind must be one of ${JOB_KINDS.join(', ')} (got ${String(kind)})`]);
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new JobParamsError(['parameters must be an object']);
  }
  const raw = input as Record<string, unknown>;
  const issues: string[] = [];

  const known = new Set([...Object.keys(DEFAULT_PARAMS), 'prompts', 'seeds', 'guidance', 'upscaleFactor', 'quality', 'maxBytes']);
  for (const key of Object.keys(raw)) if (!known.has(key)) issues.push(`unknown parameter "${key}"`);

  let preset: { steps: number; maxBranches: number } | undefined;
  if (raw.quality !== undefined) {
    if (typeof raw.quality === 'string' && raw.quality in QUALITY_PRESETS) preset = QUALITY_PRESETS[raw.quality as QualityPreset];
    else issues.push(`quality must be one of ${Object.keys(QUALITY_PRESETS).join(', ')} (got ${JSON.stringify(raw.quality)})`);
  }

  const prompts = readPrompts(kind, raw.prompts, issues);
  const negativePrompt = readString(raw.negativePrompt ?? DEFAULT_PARAMS.negativePrompt, 'negativePrompt', issues, true);

  const num = (key: keyof JobParams, fallback: number, min: number, max: number, integer: boolean, extra?: (n: number) => boolean, extraText?: string): number => {
    const value = raw[key] ?? fallback;
    const ok = typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max && (!integer || Number.isInteger(value)) && (!extra || extra(value));
    const what = `${integer ? 'an integer' : 'a number'}${extraText ? ` ${extraText}` : ''}`;
    if (!ok) issues.push(`${key} must be ${what} between ${min} and ${max} (got ${JSON.stringify(value)})`);
    return value as number;
  };

  const durationSeconds = num('durationSeconds', DEFAULT_PARAMS.durationSeconds, 0.5, LIMITS.maxDurationSeconds, false);
  const fps = num('fps', DEFAULT_PARAMS.fps, 1, LIMITS.maxFps, true);
  const multipleOf8 = (n: number) => n % 8 === 0;
  const width = num('width', DEFAULT_PARAMS.width, LIMITS.minSide, LIMITS.maxSide, true, multipleOf8, 'that is a multiple of 8');
  const height = num('height', DEFAULT_PARAMS.height, LIMITS.minSide, LIMITS.maxSide, true, multipleOf8, 'that is a multiple of 8');
  const steps = num('steps', preset?.steps ?? DEFAULT_PARAMS.steps, 1, LIMITS.maxSteps, true);
  const maxBranches = num('maxBranches', preset?.maxBranches ?? DEFAULT_PARAMS.maxBranches, 1, LIMITS.maxBranches, true);
  const depthStrength = num('depthStrength', DEFAULT_PARAMS.depthStrength, 0, 1, false);
  const guidance = raw.guidance === undefined ? undefined : num('guidance', 0, 0, LIMITS.maxGuidance, false);
  const maxBytes = raw.maxBytes === undefined ? undefined : num('maxBytes', 0, LIMITS.minMaxBytes, LIMITS.maxMaxBytes, true);

  const model = readString(raw.model ?? DEFAULT_PARAMS.model, 'model', issues, false);
  if (model && !/^[A-Za-z0-9._-]{1,100}$/.test(model)) issues.push(`model must be a model id of letters, digits, ".", "_" or "-" (got ${JSON.stringify(model)})`);

  const format = raw.format ?? DEFAULT_PARAMS.format;
  if (!(VIDEO_FORMATS as readonly unknown[]).includes(format)) issues.push(`format must be one of ${VIDEO_FORMATS.join(', ')} (got ${JSON.stringify(format)})`);

  let upscaleFactor: 2 | 4 | undefined;
  if (kind === 'upscale') {
    const factor = raw.upscaleFactor ?? 2;
    if (factor === 2 || factor === 4) upscaleFactor = factor;
    else issues.push(`upscaleFactor must be 2 or 4 (got ${JSON.stringify(factor)})`);
  } else if (raw.upscaleFactor !== undefined) {
    issues.push(`upscaleFactor only applies to upscale jobs`);
  }
  if (upscaleFactor && Number.isInteger(width) && Number.isInteger(height) && Math.max(width, height) * upscaleFactor > LIMITS.maxSide * 4) {
    issues.push(`an upscaled side may be at most ${LIMITS.maxSide * 4} pixels (got ${Math.max(width, height) * upscaleFactor})`);
  }

  const seeds = readSeeds(raw.seeds, prompts.length, issues);

  if (issues.length > 0) throw new JobParamsError(issues);
  const params: JobParams = { prompts, negativePrompt, seeds, durationSeconds, fps, width, height, steps, maxBranches, depthStrength, model, format: format as VideoFormat };
  if (guidance !== undefined) params.guidance = guidance;
  if (upscaleFactor) params.upscaleFactor = upscaleFactor;
  if (maxBytes !== undefined) params.maxBytes = maxBytes;
  return params;
}

function readString(value: unknown, key: string, issues: string[], allowEmpty: boolean): string {
  if (typeof value !== 'string') {
    issues.push(`${key} must be text (got ${JSON.stringify(value)})`);
    return '';
  }
  const trimmed = value.trim();
  if (!allowEmpty && trimmed.length === 0) issues.push(`${key} must not be empty`);
  if (trimmed.length > LIMITS.maxPromptLength) issues.push(`${key} must be at most ${LIMITS.maxPromptLength} characters (got ${trimmed.length})`);
  return trimmed;
}

function readPrompts(kind: JobKind, value: unknown, issues: string[]): string[] {
  const rule = promptCountRule(kind);
  if (!Array.isArray(value)) {
    issues.push(`prompts must be a list of text (${rule.text})`);
    return [];
  }
  if (value.length < rule.min || value.length > rule.max) issues.push(`${rule.text} (got ${value.length})`);
  return value.map((prompt, i) => readString(prompt, `prompt ${i + 1}`, issues, false));
}

function readSeeds(value: unknown, count: number, issues: string[]): number[] {
  if (value === undefined) return Array.from({ length: count }, () => randomSeed());
  if (!Array.isArray(value) || value.length !== count) {
    issues.push(`seeds must be a list with one seed per prompt (${count})`);
    return [];
  }
  return value.map((seed, i) => {
    if (seed === null || seed === undefined) return randomSeed();
    if (!Number.isInteger(seed) || (seed as number) < 0 || (seed as number) > MAX_JOB_SEED) {
      issues.push(`seed ${i + 1} must be an integer between 0 and ${MAX_JOB_SEED} (got ${JSON.stringify(seed)})`);
    }
    return seed as number;
  });
}

/** Seeds are 32-bit, so any seed a user sees can be typed back into /blend. */
export const MAX_JOB_SEED = 0xffffffff;

export function randomSeed(): number {
  return drawSeed();
}

/** Output frame size in pixels; what a worker's maxPixels is compared against. */
export function outputPixels(params: JobParams): number {
  const factor = params.upscaleFactor ?? 1;
  return params.width * factor * params.height * factor;
}
