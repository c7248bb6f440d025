// Runs a renderer module in worker threads, one per slot, and presents it as an ordinary
// Renderer. The real engine is CPU/GPU-bound and would block the worker's event loop (missing
// heartbeats and losing its leases); in a thread it cannot. Progress, abort and results are
// proxied; a thread that ignores an abort for abortGraceMs is terminated and replaced.
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { RenderError, type RenderContext, type Renderer, type RenderResult } from './renderer.ts';
import { startTimeout, type Timer } from './timers.ts';
import type { FromThread, SerializedError, ThreadHostData, ToThread } from './thread-protocol.ts';
import type { ClaimedJob, WorkerCapabilities } from './types.ts';
import type { VideoFormat } from '../engine/index.ts';

export interface ThreadRendererOptions {
  /** Path (relative to the current directory) or file: URL of a module exporting a RendererFactory. */
  module: string;
  /** Export to call; default "createRenderer", falling back to the default export. */
  exportName?: string;
  /** Passed to the factory in each thread (must be structured-cloneable). */
  rendererOptions?: unknown;
  /** Concurrent renders, one thread each (one per GPU). Default 1. */
  threads?: number;
  /** After an abort, how long a render may take to stop before its thread is terminated. */
  abortGraceMs?: number;
}

export interface ThreadRenderer extends Renderer {
  close(): Promise<void>;
}

// Threads start without the tsx loader that runs the rest of the farm, so they register it
// before importing TypeScript. The path is resolved here because bare specifiers do not
// resolve from eval'd code.
const TSX_ESM_API = pathToFileURL(
  path.join(path.dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist/esm/api/index.mjs'),
).href;
const HOST_URL = new URL('./thread-host.ts', import.meta.url).href;

const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
import(workerData.tsxApi)
  .then((tsx) => { tsx.register(); return import(workerData.hostUrl); })
  .catch((error) => { process.nextTick(() => { throw error; }); });
`;

interface Pending {
  resolve(result: RenderResult): void;
  reject(error: Error): void;
  context: RenderContext;
}

interface PendingWarmUp {
  resolve(): void;
  reject(error: Error): void;
}

class Slot {
  worker: Worker;
  ready: Promise<WorkerCapabilities>;
  busy = false;
  dead = false;
  readonly pending = new Map<number, Pending>();
  readonly warmUps: PendingWarmUp[] = [];

  constructor(data: ThreadHostData) {
    this.worker = new Worker(BOOTSTRAP, { eval: true, workerData: { ...data, tsxApi: TSX_ESM_API, hostUrl: HOST_URL } });
    this.ready = new Promise((resolve, reject) => {
      const onMessage = (message: FromThread): void => {
        if (message.type === 'ready') resolve(message.capabilities);
        else if (message.type === 'init-error') reject(toError(message.error, `Could not load the renderer ${data.moduleUrl}`));
        else return;
        this.worker.off('message', onMessage);
      };
      this.worker.on('message', onMessage);
      this.worker.once('error', reject);
      this.worker.once('exit', (code) => reject(new Error(`render thread exited (code ${code}) while loading ${data.moduleUrl}`)));
    });
    // The readiness promise may be awaited later; avoid an unhandled rejection meanwhile.
    this.ready.catch(() => {});
    this.worker.on('message', (message: FromThread) => this.onMessage(message));
    this.worker.on('error', (error) => this.fail(error));
    this.worker.on('exit', (code) => this.fail(new Error(`render thread exited (code ${code})`)));
  }

  private onMessage(message: FromThread): void {
    if (message.type === 'progress') {
      this.pending.get(message.requestId)?.context.onProgress(message.progress);
    } else if (message.type === 'result') {
      const pending = this.pending.get(message.requestId);
      this.pending.delete(message.requestId);
      pending?.resolve({
        video: message.video,
        format: message.format as VideoFormat,
        mime: message.mime,
        metadata: message.metadata,
        gpuSeconds: message.gpuSeconds,
        warnings: message.warnings,
      });
    } else if (message.type === 'error') {
      const pending = this.pending.get(message.requestId);
      this.pending.delete(message.requestId);
      pending?.reject(toError(message.error));
    } else if (message.type === 'warm' || message.type === 'warm-error') {
      // Warm-ups carry no request id: the thread's first answer settles every warm-up waiting on it.
      for (const warmUp of this.warmUps.splice(0)) {
        if (message.type === 'warm') warmUp.resolve();
        else warmUp.reject(toError(message.error));
      }
    }
  }

  /** Loads the module's model in this thread (its warmUp); rejects when it fails or the thread dies first. */
  warmUp(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.warmUps.push({ resolve, reject });
      if (this.dead) return this.fail(new Error('render thread is gone'));
      this.post({ type: 'warm-up' });
    });
  }

  /**
   * The thread is gone: every render and warm-up waiting on it fails (retryable: another attempt,
   * on a new thread, may succeed). A warm-up says the thread died while loading its model.
   */
  fail(error: Error): void {
    this.dead = true;
    for (const pending of this.pending.values()) pending.reject(new RenderError(`render thread failed: ${error.message}`, { cause: error }));
    for (const warmUp of this.warmUps) warmUp.reject(new RenderError(`${error.message} while loading its model`, { cause: error }));
    this.pending.clear();
    this.warmUps.length = 0;
  }

  post(message: ToThread): void {
    this.worker.postMessage(message);
  }
}

function toError(serialized: SerializedError, prefix?: string): Error {
  const message = prefix ? `${prefix}: ${serialized.message}` : serialized.message;
  const error = new RenderError(message, {
    retryable: serialized.retryable ?? true,
    ...(serialized.userMessage !== undefined ? { userMessage: serialized.userMessage } : {}),
    ...(serialized.requestFault === true ? { requestFault: true } : {}),
    ...(serialized.workerFault ? { workerFault: serialized.workerFault } : {}),
  });
  error.name = serialized.name;
  if (serialized.stack) error.stack = serialized.stack;
  return error;
}

function moduleUrl(specifier: string): string {
  return specifier.startsWith('file:') ? specifier : pathToFileURL(path.resolve(specifier)).href;
}

/**
 * Starts the threads and loads the module in each; resolves once all are ready, so a broken
 * module or missing model fails here, at worker start-up, with the module's own error.
 */
export async function createThreadRenderer(options: ThreadRendererOptions): Promise<ThreadRenderer> {
  const data: ThreadHostData = {
    moduleUrl: moduleUrl(options.module),
    exportName: options.exportName ?? 'createRenderer',
    options: options.rendererOptions ?? {},
  };
  const abortGraceMs = options.abortGraceMs ?? 10_000;
  const slots = Array.from({ length: Math.max(1, options.threads ?? 1) }, () => new Slot(data));
  const waiters: Array<() => void> = [];
  let nextRequestId = 1;
  let closed = false;

  let capabilities: WorkerCapabilities;
  try {
    [capabilities] = await Promise.all(slots.map((slot) => slot.ready));
  } catch (error) {
    await Promise.all(slots.map((slot) => slot.worker.terminate()));
    throw error;
  }

  const acquire = async (): Promise<number> => {
    for (;;) {
      if (closed) throw new RenderError('the renderer is closed');
      const index = slots.findIndex((slot) => !slot.busy);
      if (index >= 0) {
        if (slots[index].dead) slots[index] = new Slot(data);
        // Taken before waiting, so no other render is given the same thread meanwhile.
        slots[index].busy = true;
        try {
          // A thread warmUp started in place of a dead one may still be loading the module.
          await slots[index].ready;
        } catch (error) {
          releaseSlot(index);
          throw error;
        }
        return index;
      }
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  const releaseSlot = (index: number): void => {
    slots[index].busy = false;
    waiters.shift()?.();
  };

  return {
    capabilities: () => capabilities,

    async render(job: ClaimedJob, context: RenderContext): Promise<RenderResult> {
      const index = await acquire();
      const slot = slots[index];
      const requestId = nextRequestId++;
      let graceTimer: Timer | undefined;
      const onAbort = (): void => {
        const reason = context.signal.reason instanceof Error ? context.signal.reason.message : 'aborted';
        slot.post({ type: 'abort', requestId, reason });
        // A setting (BLENDFARM_ABORT_GRACE_MS): waited out in full however long (timers.ts).
        graceTimer = startTimeout(() => {
          // Ignoring the abort: replace the thread rather than wait for it.
          slot.fail(new Error(`render did not stop within ${abortGraceMs} ms of being aborted`));
          void slot.worker.terminate();
        }, abortGraceMs);
      };
      try {
        return await new Promise<RenderResult>((resolve, reject) => {
          slot.pending.set(requestId, { resolve, reject, context });
          if (slot.dead) return slot.fail(new Error('render thread is gone'));
          slot.post({ type: 'render', requestId, job });
          if (context.signal.aborted) onAbort();
          else context.signal.addEventListener('abort', onAbort, { once: true });
        });
      } finally {
        context.signal.removeEventListener('abort', onAbort);
        graceTimer?.clear();
        releaseSlot(index);
      }
    },

    /**
     * Every thread loads its model; rejects with the first thread's load error. A thread that died
     * (while loading its model, say) and that no render holds is started again first, so a later
     * warm-up can succeed without waiting for a job to replace it.
     */
    async warmUp(): Promise<void> {
      if (closed) throw new RenderError('the renderer is closed');
      await Promise.all(
        slots.map(async (_, index) => {
          if (slots[index].dead && !slots[index].busy) slots[index] = new Slot(data);
          const slot = slots[index];
          await slot.ready;
          // A thread that dies while loading (out of memory, a crash in the runtime) rejects it (Slot.fail).
          await slot.warmUp();
        }),
      );
    },

    async close(): Promise<void> {
      closed = true;
      for (const waiter of waiters.splice(0)) waiter();
      await Promise.all(
        slots.map(async (slot) => {
          if (!slot.dead) {
            // Let the module free its resources, but do not wait forever for it.
            const closedMessage = new Promise<void>((resolve) => {
              slot.worker.on('message', (message: FromThread) => message.type === 'closed' && resolve());
              setTimeout(resolve, 2000).unref();
            });
            slot.post({ type: 'close' });
            await closedMessage;
          }
          slot.dead = true;
          await slot.worker.terminate();
        }),
      );
    },
  };
}
