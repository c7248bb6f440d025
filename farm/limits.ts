/**
 * Every limit on what a user may ask the farm to render, written once. The job-parameter parser
 * (job-params.ts) enforces them; front ends (bot options, CLI flags) import them for their own
 * option ranges and help texts and never restate a number. Each range narrows what the engine
 * accepts (engine/index.ts: MAX_SEED, VIDEO_FORMATS, MAX_MOVIE_PROMPTS and the pipeline's own
 * checks), never widens it; test/farm/limits.test.ts checks that.
 */
import { MAX_MODEL_ID_LENGTH, MAX_UPSCALER_ID_LENGTH } from '../config/index.ts';
import { IMAGE_INPUT_LIMITS, MAX_PROMPT_LENGTH, MAX_SEED, MAX_VARIATION_FRAMES, MIN_BLEND_STEPS, type VideoFormat } from '../engine/index.ts';

export interface Range {
  min: number;
  max: number;
  /** Whole numbers only. */
  integer?: boolean;
  /**
   * Must be a multiple of this. Image sides: 8, the VAE's scale factor, the floor for every model;
   * a model whose UNet downsamples the latents further needs its own multiple as well (the VAE's
   * factor times the UNet's downsampling: 64 for SD 1.5). Workers advertise it per model
   * (WorkerCapabilities.modelSizeMultiples), and the farm refuses a size no worker's model renders
   * when the job is submitted (sideMultipleFor, nearestSides below; worker-registry.ts).
   */
  multipleOf?: number;
}

export const LIMITS = {
  /** Characters in one prompt or negative prompt (the engine's MAX_PROMPT_LENGTH: CLIP reads about 300 at most anyway). */
  promptLength: { min: 1, max: MAX_PROMPT_LENGTH, integer: true },
  /** Prompts in one movie (a blend has exactly 2; an extension brings its movie to at most `max`). */
  prompts: { min: 2, max: 16, integer: true },
  /** Width and height of the rendered frames, in pixels. */
  side: { min: 64, max: 2048, integer: true, multipleOf: 8 },
  /** Seconds of video per transition. */
  durationSeconds: { min: 1, max: 30 },
  fps: { min: 1, max: 60, integer: true },
  /** Denoising steps per keyframe (latent blending needs the engine's MIN_BLEND_STEPS; one range for every kind). */
  steps: { min: MIN_BLEND_STEPS, max: 150, integer: true },
  /** Keyframes (branches) per transition. */
  maxBranches: { min: 2, max: 256, integer: true },
  /** How deep in the diffusion the branches split off (0 = at once, 1 = never). */
  depthStrength: { min: 0.05, max: 0.95 },
  /** Classifier-free guidance scale. */
  guidance: { min: 0, max: 30 },
  /** Seeds are 32-bit (the engine's whole seed range), so any seed a user sees can be typed back in. */
  seed: { min: 0, max: MAX_SEED, integer: true },
  /** Largest acceptable video file (an upload limit). */
  maxBytes: { min: 10_000, max: 2_000_000_000, integer: true },
  /**
   * How much of a user's picture is re-rendered under its prompt (img2img strength, the engine's
   * EndpointImage.strength): 0.2 keeps the picture, 0.8 keeps only its layout, 1 re-renders
   * everything (nothing of the picture is kept).
   */
  imageStrength: { min: 0.05, max: 1 },
  /** Variation animations: generations after the first variation. */
  variations: { min: 1, max: 60, integer: true },
  /** Variation animations: frames per generation, the variation included (the engine allows 1..60). */
  intermediate: { min: 1, max: 30, integer: true },
  /** Variation animations: total frames, 1 + variations x intermediate (the engine's MAX_VARIATION_FRAMES at most). */
  variationFrames: { min: 2, max: Math.min(600, MAX_VARIATION_FRAMES), integer: true },
  /** Variation animations: how far the noise moves per generation (0 the same noise, 1 fresh noise). */
  noiseShift: { min: 0, max: 1 },
  /** Variation animations: guidance prompts the variations are steered towards. */
  guidancePrompts: { min: 0, max: 4, integer: true },
  /** Characters in a model id a job names (letters, digits, ".", "_" and "-": workers' model names). */
  modelId: { min: 1, max: MAX_MODEL_ID_LENGTH, integer: true },
  /** Characters in an upscaler id an upscale job names (the same characters). */
  upscalerId: { min: 1, max: MAX_UPSCALER_ID_LENGTH, integer: true },
} as const satisfies Record<string, Range>;

/**
 * The multiple a frame's sides must have on a model whose own side multiple is `modelMultiple`
 * (WorkerCapabilities.modelSizeMultiples; undefined: none advertised): the farm's floor
 * (LIMITS.side.multipleOf) and the model's both, their least common multiple. A value that is no
 * whole number from 1 to LIMITS.side.max is ignored (the floor alone).
 */
export function sideMultipleFor(modelMultiple: number | undefined): number {
  const floor = LIMITS.side.multipleOf;
  if (modelMultiple === undefined || !Number.isInteger(modelMultiple) || modelMultiple < 1 || modelMultiple > LIMITS.side.max) return floor;
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  return (floor / gcd(floor, modelMultiple)) * modelMultiple;
}

/**
 * The sides within LIMITS.side nearest `value` that are multiples of `multiple` (sideMultipleFor's
 * result): the one below and the one above, smallest first; `value` alone when it is one. [] when
 * no side within the range is.
 */
export function nearestSides(value: number, multiple: number): number[] {
  const below = Math.floor(value / multiple) * multiple;
  const above = Math.ceil(value / multiple) * multiple;
  const within = (side: number) => side >= Math.max(LIMITS.side.min, multiple) && side <= LIMITS.side.max;
  return [...new Set([below, above])].filter(within);
}

/**
 * Pictures users send (blend endpoints, inpainting pictures and masks, variation start pictures):
 * PNG, JPEG or WebP, at most this many bytes (Discord's free upload limit) and decoded pixels (a
 * 24-megapixel photo). Narrower than the engine's IMAGE_INPUT_LIMITS, never wider.
 */
export const IMAGE_LIMITS = {
  maxBytes: Math.min(10 * 1024 * 1024, IMAGE_INPUT_LIMITS.maxBytes),
  maxPixels: Math.min(25_000_000, IMAGE_INPUT_LIMITS.maxPixels),
} as const;

/**
 * The most picture bytes one member's jobs may hold while they wait or run, or after they ended
 * without a video (until retention deletes those: BLENDFARM_RETENTION_UNRENDERED_INPUT_HOURS). A
 * cancel refunds in full, so without it submitting pictures and cancelling stored them for free.
 * Room for every active job's pictures at the default job limit (3 jobs × 4 pictures × 10 MiB) and
 * a few cancelled ones.
 */
export const MAX_HELD_PICTURE_BYTES_PER_USER = 200 * 1024 * 1024;

/**
 * The video formats a job may ask for: all the engine's (VIDEO_FORMATS). Discord shows animated
 * WebP in attachments on every platform, smaller than a GIF of the same frames and not limited to
 * 256 colours.
 */
export const JOB_VIDEO_FORMATS = ['mp4', 'webm', 'webp', 'gif'] as const satisfies readonly VideoFormat[];

/** Upscale jobs multiply each side by one of these (2: four times the pixels). */
export const UPSCALE_FACTORS = [2, 3, 4] as const;
/** What the Upscale button and the 🔍 reaction ask for. */
export const DEFAULT_UPSCALE_FACTOR = 4;

/**
 * Upscalers that make one scale only: the Stable Diffusion x4 upscaler. Every other upscaler id (the
 * super-resolution networks: esrgan-slim, esrgan-medium, esrgan-thick) makes every UPSCALE_FACTOR.
 * Workers advertise the ids they have (WorkerCapabilities.upscalers); the farm does not list them.
 */
export const FIXED_SCALE_UPSCALERS: Readonly<Record<string, number>> = { 'x4-diffusion': 4 };

/** Whether upscaler `id` can make `factor` times each side. */
export function upscalerMakes(id: string, factor: number): boolean {
  const fixed = Object.hasOwn(FIXED_SCALE_UPSCALERS, id) ? FIXED_SCALE_UPSCALERS[id] : undefined;
  return fixed === undefined ? (UPSCALE_FACTORS as readonly number[]).includes(factor) : fixed === factor;
}

/**
 * What a server's settings (/settings: refill, period, job limit, and per role) can ever be. The
 * operator's ceilings (FarmConfig.guildCeilings, guildSettingRanges below) narrow them further; front ends use
 * these for their static option ranges.
 */
export const GUILD_LIMITS = {
  /** GPU-seconds a member is topped up to each period. */
  refillGpuSeconds: { min: 0, max: 10_000_000, integer: true },
  /** Length of a refill period in seconds: a minute to a year (the bot offers whole hours). */
  refillPeriodSeconds: { min: 60, max: 365 * 86_400, integer: true },
  /** Queued + running jobs per member. */
  maxActiveJobs: { min: 1, max: 1000, integer: true },
} as const satisfies Record<string, Range>;

/**
 * The most a server admin may give with /settings, set by the operator (config/settings.ts:
 * BLENDFARM_GUILD_MAX_REFILL_GPU_SECONDS, BLENDFARM_GUILD_MIN_REFILL_PERIOD_SECONDS,
 * BLENDFARM_GUILD_MAX_ACTIVE_JOBS). Every server and role value is clamped to them, and each
 * ceiling to GUILD_LIMITS (guildSettingRanges below).
 */
export interface GuildCeilings {
  /** Highest refill (GPU-seconds per period) for a server or a role. Default 3600. */
  maxRefillGpuSeconds: number;
  /** Shortest refill period in seconds. Default 3600. */
  minRefillPeriodSeconds: number;
  /** Most queued + running jobs per member for a server or a role. Default 10. */
  maxActiveJobs: number;
}

export const DEFAULT_GUILD_CEILINGS: GuildCeilings = { maxRefillGpuSeconds: 3600, minRefillPeriodSeconds: 3600, maxActiveJobs: 10 };

export type GuildSettingName = keyof typeof GUILD_LIMITS;

/**
 * The range a server may pick from for each setting: GUILD_LIMITS narrowed by the operator's
 * ceilings. /settings stores values within it (guilds.ts) and admission applies stored values
 * within it (resolveLimits in policy/budget.ts), so values saved before a ceiling was lowered
 * never give more than the ceiling.
 */
export function guildSettingRanges(ceilings: GuildCeilings = DEFAULT_GUILD_CEILINGS): Record<GuildSettingName, Range> {
  const within = (range: Range, min: number, max: number): Range => ({ ...range, min: Math.min(Math.max(min, range.min), range.max), max: Math.max(Math.min(max, range.max), range.min) });
  return {
    refillGpuSeconds: within(GUILD_LIMITS.refillGpuSeconds, GUILD_LIMITS.refillGpuSeconds.min, ceilings.maxRefillGpuSeconds),
    refillPeriodSeconds: within(GUILD_LIMITS.refillPeriodSeconds, ceilings.minRefillPeriodSeconds, GUILD_LIMITS.refillPeriodSeconds.max),
    maxActiveJobs: within(GUILD_LIMITS.maxActiveJobs, GUILD_LIMITS.maxActiveJobs.min, ceilings.maxActiveJobs),
  };
}
