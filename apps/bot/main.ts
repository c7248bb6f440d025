/**
 * npm start: the whole thing on one machine. The bot, an embedded database (PGlite, unless
 * DATABASE_URL points at Postgres) and a render worker in this process, with the engine in worker
 * threads. With Postgres, more workers can join from other machines with `npm run worker`.
 */
import { openDatabase } from '../../db/client.ts';
import { farmConfigFrom } from '../../farm/config.ts';
import { startLocalWorkers, type LocalWorkers } from '../../farm/local.ts';
import { type Housekeeping, startHousekeeping } from '../../farm/index.ts';
import { loadRenderer, rendererSpecFrom } from '../worker/load-renderer.ts';
import { startBot } from '../../bot/bot.ts';
import { loadBotConfig, loginFailureText } from './bot-config.ts';
import { createLogger, lineLogger, routeConsole, secretsOf } from '../log.ts';
import { createRegistry, type Ops, startOps, watchDiscordRest } from '../http/ops.ts';
import { renderMetrics } from '../http/render-metrics.ts';
import { opsListen, shardOf } from '../http/listen.ts';
import { SETTINGS_DOCS, settingLines, settingsOnlyArguments } from '../cli-kit.ts';

const USAGE = `Usage: npm start

Runs the Discord bot, an embedded database (PGlite, unless DATABASE_URL is set) and, by default,
one render worker in this process. It takes no arguments; the settings it reads most:

${settingLines(['discordToken', 'discordApiBase', 'databaseUrl', 'dataDir', 'localWorkers', 'modelDir', 'executionProvider', 'httpPort', 'httpHost', 'statusToken', 'logLevel', 'logFormat'])}

plus the farm's settings (budgets, leases, retention: BLENDFARM_*). ${SETTINGS_DOCS}
`;

settingsOnlyArguments('npm start', USAGE);

async function main(): Promise<void> {
  const config = loadBotConfig();
  // One JSON line per event (readable on a terminal); secrets are scrubbed from every line.
  const logger = createLogger({ name: 'bot', level: config.logLevel, format: config.logFormat, secrets: secretsOf(config) });
  routeConsole(logger);
  const farmConfig = farmConfigFrom(config);
  const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  const farm = { db, config: farmConfig };
  console.log(`[main] database: ${db.location}`);

  // Metrics, health and the status page (BLENDFARM_HTTP_PORT; README "Running in production").
  // Under start:sharded (`managed`) only shard 0 counts job events and keeps house, so nothing is
  // counted or done twice.
  const shard = shardOf();
  const managed = shard !== undefined && process.send !== undefined;
  const firstShard = (shard ?? 0) === 0;
  if (managed) {
    // discord.js reports each gateway state change to the manager over IPC; once the manager is
    // gone (below: this process then stops) those reports fail as an 'error' event on process,
    // which would otherwise end the process with a stack trace in the middle of its shutdown.
    process.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ERR_IPC_CHANNEL_CLOSED') logger.error(`[main] message to the shard manager failed: ${error.message}`);
    });
  }
  const registry = createRegistry('bot');
  const listen = opsListen(config, 'bot', shard);
  let bot: Awaited<ReturnType<typeof startBot>> | undefined;
  let ops: Ops | undefined;
  if (listen) {
    ops = await startOps(
      {
        role: 'bot',
        farm,
        ...listen,
        logger,
        countJobEvents: firstShard,
        statusPage: true,
        readiness: [{ name: 'discord', check: async () => (bot?.client.isReady() ? true : 'not connected to the Discord gateway') }],
      },
      registry,
    ).catch((error: unknown) => {
      // A port chosen by the operator must work; the default one may be taken (then say so and go on).
      if (config.httpPort !== undefined) throw error;
      logger.warn(`${(error as Error).message} The bot runs without its metrics, health and status server.`);
      return undefined;
    });
  }

  // One-process mode runs a worker here; with Postgres it is optional (BLENDFARM_LOCAL_WORKERS=0).
  const localWorkers = config.localWorkers ?? (db.kind === 'pglite' ? 1 : 0);
  let workers: LocalWorkers | undefined;
  if (localWorkers > 0) {
    const spec = rendererSpecFrom(config);
    const renderer = renderMetrics(registry).wrap(await loadRenderer(spec, farmConfig.abortGraceMs));
    const workerLog = lineLogger(logger, localWorkers === 1 ? { workerId: `local-${process.pid}-1` } : {});
    workers = await startLocalWorkers(farm, { renderer, count: localWorkers, concurrency: spec.threads, log: workerLog });
    console.log(`[main] ${localWorkers} local render worker(s) on ${config.executionProvider ?? 'cpu'}${config.modelDir ? ` with ${config.modelDir}` : ' with the built-in demo model'}`);
  }
  // Workers expire queued jobs nobody took and apply the retention rules; without local workers
  // this process does it too (shard 0 of several), on the same intervals (BLENDFARM_HEARTBEAT_SECONDS,
  // BLENDFARM_PRUNE_INTERVAL_SECONDS), so a farm whose workers are all gone still expires and refunds.
  let housekeeping: Housekeeping | undefined;
  if (localWorkers === 0 && firstShard) {
    housekeeping = startHousekeeping(farm, lineLogger(logger, { component: 'housekeeping' }));
    console.log('[main] no local workers: this process expires queued jobs nobody takes and applies the retention rules');
  }

  // REST metrics are attached before login, so rate limits while logging in are counted too.
  bot = await startBot({ token: config.discordToken, apiBase: config.discordApiBase, farm, log: lineLogger(logger), onClient: (client) => watchDiscordRest(client.rest, registry) }).catch(
    (error: unknown) => {
      if (process.env.DEBUG) console.error(error);
      throw new Error(loginFailureText(error, config.discordApiBase));
    },
  );
  const running = bot;
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`[main] ${signal}: stopping (running renders finish or are handed back)`);
    await running.stop();
    await workers?.stop('release');
    await housekeeping?.stop();
    await ops?.stop();
    await db.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  // Under start:sharded: when the manager is gone (killed, crashed) its shards stop too, rather
  // than keep gateway sessions nobody supervises and a restarted manager would duplicate.
  if (managed) {
    if (!process.connected) void shutdown('shard manager gone');
    else process.once('disconnect', () => void shutdown('shard manager gone'));
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  if (process.env.DEBUG) console.error(err);
  process.exit(1);
});
