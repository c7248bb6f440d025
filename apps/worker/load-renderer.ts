// Which renderer a worker process runs, from the environment. The engine adapter is expected at
// apps/worker/engine-renderer.ts (a module exporting createRenderer(options): Renderer); any other
// module with that export can be named with BLENDFARM_RENDERER, e.g. the test double.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createThreadRenderer, type ThreadRenderer } from '../../farm/thread-renderer.ts';

const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const DEFAULT_RENDERER_MODULE = path.join(PROJECT_ROOT, 'apps', 'worker', 'engine-renderer.ts');
export const FAKE_RENDERER_MODULE = path.join(PROJECT_ROOT, 'farm', 'fake-renderer.ts');

export interface RendererSpec {
  /** Absolute path of the module. */
  module: string;
  options: unknown;
  /** Render threads = concurrent jobs (one per GPU). */
  threads: number;
}

export function rendererSpecFromEnv(env: NodeJS.ProcessEnv = process.env): RendererSpec {
  const module = env.BLENDFARM_RENDERER ? path.resolve(env.BLENDFARM_RENDERER) : DEFAULT_RENDERER_MODULE;
  if (!fs.existsSync(module)) {
    throw new Error(
      `No renderer module at ${module}. Set BLENDFARM_RENDERER to a module exporting createRenderer(options) ` +
        `(BLENDFARM_RENDERER=farm/fake-renderer.ts runs the test double that makes placeholder files).`,
    );
  }
  let options: unknown = {};
  if (env.BLENDFARM_RENDERER_OPTIONS) {
    try {
      options = JSON.parse(env.BLENDFARM_RENDERER_OPTIONS);
    } catch (error) {
      throw new Error(`BLENDFARM_RENDERER_OPTIONS must be JSON (${(error as Error).message}).`);
    }
  }
  const threads = Number(env.BLENDFARM_WORKER_CONCURRENCY ?? 1);
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`BLENDFARM_WORKER_CONCURRENCY must be a whole number >= 1, one per GPU (got "${env.BLENDFARM_WORKER_CONCURRENCY}").`);
  }
  return { module, options, threads };
}

export function loadRenderer(spec: RendererSpec, abortGraceMs?: number): Promise<ThreadRenderer> {
  return createThreadRenderer({ module: spec.module, rendererOptions: spec.options, threads: spec.threads, abortGraceMs });
}
