// `npm run worker`: one render worker process. Configuration comes from the environment:
//   DATABASE_URL                  Postgres (unset: embedded PGlite, which one process may open)
//   BLENDFARM_RENDERER            renderer module (default apps/worker/engine-renderer.ts)
//   BLENDFARM_RENDERER_OPTIONS    JSON passed to its createRenderer(options)
//   BLENDFARM_WORKER_CONCURRENCY  concurrent renders, one per GPU (default 1)
//   BLENDFARM_WORKER_ID           stable id (default host-pid-random)
//   BLENDFARM_SHUTDOWN_GRACE_SECONDS  how long SIGTERM waits for running renders (default 30)
// plus the farm settings in farm/config.ts (lease, heartbeat, artifact directory, ...).
// SIGTERM/SIGINT: stop claiming, finish running jobs within the grace period, hand back the
// rest. A second signal hands everything back at once.
import { loadConfig, loadDotEnv } from '../../config/index.ts';
import { openDatabase } from '../../db/client.ts';
import { loadFarmConfig } from '../../farm/config.ts';
import { loadRenderer, rendererSpecFromEnv } from './load-renderer.ts';
import { startWorker } from '../../farm/worker.ts';

async function main(): Promise<void> {
  // Every setting is checked first, with one line per bad value.
  loadDotEnv();
  loadConfig();
  const config = loadFarmConfig();
  const spec = rendererSpecFromEnv();
  const graceSeconds = Number(process.env.BLENDFARM_SHUTDOWN_GRACE_SECONDS ?? 30);
  const db = await openDatabase();
  const renderer = await loadRenderer(spec, config.abortGraceMs).catch(async (error: unknown) => {
    await db.close();
    throw error;
  });
  const worker = await startWorker({
    farm: { db, config },
    renderer,
    concurrency: spec.threads,
    id: process.env.BLENDFARM_WORKER_ID || undefined,
  });
  console.log(`[worker ${worker.id}] database: ${db.location}; renderer: ${spec.module}`);

  let signals = 0;
  const shutdown = (signal: NodeJS.Signals): void => {
    signals++;
    console.log(`[worker ${worker.id}] ${signal}: ${signals === 1 ? `finishing running jobs (up to ${graceSeconds} s)` : 'handing jobs back now'}`);
    const stopping = worker.stop(signals === 1 ? 'finish' : 'release', graceSeconds * 1000);
    if (signals > 1) return;
    void stopping
      .then(() => renderer.close())
      .then(() => db.close())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          console.error(`[worker ${worker.id}] shutdown failed: ${(error as Error).message}`);
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((error: unknown) => {
  console.error((error as Error).message);
  process.exit(1);
});
