// The farm's renderer backed by the latent-blending engine. Loaded by path into a worker thread
// (farm/thread-renderer.ts), one per GPU: onnxruntime's session.run blocks its thread, so it must
// not share one with the event loop that heartbeats leases. The pipeline is loaded on the first job
// and kept for the next ones. Its options come from the app (load-renderer.ts builds them from
// loadConfig()'s result); nothing here reads the environment.
import { basename } from 'node:path';
import {
  ExecutionProviderError,
  InvalidRequestError,
  ModelFileError,
  ModelOutputError,
  StableDiffusionPipeline,
  createPerceptualMetric,
  renderVideo,
  type ExecutionProvider,
  type PerceptualMetric,
  type RenderProgress,
  type RenderRequest,
} from '../../engine/index.ts';
import { ensureDemoModel } from '../../models/demo-model.ts';
import { DEMO_MODEL_DIR } from '../../models/paths.ts';
// Only the farm modules a render thread needs (farm/index.ts would load the database drivers too).
import { RenderError, type ClaimedJob, type RenderContext, type Renderer, type RenderResult } from '../../farm/renderer.ts';
import type { JobProgress, WorkerCapabilities } from '../../farm/types.ts';
import type { JobParams } from '../../farm/job-params.ts';
import { isOutOfMemory, outOfMemoryError, workerMaxPixels } from './gpu-memory.ts';

export interface EngineRendererOptions {
  /** ONNX pipeline folder; unset = the built-in demo model. */
  modelDir?: string;
  /** Model id advertised to the farm (jobs name it); default: "demo" or the folder's name. */
  modelId?: string;
  ep?: ExecutionProvider;
  deviceId?: number;
  threads?: number;
  lpipsModel?: string;
  /** Largest output frame in pixels this worker accepts. */
  maxPixels?: number;
  /** Human-readable device name for `farm status`. */
  device?: string;
}

/**
 * Job parameters -> the engine's render request: a plain rename, nothing checked or adjusted (the
 * farm validated the parameters against its limits, which lie inside the engine's). An extension
 * renders its own new prompts after the movie it continues (`job.parent.movie`).
 */
export function renderRequestFor(job: ClaimedJob): RenderRequest {
  const p: JobParams = job.params;
  const request: RenderRequest = {
    prompts: p.prompts,
    negativePrompt: p.negativePrompt,
    seeds: p.seeds,
    steps: p.steps,
    guidance: p.guidance,
    width: p.width,
    height: p.height,
    depthStrength: p.depthStrength,
    maxBranches: p.maxBranches,
    duration: p.durationSeconds,
    fps: p.fps,
    format: p.format,
    maxBytes: p.maxBytes,
  };
  if (job.kind === 'upscale') return { ...request, upscale: { factor: p.upscaleFactor } };
  if (job.kind === 'extend') {
    const parent = job.parent;
    if (!parent) throw new RenderError('the movie to extend no longer exists', { retryable: false });
    return { ...request, extend: { prompts: parent.movie.prompts, seeds: parent.movie.seeds, video: parent.artifact?.bytes } };
  }
  return request;
}

export function jobProgress(p: RenderProgress): JobProgress {
  return {
    stage: p.fraction >= 0.95 ? 'encoding' : p.stages ? `stage ${p.stage}/${p.stages}` : 'keyframes',
    fraction: p.fraction,
    branchesDone: p.branchesDone,
    branchesTotal: p.branchesPlanned,
    etaSeconds: p.etaSeconds ?? undefined,
    message: p.segments > 1 ? `segment ${p.segment}/${p.segments}` : undefined,
    preview: p.preview ? { format: 'jpeg', base64: p.preview.toString('base64') } : undefined,
  };
}

class EngineRenderer implements Renderer {
  private pipe?: Promise<StableDiffusionPipeline>;
  private metric?: Promise<PerceptualMetric>;
  private readonly modelId: string;

  constructor(private readonly opts: EngineRendererOptions) {
    this.modelId = opts.modelId ?? (opts.modelDir ? basename(opts.modelDir) : 'demo');
  }

  capabilities(): WorkerCapabilities {
    const ep = this.opts.ep ?? 'cpu';
    return {
      models: [this.modelId],
      // Upscales of the largest sizes (768x512 x2 per side) must fit; budgets bound the cost.
      // The maxPixels setting, else what fits the GPU's memory (apps/worker/gpu-memory.ts).
      maxPixels: workerMaxPixels(this.opts),
      executionProvider: ep,
      device: this.opts.device,
    };
  }

  private pipeline(): Promise<StableDiffusionPipeline> {
    this.pipe ??= (async () => {
      const dir = this.opts.modelDir ?? (await ensureDemoModel(DEMO_MODEL_DIR));
      return StableDiffusionPipeline.load(dir, { ep: this.opts.ep, deviceId: this.opts.deviceId, threads: this.opts.threads });
    })();
    // A failed load is not cached: the next job tries again (e.g. after the files are fixed).
    this.pipe.catch(() => (this.pipe = undefined));
    return this.pipe;
  }

  async render(job: ClaimedJob, ctx: RenderContext): Promise<RenderResult> {
    const started = performance.now();
    try {
      const request = renderRequestFor(job);
      const pipe = await this.pipeline();
      this.metric ??= createPerceptualMetric(this.opts.lpipsModel, { ep: this.opts.ep, deviceId: this.opts.deviceId });
      const out = await renderVideo(pipe, request, { signal: ctx.signal, metric: await this.metric, onProgress: (p) => ctx.onProgress(jobProgress(p)) });
      return {
        video: out.video,
        format: out.format,
        metadata: {
          seeds: out.seeds,
          keyframes: out.keyframes,
          frames: out.frames,
          durationSeconds: out.durationSeconds,
          width: out.width,
          height: out.height,
          sizeBytes: out.sizeBytes,
          shrunk: out.shrunk,
          metric: out.metric,
          maxGap: out.maxGap,
          meanGap: out.meanGap,
          renderSeconds: out.renderSeconds,
          encodeSeconds: out.encodeSeconds,
          model: pipe.folder.name,
          ep: pipe.ep,
        },
        // Wall time of the render on this worker's device is what the job is charged.
        gpuSeconds: (performance.now() - started) / 1000,
      };
    } catch (err) {
      if (err instanceof RenderError || ctx.signal.aborted) throw err;
      if (isOutOfMemory(err)) throw outOfMemoryError(err, job.params, workerMaxPixels(this.opts));
      // Bad input and missing models fail the same way on every attempt: do not retry them.
      const permanent = err instanceof InvalidRequestError || err instanceof ModelOutputError || err instanceof RangeError || err instanceof ModelFileError || err instanceof ExecutionProviderError;
      throw new RenderError((err as Error).message, { retryable: !permanent, cause: err });
    }
  }

  async close(): Promise<void> {
    const pipe = await this.pipe?.catch(() => undefined);
    await pipe?.release();
    await (await this.metric?.catch(() => undefined))?.release?.();
  }
}

/** The factory thread-renderer.ts calls in each render thread; `options` are EngineRendererOptions. */
export function createRenderer(options: unknown): Renderer {
  return new EngineRenderer((options ?? {}) as EngineRendererOptions);
}

export default createRenderer;
