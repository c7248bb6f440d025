// A worker's "model" readiness (/readyz): ready once its renderer has loaded the model (the
// renderer's warmUp resolves). A warm-up that fails is logged in one line with the reason, /readyz
// says why the worker is unready, and the warm-up is tried again after a back-off
// (MODEL_LOAD_RETRY: 5 s, doubling up to 5 min between tries, for as long as the worker runs) —
// the operator may fix the files or free GPU memory meanwhile. A job on the model the warm-up loads
// (one claimed before the first try failed) that succeeds meanwhile has loaded that model itself (each job loads its model when it is not
// loaded yet): the next try is made at once, and a warm-up finds a loaded model loaded, so the
// worker is ready as soon as that job is done rather than at the next scheduled try. Other jobs
// (upscales, /vary on the variation model) load other models: they leave the back-off alone, so a
// worker short of GPU memory does not start a full model load after each of them.
// While the model is known not to load (a try failed, until one succeeds), the watched renderer
// says so (Renderer.unavailableModels): the worker claims no job on it, so a healthy worker renders
// them and none fails here for good. A render on that model that fails with a worker fault (its
// files, its execution provider) makes it known not to load again, with the same back-off.
import { type ClaimedJob, type Renderer, workerFaultOf } from '../../farm/index.ts';

export interface RetryBackoff {
  /** Pause after the first failed try. */
  firstMs: number;
  /** Longest pause between tries: the pause doubles after each failure up to this. */
  maxMs: number;
}

/** How a worker retries loading a model that failed to load: 5 s after the first failure, doubling up to 5 min. */
export const MODEL_LOAD_RETRY: RetryBackoff = { firstMs: 5_000, maxMs: 300_000 };

export interface ModelReadinessOptions {
  /** Where the lines go: 'warn' for a failed try, 'info' for the model loaded after failures. */
  log(level: 'info' | 'warn', line: string): void;
  /** Default MODEL_LOAD_RETRY. */
  retry?: RetryBackoff;
}

export interface WatchOptions {
  /**
   * Whether a job used the model the warm-up loads (so that, once it succeeded, that model is
   * loaded); apps/worker/load-renderer.ts's warmedModelJobs says it for a worker's renderer.
   */
  usesWarmedModel(job: ClaimedJob): boolean;
  /**
   * The id of the model the warm-up loads ("*": the renderer's only one): the watched renderer
   * reports it unavailable (Renderer.unavailableModels) while it is known not to load. Left out,
   * nothing is reported.
   */
  model?: string;
}

type Phase = 'renderer' | 'loading' | 'failed' | 'ready' | 'stopping';

/** An error as one line: its message with line breaks and runs of spaces folded. */
function oneLine(error: unknown): string {
  const text = (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ').trim();
  return text || (error instanceof Error ? error.name : 'unknown error');
}

const seconds = (ms: number) => `${Math.max(1, Math.ceil(ms / 1000))} s`;

export class ModelReadiness {
  private phase: Phase = 'renderer';
  private warmUp: (() => Promise<void>) | undefined;
  private readonly retry: RetryBackoff;
  /** Tries so far (the first warm-up included). */
  private tries = 0;
  private reason = '';
  private timer: NodeJS.Timeout | undefined;
  private nextTryAt = 0;

  constructor(private readonly options: ModelReadinessOptions) {
    this.retry = options.retry ?? MODEL_LOAD_RETRY;
  }

  /** The /readyz check: true, or why the worker is not ready. */
  check(): true | string {
    switch (this.phase) {
      case 'ready':
        return true;
      case 'renderer':
        return 'the renderer is still loading';
      case 'loading':
        return this.tries > 1 ? `the model is loading (try ${this.tries}; the last one failed: ${this.reason})` : 'the model is still loading';
      case 'failed':
        return `the model did not load: ${this.reason} (try ${this.tries}; next try in ${seconds(this.nextTryAt - performance.now())})`;
      case 'stopping':
        return 'the worker is shutting down';
    }
  }

  /**
   * The renderer is loaded: its model is loaded now (`warmUp`) and again after each failure until
   * it is. A renderer without a warm-up is ready at once.
   */
  start(warmUp: (() => Promise<void>) | undefined): void {
    if (this.phase !== 'renderer') return;
    if (!warmUp) {
      this.phase = 'ready';
      return;
    }
    this.warmUp = warmUp;
    void this.tryNow();
  }

  /**
   * The same renderer; a render on the warmed model (`usesWarmedModel`) that succeeds while the
   * model is not known to be loaded makes the next try happen at once (that job has loaded it).
   * Other renders leave the scheduled try as it is.
   */
  watch(renderer: Renderer, options: WatchOptions): Renderer {
    return {
      capabilities: () => renderer.capabilities(),
      render: async (job, context) => {
        let result;
        try {
          result = await renderer.render(job, context);
        } catch (error) {
          // The model stopped loading (files gone, the provider failing): unready, retried as after a failed warm-up.
          if (this.phase === 'ready' && this.warmUp && workerFaultOf(error) === 'model' && options.usesWarmedModel(job)) this.failed(error);
          throw error;
        }
        if (this.phase === 'failed' && options.usesWarmedModel(job)) void this.tryNow();
        return result;
      },
      unavailableModels: () => [...(options.model !== undefined && this.modelDown() ? [options.model] : []), ...(renderer.unavailableModels?.() ?? [])],
      ...(renderer.close ? { close: () => renderer.close!() } : {}),
    };
  }

  /** Whether the model is known not to load: a try failed and none has succeeded since (one may be under way). */
  private modelDown(): boolean {
    return this.phase === 'failed' || (this.phase === 'loading' && this.tries > 1);
  }

  /** No more tries; /readyz says the worker is shutting down. */
  stop(): void {
    this.phase = 'stopping';
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async tryNow(): Promise<void> {
    // One try at a time: a try under way is phase 'loading'.
    if (!this.warmUp || (this.phase !== 'failed' && this.phase !== 'renderer')) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.tries++;
    this.phase = 'loading';
    try {
      await this.warmUp();
      if (this.phase !== 'loading') return; // stopped meanwhile
      this.phase = 'ready';
      if (this.tries > 1) this.options.log('info', `the model loaded on try ${this.tries}; the worker is ready`);
    } catch (error) {
      if (this.phase !== 'loading') return;
      this.failed(error);
    }
  }

  /** A try failed (or a render found the model not loading): unready, the next try after the back-off. */
  private failed(error: unknown): void {
    const fromRender = this.phase === 'ready';
    this.reason = oneLine(error);
    const pauseMs = Math.min(this.retry.firstMs * 2 ** (this.tries - 1), this.retry.maxMs);
    this.phase = 'failed';
    this.nextTryAt = performance.now() + pauseMs;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tryNow(), pauseMs);
    this.timer.unref();
    this.options.log(
      'warn',
      `the model did not load (${fromRender ? 'in a render' : `try ${this.tries}`}): ${this.reason}; the worker stays unready, claims no job on it, and tries again in ${seconds(pauseMs)}`,
    );
  }
}
