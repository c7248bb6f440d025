// The farm's renderer backed by the latent-blending engine. Loaded by path into a worker thread
// (farm/thread-renderer.ts), one per GPU: onnxruntime's session.run blocks its thread, so it must
// not share one with the event loop that heartbeats leases. The pipeline is loaded on the first job
// and kept for the next ones. Its options come from the app (load-renderer.ts builds them from
// loadConfig()'s result); nothing here reads the environment.
import {
  DiffusionUpscaler,
  ExecutionProviderError,
  ImageVariationPipeline,
  InvalidRequestError,
  ModelFileError,
  ModelOutputError,
  StableDiffusionPipeline,
  SuperResolutionUpscaler,
  VideoTooLargeError,
  createPerceptualMetric,
  isOutOfMemory,
  readDiffusionUpscalerFolder,
  readModelFolder,
  renderVariationVideo,
  renderVideo,
  upscaleVideo,
  type ExecutionProvider,
  type FrameUpscaler,
  type ModelKind,
  type PerceptualMetric,
  type RenderProgress,
  type RenderRequest,
  type VariationRequest,
} from '../../engine/index.ts';
import { ensureDemoModel } from '../../models/demo-model.ts';
import { DEMO_MODEL_DIR } from '../../models/paths.ts';
import {
  DEFAULT_SUPER_RESOLUTION_MODEL,
  SUPER_RESOLUTION_MODELS,
  UpscalerNotAvailableError,
  availableSuperResolutionModels,
  ensureSuperResolutionModel,
} from '../../models/esrgan/catalog.ts';
import { DEFAULT_UPSCALE_FACTOR, IMAGE_LIMITS, upscalerMakes } from '../../farm/limits.ts';
// Only the farm modules a render thread needs (farm/index.ts would load the database drivers too).
import { RenderError, type ClaimedJob, type RenderContext, type Renderer, type RenderResult, type WorkerFaultScope } from '../../farm/renderer.ts';
import type { JobProgress, WorkerCapabilities } from '../../farm/types.ts';
import { DEFAULT_MODELS, DEFAULT_VARIATION, INPUT_NAMES, type JobParams, LCM_PRESET_FAMILY, type ModelAbility, type PresetFamily } from '../../farm/job-params.ts';
import { outOfMemoryError, workerMaxPixels } from './gpu-memory.ts';
import { builtinPerceptualGraph } from '../../models/perceptual-graph.ts';
import { mainModelId } from './model-id.ts';

export interface EngineRendererOptions {
  /** ONNX pipeline folder; unset = the built-in demo model. */
  modelDir?: string;
  /** Model id advertised to the farm (jobs name it; BLENDFARM_MODEL_ID); default: "demo", the id a job without a model asks for (mainModelId). */
  modelId?: string;
  ep?: ExecutionProvider;
  deviceId?: number;
  threads?: number;
  lpipsModel?: string;
  /** Largest output frame in pixels this worker accepts. */
  maxPixels?: number;
  /** Human-readable device name for `farm status`. */
  device?: string;
  /** Upscaler for upscale jobs that name none (BLENDFARM_UPSCALER); default esrgan-slim (bench/results/upscale.md). */
  upscaler?: string;
  /** The Stable Diffusion x4 upscaler's ONNX folder (BLENDFARM_X4_UPSCALER_DIR); offered as x4-diffusion when valid. */
  x4UpscalerDir?: string;
  /** An inpainting pipeline (BLENDFARM_INPAINT_MODEL_DIR), offered as model "inpaint" (DEFAULT_MODELS.inpaint) when valid. */
  inpaintModelDir?: string;
  /** An image-variation pipeline (BLENDFARM_VARIATION_MODEL_DIR), offered as model "variation" (DEFAULT_MODELS.variation) when valid. */
  variationModelDir?: string;
}

/** Seams for tests; the worker threads use the defaults. */
export interface EngineRendererHooks {
  /** Loads the metric that measures a transition's gaps; default the engine's createPerceptualMetric. */
  createMetric?: typeof createPerceptualMetric;
}

/**
 * One model this worker has: its folder (undefined: the built-in demo model), the folder's kind as
 * read at start (undefined: the folder could not be read) and what it was offered for.
 */
interface WorkerModel {
  dir?: string;
  kind?: ModelKind;
  /**
   * The folder's family as read at start, or LCM_PRESET_FAMILY for an LCM-distilled UNet (undefined:
   * the built-in demo model); the farm picks a quality preset's steps by it.
   */
  family?: PresetFamily;
  /**
   * The folder's side multiple as read at start (ModelFolder.sizeMultiple: 64 for SD 1.5); undefined
   * for the built-in demo model, whose sides need the farm's floor only, and for a folder that could not be read.
   */
  sizeMultiple?: number;
  abilities: ModelAbility[];
}

/** A model kind as README.md and models/README.md name it, with its article. */
const KIND_NAMES: Record<ModelKind, string> = { text2img: 'a text-to-image', inpaint: 'an inpainting', 'image-variation': 'an image-variation' };

/**
 * A model folder (readModelFolder): its kind and what it can do. A text-to-image
 * pipeline renders text transitions, and with a VAE encoder also transitions from or to a picture;
 * an inpainting pipeline inpainting transitions (and pictures); an image-variation pipeline
 * variation animations. The built-in demo model (no folder) is text-to-image with a VAE encoder.
 */
function readWorkerModel(dir: string | undefined): WorkerModel & { kind: ModelKind } {
  if (dir === undefined) return { kind: 'text2img', abilities: ['text', 'picture'] };
  const folder = readModelFolder(dir);
  const picture: ModelAbility[] = folder.vaeEncoder ? ['picture'] : [];
  const abilities: ModelAbility[] = folder.kind === 'image-variation' ? ['variation'] : folder.kind === 'inpaint' ? ['inpaint', ...picture] : ['text', ...picture];
  const family = folder.timeCondProjDim !== undefined ? LCM_PRESET_FAMILY : folder.family;
  return { dir, kind: folder.kind, family, sizeMultiple: folder.sizeMultiple, abilities };
}

/**
 * The models a worker offers, by id: the main one (BLENDFARM_MODEL_DIR, id `modelId`), and the
 * inpainting and variation models when their folders are set and valid (a bad folder is left out,
 * with the reason in the log, like the x4 upscaler). A main folder that cannot be read is offered
 * for text transitions, its kind unknown: loading it reads the folder again.
 */
function workerModels(opts: EngineRendererOptions, mainId: string): Map<string, WorkerModel> {
  const models = new Map<string, WorkerModel>();
  let main: WorkerModel;
  try {
    main = readWorkerModel(opts.modelDir);
  } catch {
    // The warm-up (and each job) reads the folder again when it loads the model, and reports the
    // folder's problem while it lasts; the kind is not guessed, so a folder fixed later loads with
    // its own pipeline.
    main = { dir: opts.modelDir, abilities: ['text'] };
  }
  models.set(mainId, main);
  const extra: Array<[string, string | undefined, string, ModelAbility]> = [
    [DEFAULT_MODELS.inpaint, opts.inpaintModelDir, 'BLENDFARM_INPAINT_MODEL_DIR', 'inpaint'],
    [DEFAULT_MODELS.variation, opts.variationModelDir, 'BLENDFARM_VARIATION_MODEL_DIR', 'variation'],
  ];
  for (const [id, dir, setting, needed] of extra) {
    if (!dir) continue;
    try {
      const model = readWorkerModel(dir);
      if (!model.abilities.includes(needed)) throw new Error(`is ${KIND_NAMES[model.kind]} model, not ${KIND_NAMES[needed === 'inpaint' ? 'inpaint' : 'image-variation']} one`);
      models.set(id, model);
    } catch (err) {
      console.warn(`[worker] not offering model "${id}": ${setting} ${(err as Error).message}`);
    }
  }
  return models;
}

export const X4_DIFFUSION = 'x4-diffusion';
/** Best first, after the operator's choice: what an upscale job naming no upscaler falls back to. */
const UPSCALER_QUALITY_ORDER = [X4_DIFFUSION, 'esrgan-thick', 'esrgan-medium', 'esrgan-slim'];

/**
 * The upscalers this worker offers, best first: the chosen one (opts.upscaler, default esrgan-slim,
 * the benchmark's pick: nearly all of the bigger networks' quality at a fraction of their time), then
 * the others it has in quality order. It has each super-resolution network whose npm package is
 * installed (converted to ONNX on first use), and x4-diffusion when x4UpscalerDir is a valid folder.
 */
export function workerUpscalers(opts: Pick<EngineRendererOptions, 'upscaler' | 'x4UpscalerDir'>): string[] {
  const have = availableSuperResolutionModels()
    .filter((m) => m.installed)
    .map((m) => m.name);
  if (opts.x4UpscalerDir) {
    try {
      readDiffusionUpscalerFolder(opts.x4UpscalerDir);
      have.push(X4_DIFFUSION);
    } catch (err) {
      // The worker still serves the other upscalers; the log says why this one is missing.
      console.warn(`[worker] not offering ${X4_DIFFUSION}: BLENDFARM_X4_UPSCALER_DIR ${(err as Error).message}`);
    }
  }
  const chosen = opts.upscaler ?? DEFAULT_SUPER_RESOLUTION_MODEL;
  if (opts.upscaler !== undefined && !have.includes(chosen)) {
    const known = [...SUPER_RESOLUTION_MODELS.map((m) => m.name), X4_DIFFUSION];
    throw new RenderError(
      known.includes(chosen)
        ? `BLENDFARM_UPSCALER is ${chosen}, which this worker does not have (it has ${have.join(', ') || 'none'}); ${chosen === X4_DIFFUSION ? 'set BLENDFARM_X4_UPSCALER_DIR to its ONNX folder' : `install it (${SUPER_RESOLUTION_MODELS.find((m) => m.name === chosen)?.about ?? 'npm ci'})`} or pick one it has`
        : `BLENDFARM_UPSCALER is "${chosen}", which is no upscaler; use one of ${known.join(', ')}`,
      { retryable: false },
    );
  }
  const rank = (id: string) => (id === chosen ? -1 : UPSCALER_QUALITY_ORDER.indexOf(id) === -1 ? UPSCALER_QUALITY_ORDER.length : UPSCALER_QUALITY_ORDER.indexOf(id));
  return have.sort((a, b) => rank(a) - rank(b));
}

/** The upscaler for an upscale job: the one it names, else the first (best) of `offered` that makes its factor. */
export function chooseUpscaler(named: string | undefined, factor: number, offered: readonly string[]): string {
  const id = named ?? offered.find((u) => upscalerMakes(u, factor));
  if (id === undefined || !offered.includes(id)) {
    throw new RenderError(`this worker cannot upscale ${factor}x${named ? ` with ${named}` : ''} (it has ${offered.join(', ') || 'no upscalers'})`, { retryable: false });
  }
  return id;
}

type LoadedUpscaler = FrameUpscaler & { release(): Promise<void>; readonly ep?: string };

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
  // Pictures: the files as uploaded (stored with the job), checked and cover-cropped by the engine.
  if (p.images?.length) request.images = p.images.map((img) => ({ index: img.index, image: inputOf(job, INPUT_NAMES.image(img.index)), strength: img.strength }));
  if (p.inpaint) request.inpaint = { image: inputOf(job, INPUT_NAMES.inpaintImage), mask: p.inpaint.mask === 'picture' ? inputOf(job, INPUT_NAMES.inpaintMask) : p.inpaint.mask };
  if (request.images || request.inpaint) request.imageLimits = IMAGE_LIMITS;
  if (job.kind === 'extend') {
    const parent = job.parent;
    if (!parent?.movie) throw new RenderError('the movie to extend no longer exists', { retryable: false, userMessage: true });
    const movie = parent.movie;
    const images = movie.images?.map((img) => {
      const name = INPUT_NAMES.image(img.index);
      const input = parent.pictures && Object.hasOwn(parent.pictures, name) ? parent.pictures[name] : undefined;
      if (!input) throw new RenderError(`the picture for prompt ${img.index + 1} of the movie to extend (job ${parent.id}) is missing; make a new /movie with the picture instead`, { retryable: false, userMessage: true });
      return { index: img.index, image: input.bytes, strength: img.strength };
    });
    return { ...request, extend: { prompts: movie.prompts, seeds: movie.seeds, video: parent.artifact?.bytes, ...(images ? { images } : {}) } };
  }
  return request;
}

/** A picture stored with the job (ClaimedJob.inputs, from job_inputs). */
function inputOf(job: ClaimedJob, name: string): Uint8Array {
  const input = job.inputs && Object.hasOwn(job.inputs, name) ? job.inputs[name] : undefined;
  if (!input) throw new RenderError(`the picture ${name} of job ${job.id} is missing from the database; submit the job again with the picture`, { retryable: false, userMessage: true });
  return input.bytes;
}

/**
 * A vary job's parameters -> the engine's variation request (a rename): the start picture, the
 * animation's shape, the guidance prompts (none given: the engine's defaults; a negative prompt
 * steers away), the job's seed, size, steps, fps and format.
 */
function variationRequestFor(job: ClaimedJob): VariationRequest {
  const p: JobParams = job.params;
  const v = p.variation ?? DEFAULT_VARIATION;
  return {
    image: inputOf(job, INPUT_NAMES.startImage),
    variations: v.variations,
    intermediate: v.intermediate,
    noiseShift: v.noiseShift,
    steps: p.steps,
    guidance: p.guidance,
    ...(p.prompts.length ? { positivePrompts: p.prompts } : {}),
    ...(p.negativePrompt ? { negativePrompts: [p.negativePrompt] } : {}),
    seed: p.seeds[0],
    width: p.width,
    height: p.height,
    fps: p.fps,
    format: p.format,
    maxBytes: p.maxBytes,
    imageLimits: IMAGE_LIMITS,
  };
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
  /** Loaded pipelines by model id, kept for the next jobs. */
  private readonly pipes = new Map<string, Promise<StableDiffusionPipeline | ImageVariationPipeline>>();
  private models?: Map<string, WorkerModel>;
  /** The gap metric: loaded, or loading; never a failed load (the next job tries again). */
  private metric?: Promise<PerceptualMetric>;
  private readonly modelId: string;
  private offered?: string[];
  /** Loaded upscalers by id and scale, kept for the next jobs like the pipeline. */
  private readonly upscalers = new Map<string, Promise<LoadedUpscaler>>();
  /** The "restart to offer" lines logged, by model id: each said once. */
  private readonly restartNotices = new Map<string, string>();

  constructor(
    private readonly opts: EngineRendererOptions,
    private readonly hooks: EngineRendererHooks = {},
  ) {
    this.modelId = mainModelId(opts);
  }

  private offeredModels(): Map<string, WorkerModel> {
    this.models ??= workerModels(this.opts, this.modelId);
    return this.models;
  }

  capabilities(): WorkerCapabilities {
    const ep = this.opts.ep ?? 'cpu';
    const models = this.offeredModels();
    return {
      models: [...models.keys()],
      modelAbilities: Object.fromEntries([...models].map(([id, m]) => [id, m.abilities])),
      // Each folder's family: a quality preset on a turbo or LCM model renders the model's few steps (farm FAMILY_PRESET_STEPS).
      modelFamilies: Object.fromEntries([...models].flatMap(([id, m]) => (m.family ? [[id, m.family]] : []))),
      // Each folder's side multiple: the farm refuses other sizes at submission and never hands them to this worker.
      modelSizeMultiples: Object.fromEntries([...models].flatMap(([id, m]) => (m.sizeMultiple !== undefined ? [[id, m.sizeMultiple]] : []))),
      // Upscales of the largest sizes (768x512 x2 per side) must fit; budgets bound the cost.
      // The maxPixels setting, else what fits the GPU's memory (apps/worker/gpu-memory.ts).
      maxPixels: workerMaxPixels(this.opts),
      executionProvider: ep,
      device: this.opts.device,
      upscalers: this.offeredUpscalers(),
    };
  }

  private offeredUpscalers(): string[] {
    this.offered ??= workerUpscalers(this.opts);
    return this.offered;
  }

  private upscaler(id: string, factor: number): Promise<LoadedUpscaler> {
    const key = `${id}@${factor}`;
    let loading = this.upscalers.get(key);
    if (!loading) {
      const session = { ep: this.opts.ep, deviceId: this.opts.deviceId, threads: this.opts.threads };
      loading =
        id === X4_DIFFUSION
          ? DiffusionUpscaler.load(this.opts.x4UpscalerDir!, session)
          : ensureSuperResolutionModel(id, factor).then((dir) => SuperResolutionUpscaler.load(dir, session));
      this.upscalers.set(key, loading);
      // A failed load is not cached: the next job tries again.
      loading.catch(() => this.upscalers.delete(key));
    }
    return loading;
  }

  /**
   * An upscale job: the parent's finished video, every frame upscaled `upscaleFactor` times per side
   * by the chosen upscaler, encoded in the job's format under its maxBytes. When even a re-encode at a
   * lower bitrate does not fit, the encoder steps the size down (3/4, 1/2, ... of the full size) and
   * the largest that fits is delivered: metadata.scale says what was delivered, reducedFrom what was asked.
   */
  private async upscale(job: ClaimedJob, ctx: RenderContext, started: number): Promise<RenderResult> {
    const source = job.parent?.artifact;
    if (!source) throw new RenderError(`the video to upscale (job ${job.parentJobId}) is gone; render it again and upscale the new one`, { retryable: false, userMessage: true });
    const factor = job.params.upscaleFactor ?? DEFAULT_UPSCALE_FACTOR;
    const id = chooseUpscaler(job.params.upscaler, factor, this.offeredUpscalers());
    const label = `${id} ${factor}×`;
    ctx.onProgress({ stage: 'loading', fraction: 0, message: label });
    const loaded = await this.upscaler(id, factor);
    const p = job.params;
    // The diffusion upscaler takes the frames as one transition between the movie's first and last prompts.
    const frameUpscaler: FrameUpscaler =
      loaded instanceof DiffusionUpscaler
        ? {
            name: loaded.name,
            scale: loaded.scale,
            upscaleFrames: (frames, o) => loaded.upscaleFrames(frames, { ...o, promptA: p.prompts[0], promptB: p.prompts.at(-1), negativePrompt: p.negativePrompt, seed: p.seeds[0] }),
          }
        : loaded;
    const out = await upscaleVideo(frameUpscaler, source.bytes, {
      format: p.format,
      maxBytes: p.maxBytes,
      signal: ctx.signal,
      onFrame: (done, total) => ctx.onProgress({ stage: 'upscaling', fraction: 0.9 * (done / total), framesDone: done, framesTotal: total, message: label }),
    });
    const scale = Math.round((out.width / out.source.width) * 100) / 100;
    return {
      video: out.bytes,
      format: out.format,
      metadata: {
        upscaler: id,
        scale,
        requestedScale: factor,
        ...(scale < factor ? { reducedFrom: factor } : {}),
        // Re-encoded (lower bitrate or size) to fit maxBytes.
        shrunk: out.attempts.length > 1,
        seeds: Array.isArray(source.meta.seeds) ? source.meta.seeds : p.seeds,
        sourceWidth: out.source.width,
        sourceHeight: out.source.height,
        width: out.width,
        height: out.height,
        frames: out.frames,
        fps: out.fps,
        durationSeconds: out.durationSeconds,
        sizeBytes: out.sizeBytes,
        renderSeconds: (performance.now() - started) / 1000,
        ep: loaded.ep ?? this.opts.ep ?? 'cpu',
      },
      gpuSeconds: (performance.now() - started) / 1000,
    };
  }

  /** Loads this worker's main model (the one jobs name by default) before the first job. */
  async warmUp(): Promise<void> {
    await this.pipeline(this.modelId);
  }

  /** The pipeline of model `id` (this worker's main model, or its inpainting or variation model). */
  private pipeline(id: string): Promise<StableDiffusionPipeline | ImageVariationPipeline> {
    const model = this.offeredModels().get(id);
    if (!model) return Promise.reject(new RenderError(`this worker has no model "${id}" (it has ${[...this.offeredModels().keys()].join(', ')})`, { retryable: false }));
    let loading = this.pipes.get(id);
    if (!loading) {
      const session = { ep: this.opts.ep, deviceId: this.opts.deviceId, threads: this.opts.threads };
      loading = (async () => {
        if (model.dir === undefined) return StableDiffusionPipeline.load(await ensureDemoModel(DEMO_MODEL_DIR), session);
        // Read again: the folder may have been fixed (or changed) since start-up.
        const now = readWorkerModel(model.dir);
        this.noticeAbilities(id, model, now);
        return now.kind === 'image-variation' ? ImageVariationPipeline.load(model.dir, session) : StableDiffusionPipeline.load(model.dir, session);
      })();
      this.pipes.set(id, loading);
      // A failed load is not cached: the next job tries again (e.g. after the files are fixed).
      loading.catch(() => this.pipes.delete(id));
    }
    return loading;
  }

  /**
   * A model whose folder now reads as able to do other things than it was offered for at start
   * (its folder could not be read then, or was changed): one line saying a restart offers them,
   * since the farm routes jobs by what the worker advertised when it started.
   */
  private noticeAbilities(id: string, offered: WorkerModel, now: WorkerModel & { kind: ModelKind }): void {
    const same = now.abilities.length === offered.abilities.length && now.abilities.every((a) => offered.abilities.includes(a));
    const key = now.abilities.join(',');
    if (same || this.restartNotices.get(id) === key) return;
    this.restartNotices.set(id, key);
    console.warn(
      `[worker] model "${id}" (${offered.dir}) is ${KIND_NAMES[now.kind]} model for ${now.abilities.join(', ')}, but this worker offered it for ${offered.abilities.join(', ')} when it started; restart the worker so that it offers the model for ${now.abilities.join(', ')}`,
    );
  }

  /**
   * The metric that measures a transition's gaps, loaded on the first job. When the built-in
   * metric's graph does not open on the GPU (out of memory, a provider problem), the engine
   * measures with the JavaScript metric instead (the same values, on the CPU) and the worker logs
   * one warning line. An LPIPS model that does not load fails the job (its values are not the
   * built-in metric's), and the next job tries again.
   */
  private gapMetric(): Promise<PerceptualMetric> {
    if (!this.metric) {
      const create = this.hooks.createMetric ?? createPerceptualMetric;
      const ep = this.opts.ep ?? 'cpu';
      const onFallback = (reason: string) =>
        console.warn(`[worker] the gap metric did not load on ${ep} (${reason}); measuring gaps with the JavaScript metric instead (same values, on the CPU)`);
      const loading = create(this.opts.lpipsModel, { ep: this.opts.ep, deviceId: this.opts.deviceId, onFallback }, builtinPerceptualGraph);
      this.metric = loading;
      // A failed load is not kept: the next job loads it again.
      loading.catch(() => {
        if (this.metric === loading) this.metric = undefined;
      });
    }
    return this.metric;
  }

  /** A vary job: a variation animation of the job's start picture on the image-variation model. */
  private async vary(job: ClaimedJob, ctx: RenderContext, started: number): Promise<RenderResult> {
    const request = variationRequestFor(job);
    const pipe = await this.pipeline(job.model);
    if (!(pipe instanceof ImageVariationPipeline)) throw new RenderError(`model "${job.model}" on this worker is no image-variation model`, { retryable: false });
    const out = await renderVariationVideo(pipe, request, {
      signal: ctx.signal,
      onProgress: (p) => ctx.onProgress({ stage: p.fraction >= 0.95 ? 'encoding' : 'variations', fraction: p.fraction, framesDone: p.framesDone, framesTotal: p.framesTotal }),
    });
    return {
      video: out.video,
      format: out.format,
      metadata: {
        seeds: [out.seed],
        frames: out.frames,
        variations: out.variations,
        durationSeconds: out.durationSeconds,
        width: out.width,
        height: out.height,
        sizeBytes: out.sizeBytes,
        positiveSimilarity: out.positiveSimilarity,
        renderSeconds: out.renderSeconds,
        encodeSeconds: out.encodeSeconds,
        // As for transitions: apps/http/render-metrics.ts observes them.
        timings: out.timings,
        model: job.model,
        ep: this.opts.ep ?? 'cpu',
      },
      gpuSeconds: (performance.now() - started) / 1000,
    };
  }

  async render(job: ClaimedJob, ctx: RenderContext): Promise<RenderResult> {
    const started = performance.now();
    try {
      if (job.kind === 'upscale') return await this.upscale(job, ctx, started);
      if (job.kind === 'vary') return await this.vary(job, ctx, started);
      const request = renderRequestFor(job);
      const pipe = await this.pipeline(job.model);
      if (!(pipe instanceof StableDiffusionPipeline)) throw new RenderError(`model "${job.model}" on this worker is an image-variation model; it makes /vary animations only`, { retryable: false });
      const metric = await this.gapMetric();
      const out = await renderVideo(pipe, request, { signal: ctx.signal, metric, onProgress: (p) => ctx.onProgress(jobProgress(p)) });
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
          // UNet runs by batch size and VAE decodes, with their milliseconds: apps/http/render-metrics.ts observes them.
          timings: out.timings,
          model: pipe.folder.name,
          ep: pipe.ep,
        },
        // Wall time of the render on this worker's device is what the job is charged.
        gpuSeconds: (performance.now() - started) / 1000,
        // E.g. a prompt longer than the text encoder reads: stored with the result, shown to the user.
        warnings: out.warnings,
      };
    } catch (err) {
      if (err instanceof RenderError || ctx.signal.aborted) throw err;
      if (isOutOfMemory(err)) throw outOfMemoryError(err, job.params, workerMaxPixels(this.opts));
      // This worker's own faults, not the job's: its model's files, its execution provider (the
      // job's model, or the upscaler an upscale loads), its ffmpeg. The farm hands the job back
      // without using an attempt, for another worker, and stops claiming what this one cannot do.
      const fault = workerFaultScope(err);
      if (fault) throw new RenderError((err as Error).message, { cause: err, workerFault: fault });
      // Bad input fails the same way on every attempt: do not retry it.
      const permanent =
        err instanceof InvalidRequestError ||
        err instanceof ModelOutputError ||
        err instanceof RangeError ||
        err instanceof VideoTooLargeError ||
        err instanceof UpscalerNotAvailableError;
      // The engine's refusals of a request say what to change, for the job's owner; every other message is for the operator.
      // They are the request's own fault, too: the job is charged the time it ran (a gif that cannot fit its maxBytes fails
      // only after the whole render). A model, driver or file fault, or out of memory on this worker, is the farm's: refunded.
      const forOwner = err instanceof InvalidRequestError || err instanceof VideoTooLargeError;
      throw new RenderError((err as Error).message, { retryable: !permanent, cause: err, ...(forOwner ? { userMessage: true as const, requestFault: true } : {}) });
    }
  }

  async close(): Promise<void> {
    for (const loading of this.pipes.values()) await (await loading.catch(() => undefined))?.release();
    this.pipes.clear();
    await (await this.metric?.catch(() => undefined))?.release?.();
    for (const loading of this.upscalers.values()) await (await loading.catch(() => undefined))?.release();
    this.upscalers.clear();
  }
}

/**
 * Whether an engine error is this worker's fault rather than the job's: 'model' for the model (or
 * upscaler) files and the execution provider, 'worker' for a missing ffmpeg or ffprobe (the lookup's
 * messages, engine/video/ffmpeg-path.ts, or a binary gone since: spawn ENOENT); undefined otherwise.
 */
export function workerFaultScope(err: unknown): WorkerFaultScope | undefined {
  if (err instanceof ModelFileError || err instanceof ExecutionProviderError) return 'model';
  const message = err instanceof Error ? err.message : '';
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const syscall = String((err as NodeJS.ErrnoException | undefined)?.syscall ?? '');
  if (code === 'ENOENT' && syscall.startsWith('spawn')) return 'worker';
  if (/\b(FFMPEG_PATH|FFPROBE_PATH) is set to .*(but no file exists there|which is not executable)|\b(ffmpeg|ffprobe) not found: install /.test(message)) return 'worker';
  return undefined;
}

/** The factory thread-renderer.ts calls in each render thread; `options` are EngineRendererOptions (`hooks`: tests only). */
export function createRenderer(options: unknown, hooks?: EngineRendererHooks): Renderer {
  return new EngineRenderer((options ?? {}) as EngineRendererOptions, hooks);
}

export default createRenderer;
