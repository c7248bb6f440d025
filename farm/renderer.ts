// The contract between the farm and whatever turns a job into a video. The farm never renders
// itself (from the engine it takes only types, limits and seed drawing): a worker is given a Renderer (in-process,
// or a module loaded into worker threads by thread-renderer.ts), so the engine can be swapped, and
// tests use a stand-in. The engine's adapter is apps/worker/engine-renderer.ts.
import type { VideoFormat } from '../engine/index.ts';
import { storableText } from './text.ts';
import type { ClaimedJob, JobProgress, WorkerCapabilities } from './types.ts';

export type { ClaimedJob, JobProgress, WorkerCapabilities };

export interface RenderContext {
  /**
   * Aborted when the job is cancelled, its lease is lost, or the worker shuts down. In a render
   * thread the abort arrives as a message, so a render must await something now and then (it
   * does naturally between onnxruntime runs); one that never yields is terminated after
   * FarmConfig.abortGraceMs.
   */
  signal: AbortSignal;
  /** Report progress as often as convenient; the farm throttles what it writes and publishes. */
  onProgress(progress: JobProgress): void;
}

export interface RenderResult {
  /** The finished video file. */
  video: Uint8Array;
  format: VideoFormat;
  /** Defaults from the format (MIME_TYPES). */
  mime?: string;
  /** Seeds, prompts, frame count, timings... stored with the artifact and shown to users. */
  metadata: Record<string, unknown>;
  /** Measured GPU time of this render; what the user is charged (capped at the reservation). */
  gpuSeconds: number;
  /**
   * What the user who asked should know about the result, one sentence each (e.g. a prompt longer
   * than the text encoder reads, whose end had no effect). Stored with the artifact's metadata as
   * `warnings` (resultWarnings reads them back) and shown with the delivered video.
   */
  warnings?: string[];
}

/** The most warnings stored with one result, and characters kept of each: one short line each. */
export const RESULT_WARNINGS = { max: 20, length: 300 } as const;

/**
 * A result's metadata with its warnings under `warnings` (cleaned: text only, at most
 * RESULT_WARNINGS.max of RESULT_WARNINGS.length characters each, nothing the database refuses);
 * the metadata as it is when there are none.
 */
export function withResultWarnings(metadata: Record<string, unknown>, warnings: readonly unknown[] | undefined): Record<string, unknown> {
  const clean = cleanWarnings([...resultWarnings(metadata), ...(warnings ?? [])]);
  if (clean.length === 0) return metadata;
  return { ...metadata, warnings: clean };
}

/** The warnings stored with a finished job's result (its artifact's metadata); [] when none. */
export function resultWarnings(meta: Record<string, unknown> | undefined): string[] {
  return Array.isArray(meta?.warnings) ? cleanWarnings(meta.warnings) : [];
}

function cleanWarnings(warnings: readonly unknown[]): string[] {
  const seen = new Set<string>();
  for (const w of warnings) {
    if (typeof w !== 'string') continue;
    const line = w.replace(/\s+/g, ' ').trim();
    const short = storableText(line.length > RESULT_WARNINGS.length ? `${line.slice(0, RESULT_WARNINGS.length - 1)}…` : line);
    if (short) seen.add(short);
  }
  return [...seen].slice(0, RESULT_WARNINGS.max);
}

export interface Renderer {
  capabilities(): WorkerCapabilities;
  render(job: ClaimedJob, context: RenderContext): Promise<RenderResult>;
  /**
   * Loads what jobs need (the model) ahead of the first one, so a worker can say it is ready
   * (/readyz) only once its model is loaded. Optional; rejects with the load error (jobs still try
   * to load the model again when they run). Called again after a failure (apps/worker/
   * model-readiness.ts retries it with a back-off, and at once when a job on that model finished), so it resolves
   * at once when the model is loaded already.
   */
  warmUp?(): Promise<void>;
  /**
   * The models this worker knows it cannot render right now (its model did not load: apps/worker/
   * model-readiness.ts says so while it retries); "*" for every model. The farm claims no job on
   * them (upscales load no model and are still claimed). Optional; asked before each claim.
   */
  unavailableModels?(): readonly string[];
  /** Frees models, threads, GPU memory. */
  close?(): Promise<void>;
}

/**
 * What a worker fault (RenderError's workerFault) rules out on this worker for a while: 'model',
 * what the job needed (its model; for an upscale, upscales); 'worker', every job (a missing ffmpeg).
 */
export type WorkerFaultScope = 'model' | 'worker';

/**
 * A module that can be loaded by path (thread-renderer.ts; apps/worker/load-renderer.ts picks it)
 * exports this factory as `createRenderer` (or default). `options` is plain, structured-cloneable
 * data built by the app from its configuration.
 */
export type RendererFactory = (options: unknown) => Renderer | Promise<Renderer>;

/**
 * Throw this from render() to control retries and what the job's owner is told.
 * - `retryable: false` fails the job at once (bad input, missing model), instead of spending its
 *   remaining attempts on the same error.
 * - `userMessage`: the failure as the owner is told it, when it is theirs to act on (a setting the
 *   render cannot do, a picture gone); `true` when `message` itself is written for them. Left out,
 *   the owner gets a generic line (failureForOwner) and `message` is for the operator only (farm
 *   status, events, logs): a model, driver or ffmpeg message, a path or a host name never reaches
 *   a channel.
 * - `requestFault: true`: the request itself made the render fail (a video that cannot fit its
 *   maxBytes, a setting or picture the engine refuses), not the farm (a crash, out of memory on this
 *   worker, a model that does not load, a lost lease). The job fails at once and its owner is
 *   charged the time the attempt ran (capped at the reservation), as for a render stopped at its
 *   time limit: otherwise a render that fails late would be free, and resubmitting it would keep
 *   GPUs busy without limit. Left out, a failure is refunded in full.
 * - `workerFault`: this worker cannot render it, the job is not at fault (its model's files are
 *   missing or broken, its execution provider does not load, ffmpeg is gone): the farm hands the job
 *   back to the queue without using an attempt, so another worker renders it, and this worker claims
 *   no job needing the same thing (WorkerFaultScope) for a pause that doubles while the fault lasts
 *   (farm/worker.ts, WORKER_FAULT_PAUSE), saying so in its log and readiness.
 */
export class RenderError extends Error {
  readonly retryable: boolean;
  readonly userMessage?: string;
  readonly requestFault: boolean;
  readonly workerFault?: WorkerFaultScope;
  constructor(message: string, options: { retryable?: boolean; cause?: unknown; userMessage?: string | true; requestFault?: boolean; workerFault?: WorkerFaultScope } = {}) {
    super(message, { cause: options.cause });
    this.name = 'RenderError';
    this.retryable = options.retryable ?? true;
    const forUser = options.userMessage === true ? message : options.userMessage;
    if (forUser !== undefined) this.userMessage = forUser;
    this.requestFault = options.requestFault ?? false;
    if (options.workerFault) this.workerFault = options.workerFault;
  }
}

/** A thrown error's worker fault (RenderError's workerFault, read structurally: it may come from a render thread); undefined when it is none. */
export function workerFaultOf(error: unknown): WorkerFaultScope | undefined {
  const scope = typeof error === 'object' && error !== null ? (error as { workerFault?: unknown }).workerFault : undefined;
  return scope === 'model' || scope === 'worker' ? scope : undefined;
}

export function isPermanentRenderError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { retryable?: unknown }).retryable === false;
}

/** Whether a thrown error is the request's own fault (RenderError's requestFault, read structurally: it may come from a render thread). */
export function isRequestFault(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { requestFault?: unknown }).requestFault === true;
}

/** A thrown error's text for the job's owner (RenderError's userMessage, read structurally: it may come from a render thread); undefined when there is none. */
export function userMessageOf(error: unknown): string | undefined {
  const text = typeof error === 'object' && error !== null ? (error as { userMessage?: unknown }).userMessage : undefined;
  return typeof text === 'string' && text.trim() !== '' ? text : undefined;
}

export const MIME_TYPES: Record<VideoFormat, string> = { mp4: 'video/mp4', webm: 'video/webm', webp: 'image/webp', gif: 'image/gif' };
