// The farm's public record types, and the mapping from database rows to them. Outside db/ all
// GPU time is in GPU-seconds (numbers); the database keeps integer milliseconds.
import { type SQL, sql } from 'drizzle-orm';
import type { JobKind, JobStatus } from '../db/schema.ts';
import { jobs } from '../db/schema.ts';
import type { JobInput, JobParams, ModelAbility } from './job-params.ts';
import type { Movie } from './movie.ts';

export type { JobKind, JobStatus };

/** A job in one of these will not change any more (except for its delivery bookkeeping). */
export const TERMINAL_STATUSES = ['done', 'failed', 'cancelled'] as const satisfies readonly JobStatus[];

/** How a job that ended is said after "had already": "finished", "failed", "been cancelled" (a cancel that came too late). */
export function endedText(status: JobStatus): string {
  return status === 'done' ? 'finished' : status === 'cancelled' ? 'been cancelled' : status;
}

/** A job in one of these may still change: waiting for a worker, or rendering. */
export const ACTIVE_STATUSES = ['queued', 'running'] as const satisfies readonly JobStatus[];

/**
 * A status list for raw SQL, `status in ${sqlStatuses(ACTIVE_STATUSES)}`: "('queued', 'running')",
 * written as literals (fixed names, never input) so the statement reads as it would by hand.
 */
export function sqlStatuses(statuses: readonly JobStatus[]): SQL {
  return sql.raw(`(${statuses.map((s) => `'${s}'`).join(', ')})`);
}

/** What a worker can run; it only claims jobs that fit. */
export interface WorkerCapabilities {
  /** Model ids this worker has; "*" accepts any model (test doubles). */
  models: string[];
  /** Largest output frame (width * height) it can render. */
  maxPixels: number;
  /** onnxruntime execution provider, e.g. "cuda", "cpu". */
  executionProvider: string;
  /** Free-form description for `farm status`, e.g. the GPU name. */
  device?: string;
  /**
   * Upscalers this worker can run for upscale jobs, best first (the first that makes a job's factor
   * is used when the job names none): ids like "esrgan-slim", "esrgan-medium", "esrgan-thick",
   * "x4-diffusion"; "*" any (test doubles). Missing or empty: it takes no upscale jobs.
   */
  upscalers?: string[];
  /**
   * What each model in `models` can do (job-params.ts MODEL_ABILITIES): "text", "picture" (a VAE
   * encoder: transitions from or to a user's picture), "inpaint" (an inpainting UNet), "variation"
   * (an image-variation model). A model missing here does "text" only; "*" models do everything.
   */
  modelAbilities?: Record<string, ModelAbility[]>;
  /**
   * The family of each model in `models`, as the engine reads it from the model's folder (its
   * ModelFamily: "sd1", "sd2", "sd2-v", "sd-turbo", "sdxl", "sdxl-turbo"). A quality preset renders
   * the family's steps (job-params.ts FAMILY_PRESET_STEPS: a turbo model 2 to 4) when every worker
   * able to run the job says the same; a model missing here (older workers, test doubles) renders
   * QUALITY_PRESETS' steps.
   */
  modelFamilies?: Record<string, string>;
  /**
   * The side multiple of each model in `models`: a frame's width and height must be multiples of it
   * (the engine's ModelFolder.sizeMultiple: the VAE's scale factor times the UNet's downsampling,
   * 64 px for SD 1.5, 32 for SDXL). The farm refuses a size no capable worker's model renders when
   * the job is submitted, and the claim hands none to a worker whose model cannot render it
   * (worker-registry.ts sizeMultipleOf). A model missing here (older workers, test doubles) takes
   * every size the farm's own rule allows (LIMITS.side.multipleOf, 8).
   */
  modelSizeMultiples?: Record<string, number>;
}

/** What a job needs from a worker: its model (or, for an upscale job, an upscaler for its factor) and its output pixels. */
export interface JobNeeds {
  kind: JobKind;
  model: string;
  /** What the model must be able to do (modelAbilityFor); upscale jobs need an upscaler instead. */
  ability: ModelAbility;
  pixels: number;
  /** The frame's sides (JobParams.width, height); a worker's model must render them (sizeMultipleOf). Not for upscale jobs (an upscaler takes any size). */
  width?: number;
  height?: number;
  /** upscale jobs: the factor per side and the upscaler named (undefined: any that makes the factor). */
  upscaleFactor?: number;
  upscaler?: string;
}

/** Progress as reported by a renderer; stored in jobs.progress and published (minus preview). */
export interface JobProgress {
  /** Short machine-friendly stage name, e.g. "keyframes", "branches", "encoding". */
  stage: string;
  /** 0..1 over the whole job. */
  fraction: number;
  branchesDone?: number;
  branchesTotal?: number;
  framesDone?: number;
  framesTotal?: number;
  etaSeconds?: number;
  message?: string;
  /** Small preview image, base64; kept in the row only (NOTIFY payloads are limited to 8 kB). */
  preview?: { format: 'png' | 'jpeg' | 'webp'; base64: string };
}

export interface Job {
  id: number;
  kind: JobKind;
  status: JobStatus;
  userId: string;
  guildId: string | null;
  channelId: string | null;
  messageId: string | null;
  interactionToken: string | null;
  interactionExpiresAt: Date | null;
  params: JobParams;
  model: string;
  pixels: number;
  attempts: number;
  maxAttempts: number;
  workerId: string | null;
  leaseExpiresAt: Date | null;
  progress: JobProgress | null;
  /** Why it failed, in full, for operators. */
  error: string | null;
  /**
   * The failure as its owner is told it, when it is theirs to act on (RenderError's userMessage,
   * the farm's own time-limit and expiry texts); null otherwise: failureForOwner gives the line
   * they see then.
   */
  userError: string | null;
  parentJobId: number | null;
  reservedGpuSeconds: number;
  spentGpuSeconds: number | null;
  chargedGpuSeconds: number | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  deliveredAt: Date | null;
}

/** A job as handed to a renderer: plain data (it crosses into a worker thread). */
export interface ClaimedJob {
  id: number;
  kind: JobKind;
  userId: string;
  params: JobParams;
  model: string;
  pixels: number;
  /** 1 for the first attempt. */
  attempt: number;
  maxAttempts: number;
  parentJobId: number | null;
  reservedGpuSeconds: number;
  /** Proof of ownership for heartbeats and completion; a new one per claim. */
  leaseToken: string;
  /**
   * Which queuing of the job this claim belongs to: the id of its latest 'queued' event (its
   * submission, or its owner's retry after a cancel or a failure), read by the claim. A retry
   * changes it; a lease taken back, a failed attempt or a release do not. A spooled render of an
   * earlier queuing is never stored (farm/spool.ts). Undefined when the job has no such event.
   */
  queuedEventId?: number;
  /**
   * For extend and upscale jobs: the job they continue or upscale. `movie`: the prompts, seeds and
   * pictures of its whole movie (an extension's include those it continues in turn); `pictures`:
   * for an extension of a movie with pictures, their files by movie-wide input name
   * (INPUT_NAMES.image(movie.images[i].index)); `artifact`: its finished video (what an extension
   * continues and an upscale job upscales).
   */
  parent?: {
    id: number;
    params: JobParams;
    /** extend jobs only: an upscale needs just the finished video. */
    movie?: Movie;
    pictures?: Record<string, JobInput>;
    artifact?: { format: string; bytes: Uint8Array; meta: Record<string, unknown> };
  };
  /** The pictures stored with the job (job_inputs), by name (job-params.ts INPUT_NAMES); attached by the worker. */
  inputs?: Record<string, JobInput>;
}

export interface Artifact {
  jobId: number;
  format: string;
  mime: string;
  sizeBytes: number;
  meta: Record<string, unknown>;
  bytes: Buffer;
}

export const msToSeconds = (ms: number | null): number | null => (ms === null ? null : ms / 1000);
export const secondsToMs = (seconds: number): number => Math.round(seconds * 1000);

type JobRow = typeof jobs.$inferSelect;

export function jobFromRow(row: JobRow): Job {
  return {
    id: row.id,
    kind: row.kind,
    status: row.status,
    userId: row.userId,
    guildId: row.guildId,
    channelId: row.channelId,
    messageId: row.messageId,
    interactionToken: row.interactionToken,
    interactionExpiresAt: row.interactionExpiresAt,
    params: row.params as unknown as JobParams,
    model: row.model,
    pixels: row.pixels,
    attempts: row.attempts,
    maxAttempts: row.maxAttempts,
    workerId: row.workerId,
    leaseExpiresAt: row.leaseExpiresAt,
    progress: row.progress as JobProgress | null,
    error: row.error,
    userError: row.userError,
    parentJobId: row.parentJobId,
    reservedGpuSeconds: row.reservedMs / 1000,
    spentGpuSeconds: msToSeconds(row.spentMs),
    chargedGpuSeconds: msToSeconds(row.chargedMs),
    createdAt: row.createdAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
    deliveredAt: row.deliveredAt,
  };
}

const snakeToCamel = (name: string): string => name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const TIMESTAMP_KEYS = new Set(Object.entries(jobs).filter(([, c]) => (c as { columnType?: string }).columnType === 'PgTimestamp').map(([k]) => k));

/**
 * Maps `row_to_json(jobs.*)` output (used by raw statements so both drivers return the same
 * shape: ISO timestamps, numeric bigints) to a typed row.
 */
export function jobRowFromJson(json: Record<string, unknown>): JobRow {
  const row: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    const name = snakeToCamel(key);
    row[name] = TIMESTAMP_KEYS.has(name) && typeof value === 'string' ? new Date(value) : value;
  }
  return row as JobRow;
}

export function claimedJobFromRow(row: JobRow): ClaimedJob {
  if (!row.leaseToken) throw new Error(`job ${row.id} was claimed without a lease token`);
  return {
    id: row.id,
    kind: row.kind,
    userId: row.userId,
    params: row.params as unknown as JobParams,
    model: row.model,
    pixels: row.pixels,
    attempt: row.attempts,
    maxAttempts: row.maxAttempts,
    parentJobId: row.parentJobId,
    reservedGpuSeconds: row.reservedMs / 1000,
    leaseToken: row.leaseToken,
  };
}
