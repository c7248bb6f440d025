// Which renderer a worker process runs, from its settings (loadConfig()'s result). The engine
// adapter is apps/worker/engine-renderer.ts (a module exporting createRenderer(options): Renderer);
// any other module with that export can be named with BLENDFARM_RENDERER, e.g. the test double.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../../config/index.ts';
import { createThreadRenderer, type ClaimedJob, type Renderer, type ThreadRenderer, type WorkerCapabilities } from '../../farm/index.ts';
import type { EngineRendererOptions } from './engine-renderer.ts';
import { mainModelId } from './model-id.ts';
import type { ModelReadiness } from './model-readiness.ts';

const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const DEFAULT_RENDERER_MODULE = path.join(PROJECT_ROOT, 'apps', 'worker', 'engine-renderer.ts');
export const FAKE_RENDERER_MODULE = path.join(PROJECT_ROOT, 'farm', 'fake-renderer.ts');

export interface RendererSpec {
  /** Absolute path of the module. */
  module: string;
  /** Passed to the module's createRenderer in each render thread (plain data). */
  options: unknown;
  /** Render threads = concurrent jobs (one per GPU). */
  threads: number;
}

/** The engine adapter's options from the model and execution-provider settings. */
export function engineRendererOptions(settings: Config): EngineRendererOptions {
  return {
    modelDir: settings.modelDir,
    modelId: settings.modelId,
    ep: settings.executionProvider,
    deviceId: settings.deviceId,
    threads: settings.threads,
    lpipsModel: settings.lpipsModel,
    upscaler: settings.upscaler,
    x4UpscalerDir: settings.x4UpscalerDir,
    inpaintModelDir: settings.inpaintModelDir,
    variationModelDir: settings.variationModelDir,
  };
}

/**
 * BLENDFARM_RENDERER (default: the engine adapter), its options (BLENDFARM_RENDERER_OPTIONS; for
 * the engine adapter on top of those built from the model and execution-provider settings) and
 * BLENDFARM_WORKER_CONCURRENCY render threads.
 */
export function rendererSpecFrom(settings: Config): RendererSpec {
  const module = settings.renderer ? path.resolve(settings.renderer) : DEFAULT_RENDERER_MODULE;
  if (!fs.existsSync(module)) {
    throw new Error(
      `No renderer module at ${module}. Set BLENDFARM_RENDERER to a module exporting createRenderer(options) ` +
        `(BLENDFARM_RENDERER=farm/fake-renderer.ts runs the test double that makes placeholder files).`,
    );
  }
  const given = settings.rendererOptions ?? {};
  const options = module === DEFAULT_RENDERER_MODULE ? { ...engineRendererOptions(settings), ...(given as object) } : given;
  return { module, options, threads: settings.workerConcurrency ?? 1 };
}

export function loadRenderer(spec: RendererSpec, abortGraceMs?: number): Promise<ThreadRenderer> {
  return createThreadRenderer({ module: spec.module, rendererOptions: spec.options, threads: spec.threads, abortGraceMs });
}

/**
 * Which jobs use the model the renderer's warm-up loads (ModelReadiness.watch): the engine
 * adapter's warm-up loads its main model (mainModelId: the modelId option, BLENDFARM_MODEL_ID, else
 * "demo", the id a job without a model asks for), which jobs naming that model load too — except upscale jobs, which load an
 * upscaler whatever model they name. An inpainting or /vary job on the worker's other models loads
 * those instead. Any other renderer module: the first model it advertises ("*": any model).
 */
export function warmedModelJobs(spec: RendererSpec, capabilities: WorkerCapabilities): (job: ClaimedJob) => boolean {
  const main = warmedModel(spec, capabilities);
  return (job) => job.kind !== 'upscale' && main !== undefined && (main === '*' || job.model === main);
}

/** The id of the model the renderer's warm-up loads: the engine adapter's main model (mainModelId), another module's first advertised one ("*": any). */
export function warmedModel(spec: RendererSpec, capabilities: WorkerCapabilities): string | undefined {
  return spec.module === DEFAULT_RENDERER_MODULE ? mainModelId(spec.options as EngineRendererOptions) : capabilities.models[0];
}

export interface WatchedRenderer {
  /**
   * What the farm worker runs: the loaded renderer, `wrap`ped (metrics), watched by the readiness
   * (ModelReadiness.watch): while the warmed model is known not to load it reports it unavailable
   * (Renderer.unavailableModels), and the worker claims no job on it.
   */
  renderer: Renderer;
  /** Loads the model now (the loaded renderer's warm-up) and again after each failure until it loads (ModelReadiness.start). */
  start(): void;
}

/**
 * A loaded renderer (loadRenderer) with its model's readiness: every process that runs farm
 * workers on it — `npm run worker` and the local workers of `npm start` (not yet `farm submit
 * --wait` on the embedded database, which loads its renderer unwatched for its one job) — so a model that does not load is claimed by none of them while it
 * does not. `readiness.stop()` ends the retries when the workers stop.
 */
export function watchRenderer(spec: RendererSpec, loaded: Renderer, readiness: ModelReadiness, wrap: (renderer: Renderer) => Renderer = (renderer) => renderer): WatchedRenderer {
  const capabilities = loaded.capabilities();
  const renderer = readiness.watch(wrap(loaded), { usesWarmedModel: warmedModelJobs(spec, capabilities), model: warmedModel(spec, capabilities) });
  return { renderer, start: () => readiness.start(loaded.warmUp && (() => loaded.warmUp!())) };
}
