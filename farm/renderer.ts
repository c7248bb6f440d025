// The contract between the farm and whatever turns a job into a video. The farm never renders
// itself (from the engine it takes only types, limits and seed drawing): a worker is given a Renderer (in-process,
// or a module loaded into worker threads by thread-renderer.ts), so the engine can be swapped, and
// tests use a stand-in. The engine's adapter is apps/worker/engine-renderer.ts.
import type { VideoFormat } from '../engine/index.ts';
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
  /** Frees models, threads, GPU memory. */
  close?(): Promise<void>;
}

/**
 * A module that can be loaded by path (thread-renderer.ts; apps/worker/load-renderer.ts picks it)
 * exports this factory as `createRenderer` (or default). `options` is plain, structured-cloneable
 * data built by the app from its configuration.
 */
export type RendererFactory = (options: unknown) => Renderer | Promise<Renderer>;

/**
 * Throw this from render() to control retries: `retryable: false` fails the job at once (bad
 * input, missing model), instead of spending its remaining attempts on the same error.
 */
export class RenderError extends Error {
  readonly retryable: boolean;
  constructor(message: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'RenderError';
    this.retryable = options.retryable ?? true;
  }
}

export function isPermanentRenderError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { retryable?: unknown }).retryable === false;
}

export const MIME_TYPES: Record<VideoFormat, string> = { mp4: 'video/mp4', webm: 'video/webm', webp: 'image/webp', gif: 'image/gif' };
