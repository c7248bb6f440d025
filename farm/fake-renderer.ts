// TEST DOUBLE. A stand-in renderer for tests, benchmarks and trying the farm without models:
// it sleeps a little per "step", reports progress, and returns a few bytes that describe the
// job (not a playable video). Loadable by path like the real engine adapter
// (BLENDFARM_RENDERER=farm/fake-renderer.ts).
//
// Behaviour can be steered per job through a directive in the first prompt, so one worker can
// serve tests that need different outcomes:
//   "[fake fail=2] ..."    throw a retryable error on attempts 1 and 2
//   "[fake permanent] ..." throw a non-retryable RenderError (an internal fault: its owner is told a generic line)
//   "[fake refuse] ..."    throw a non-retryable RenderError whose message is for the job's owner (userMessage)
//   "[fake toolarge] ..."  render every step, then throw as the engine adapter maps a video that cannot fit its
//                          maxBytes: non-retryable, for the owner, the request's own fault (requestFault: charged)
//   "[fake ms=300] ..."    take 300 ms per step instead of the configured stepMs
//   "[fake hang] ..."      ignore abort and never finish (simulates a stuck render)
//   "[fake warn] ..."      finish with a warning, as the engine warns of a prompt it cut
// A model given a side multiple (sizeMultiples) is advertised with it, and a job whose sides are no
// multiples of it is refused as the engine refuses it (its validateSize): the farm should never
// hand one over (worker-registry.ts capableSql).
import { setTimeout as sleep } from 'node:timers/promises';
import { threadId } from 'node:worker_threads';
import { MIME_TYPES, RenderError, type RenderContext, type Renderer, type RenderResult } from './renderer.ts';
import type { ClaimedJob, WorkerCapabilities } from './types.ts';

export interface FakeRendererOptions {
  models?: string[];
  maxPixels?: number;
  /** Upscalers to advertise (default ["*"], any: upscale jobs are faked like the others). */
  upscalers?: string[];
  /** Side multiples of models in `models` (WorkerCapabilities.modelSizeMultiples), e.g. { sd15: 64 }; default none (the farm's floor). */
  sizeMultiples?: Record<string, number>;
  /** Progress reports per render. */
  steps?: number;
  /** Sleep per step. 0 makes a no-op renderer (benchmarks). */
  stepMs?: number;
  /** Busy-wait instead of sleeping: blocks the thread like a real CPU-bound render. */
  blockThread?: boolean;
  /** GPU-seconds to report; defaults to the measured wall time. */
  gpuSeconds?: number;
  /**
   * Warm-ups that fail ("fake model load failure ...") before one loads the "model" (tests of
   * /readyz); a finished render loads it too, and a loaded model makes every warm-up succeed. Default 0.
   */
  warmUpFailures?: number;
}

export const FAKE_VIDEO_MAGIC = 'BLENDFARM-FAKE-VIDEO';

interface Directive {
  failAttempts: number;
  permanent: boolean;
  refuse: boolean;
  tooLarge: boolean;
  stepMs?: number;
  hang: boolean;
  warn: boolean;
  /** "[fake workerfault]" (the model's files) or "[fake workerfault=worker]" (no ffmpeg): a worker fault, as the engine adapter throws. */
  workerFault?: 'model' | 'worker';
}

export function parseDirective(prompt: string | undefined): Directive {
  const directive: Directive = { failAttempts: 0, permanent: false, refuse: false, tooLarge: false, hang: false, warn: false };
  const match = /\[fake ([^\]]*)\]/.exec(prompt ?? '');
  if (!match) return directive;
  for (const word of match[1].split(/\s+/)) {
    const [key, value] = word.split('=');
    if (key === 'fail') directive.failAttempts = Number(value ?? 1);
    if (key === 'permanent') directive.permanent = true;
    if (key === 'refuse') directive.refuse = true;
    if (key === 'toolarge') directive.tooLarge = true;
    if (key === 'ms') directive.stepMs = Number(value);
    if (key === 'hang') directive.hang = true;
    if (key === 'warn') directive.warn = true;
    if (key === 'workerfault') directive.workerFault = value === 'worker' ? 'worker' : 'model';
  }
  return directive;
}

/** What a "[fake toolarge]" job fails with, worded like the engine's VideoTooLargeError. */
export const FAKE_TOO_LARGE = 'Could not fit the gif under 10 MiB: the smallest attempt was 14.2 MiB; use fewer frames, a smaller size or another format.';

/** The warning a "[fake warn]" job finishes with. */
export const FAKE_WARNING = 'prompt 1 is longer than the fake renderer reads; its end was cut off';

/** Reads back what the fake renderer wrote, for assertions. */
export function decodeFakeVideo(bytes: Uint8Array): { jobId: number; attempt: number; prompts: string[]; seeds: number[] } {
  const text = Buffer.from(bytes).toString('utf8');
  if (!text.startsWith(`${FAKE_VIDEO_MAGIC}\n`)) throw new Error('not a fake video');
  return JSON.parse(text.slice(FAKE_VIDEO_MAGIC.length + 1));
}

export class FakeRenderer implements Renderer {
  private warmUps = 0;
  private loaded = false;

  constructor(private readonly options: FakeRendererOptions = {}) {}

  async warmUp(): Promise<void> {
    if (this.loaded) return;
    const failures = this.options.warmUpFailures ?? 0;
    if (++this.warmUps <= failures) throw new RenderError(`fake model load failure (warm-up ${this.warmUps} of the ${failures} set to fail)`);
    this.loaded = true;
  }

  capabilities(): WorkerCapabilities {
    return {
      models: this.options.models ?? ['*'],
      maxPixels: this.options.maxPixels ?? 4096 * 4096,
      executionProvider: 'fake',
      device: 'fake renderer (test double)',
      upscalers: this.options.upscalers ?? ['*'],
      ...(this.options.sizeMultiples ? { modelSizeMultiples: this.options.sizeMultiples } : {}),
    };
  }

  async render(job: ClaimedJob, context: RenderContext): Promise<RenderResult> {
    const started = performance.now();
    const directive = parseDirective(job.params.prompts[0]);
    const steps = this.options.steps ?? 4;
    const stepMs = directive.stepMs ?? this.options.stepMs ?? 10;

    if (directive.hang) await new Promise(() => {});
    const multiple = job.kind === 'upscale' || !this.options.sizeMultiples || !Object.hasOwn(this.options.sizeMultiples, job.model) ? undefined : this.options.sizeMultiples[job.model];
    if (multiple !== undefined && (job.params.width % multiple !== 0 || job.params.height % multiple !== 0)) {
      // As the engine adapter passes on the engine's InvalidRequestError: the owner's to fix, and charged.
      throw new RenderError(`width and height must be multiples of ${multiple} for this model, got ${job.params.width}x${job.params.height}`, { retryable: false, userMessage: true, requestFault: true });
    }
    for (let step = 1; step <= steps; step++) {
      if (context.signal.aborted) throw context.signal.reason ?? new Error('aborted');
      if (stepMs > 0) {
        if (this.options.blockThread) {
          const until = performance.now() + stepMs;
          while (performance.now() < until) {
            // Deliberately blocking: stands in for a synchronous GPU/CPU kernel.
          }
          // Between kernels a real renderer awaits something; that is when an abort can arrive.
          await new Promise((resolve) => setImmediate(resolve));
        } else {
          await sleep(stepMs, undefined, { signal: context.signal });
        }
      }
      if (step === 1 && job.attempt <= directive.failAttempts) {
        throw new RenderError(`fake failure on attempt ${job.attempt}`);
      }
      if (step === 1 && directive.workerFault) {
        throw new RenderError(directive.workerFault === 'worker' ? 'fake worker fault: no ffmpeg' : 'fake worker fault: the model folder is gone', { workerFault: directive.workerFault });
      }
      if (step === 1 && directive.permanent) {
        throw new RenderError('fake permanent failure', { retryable: false });
      }
      if (step === 1 && directive.refuse) {
        throw new RenderError('fake refusal: use a smaller size', { retryable: false, userMessage: true });
      }
      context.onProgress({ stage: 'branches', fraction: step / steps, branchesDone: step, branchesTotal: steps });
    }
    if (directive.tooLarge) throw new RenderError(FAKE_TOO_LARGE, { retryable: false, userMessage: true, requestFault: true });

    this.loaded = true;
    const body = JSON.stringify({ jobId: job.id, attempt: job.attempt, prompts: job.params.prompts, seeds: job.params.seeds });
    const wallSeconds = (performance.now() - started) / 1000;
    return {
      video: Buffer.from(`${FAKE_VIDEO_MAGIC}\n${body}`),
      format: job.params.format,
      mime: MIME_TYPES[job.params.format],
      metadata: { seeds: job.params.seeds, prompts: job.params.prompts, renderer: 'fake', wallSeconds, threadId },
      gpuSeconds: this.options.gpuSeconds ?? wallSeconds,
      ...(directive.warn ? { warnings: [FAKE_WARNING] } : {}),
    };
  }
}

export function createRenderer(options: unknown): Renderer {
  return new FakeRenderer((options ?? {}) as FakeRendererOptions);
}

export default createRenderer;
