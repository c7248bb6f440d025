/**
 * npm start: the whole thing on one machine. The bot, an embedded database (PGlite, unless
 * DATABASE_URL points at Postgres) and a render worker in this process, with the engine in worker
 * threads. With Postgres, more workers can join from other machines with `npm run worker`.
 */
import { openDatabase } from '../../db/client.ts';
import { loadFarmConfig } from '../../farm/config.ts';
import { startLocalWorkers, type LocalWorkers } from '../../farm/local.ts';
import { loadRenderer, rendererSpecFromEnv } from '../worker/load-renderer.ts';
import { startBot } from '../../bot/bot.ts';
import { loadBotConfig } from './bot-config.ts';

async function main(): Promise<void> {
  const config = loadBotConfig();
  const farmConfig = loadFarmConfig();
  const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  const farm = { db, config: farmConfig };
  console.log(`[main] database: ${db.location}`);

  // One-process mode runs a worker here; with Postgres it is optional (BLENDFARM_LOCAL_WORKERS=0).
  const localWorkers = config.localWorkers ?? (db.kind === 'pglite' ? 1 : 0);
  let workers: LocalWorkers | undefined;
  if (localWorkers > 0) {
    const spec = rendererSpecFromEnv();
    const renderer = await loadRenderer(spec, farmConfig.abortGraceMs);
    workers = await startLocalWorkers(farm, { renderer, count: localWorkers, concurrency: spec.threads, log: (l) => console.log(l) });
    console.log(`[main] ${localWorkers} local render worker(s) on ${config.executionProvider ?? 'cpu'}${config.modelDir ? ` with ${config.modelDir}` : ' with the built-in demo model'}`);
  }

  const bot = await startBot({ token: config.discordToken, apiBase: config.discordApiBase, farm });
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`[main] ${signal}: stopping (running renders finish or are handed back)`);
    await bot.stop();
    await workers?.stop('release');
    await db.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  if (process.env.DEBUG) console.error(err);
  process.exit(1);
});
