// One-process mode: N workers inside the current process, sharing its database handle. This
// is how a single machine runs with embedded PGlite (which only one process may open): the bot
// and its workers live together. With Postgres the same workers can instead run as separate
// `npm run worker` processes on any number of machines.
import type { FarmContext } from './config.ts';
import type { Renderer } from './renderer.ts';
import { FarmWorker, type StopMode } from './worker.ts';

export interface LocalWorkersOptions {
  /** Workers to start (default 1). */
  count?: number;
  /**
   * One renderer shared by all workers, or a factory giving each worker its own. The workers claim
   * no job on a model it reports it cannot render (Renderer.unavailableModels): an app passes its
   * loaded renderer watched by the model's readiness (apps/worker/load-renderer.ts watchRenderer),
   * as `npm run worker` does, so a model that failed to load is not claimed here either.
   */
  renderer: Renderer | (() => Renderer | Promise<Renderer>);
  /** Concurrent jobs per worker (default 1). */
  concurrency?: number;
  log?: (line: string) => void;
  /** Worker ids become `${idPrefix}-${n}`. */
  idPrefix?: string;
}

export interface LocalWorkers {
  workers: FarmWorker[];
  stop(mode?: StopMode, graceMs?: number): Promise<void>;
}

export async function startLocalWorkers(farm: FarmContext, options: LocalWorkersOptions): Promise<LocalWorkers> {
  const count = Math.max(1, options.count ?? 1);
  const prefix = options.idPrefix ?? `local-${process.pid}`;
  const workers: FarmWorker[] = [];
  for (let n = 1; n <= count; n++) {
    const renderer = typeof options.renderer === 'function' ? await options.renderer() : options.renderer;
    const worker = new FarmWorker({ farm, renderer, id: `${prefix}-${n}`, concurrency: options.concurrency, log: options.log });
    await worker.start();
    workers.push(worker);
  }
  return {
    workers,
    async stop(mode = 'finish', graceMs) {
      await Promise.all(workers.map((worker) => worker.stop(mode, graceMs)));
    },
  };
}
