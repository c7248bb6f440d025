// Messages between a worker's main thread (thread-renderer.ts) and its render threads
// (thread-host.ts).
import { isRequestFault, type Renderer, userMessageOf, workerFaultOf, type WorkerFaultScope } from './renderer.ts';
import type { ClaimedJob, JobProgress } from './types.ts';

export interface ThreadHostData {
  moduleUrl: string;
  exportName: string;
  options: unknown;
}

export type ToThread =
  | { type: 'render'; requestId: number; job: ClaimedJob }
  | { type: 'abort'; requestId: number; reason: string }
  | { type: 'warm-up' }
  | { type: 'close' };

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  retryable?: boolean;
  /** RenderError's userMessage. */
  userMessage?: string;
  /** RenderError's requestFault (set only when true). */
  requestFault?: boolean;
  /** RenderError's workerFault. */
  workerFault?: WorkerFaultScope;
}

export type FromThread =
  | { type: 'ready'; capabilities: ReturnType<Renderer['capabilities']> }
  | { type: 'init-error'; error: SerializedError }
  | { type: 'progress'; requestId: number; progress: JobProgress }
  | { type: 'result'; requestId: number; video: Uint8Array; format: string; mime?: string; metadata: Record<string, unknown>; gpuSeconds: number; warnings?: string[] }
  | { type: 'error'; requestId: number; error: SerializedError }
  | { type: 'warm' }
  | { type: 'warm-error'; error: SerializedError }
  | { type: 'closed' };

export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) {
    const retryable = (error as { retryable?: unknown }).retryable;
    const userMessage = userMessageOf(error);
    const workerFault = workerFaultOf(error);
    return {
      name: error.name,
      message: error.message,
      stack: error.stack,
      ...(typeof retryable === 'boolean' ? { retryable } : {}),
      ...(userMessage !== undefined ? { userMessage } : {}),
      ...(isRequestFault(error) ? { requestFault: true } : {}),
      ...(workerFault ? { workerFault } : {}),
    };
  }
  return { name: 'Error', message: String(error) };
}
