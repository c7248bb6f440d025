/**
 * npm start: the whole thing on one machine. The bot, an embedded database (PGlite, unless
 * DATABASE_URL points at Postgres) and a render worker in this process, with the engine in worker
 * threads. With Postgres, more workers can join from other machines with `npm run worker`.
 */
import { readSetting } from '../../config/index.ts';
import { openDatabase } from '../../db/client.ts';
import { farmConfigFrom } from '../../farm/config.ts';
import { startLocalWorkers } from '../../farm/local.ts';
import { startHousekeeping } from '../../farm/index.ts';
import { loadRenderer, rendererSpecFrom, watchRenderer } from '../worker/load-renderer.ts';
import { ModelReadiness } from '../worker/model-readiness.ts';
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

// SIGTERM/SIGINT stop what has started so far, newest first, from the first moment: a signal while
// the bot is still starting (a model loading, Discord slow to answer the login) used to kill the
// process with its local workers' jobs claimed and the embedded database open. A start-up
// failure stops what did start, too.
const started: Array<{ name: string; stop: () => Promise<void> }> = [];
let stopping = false;
/** How long a shutdown waits for the part being started (a model load, the Discord login) before stopping the rest without it. */
const STARTING_WAIT_MS = 5000;
/** Resolved when main() has finished starting (or, after a signal, its current part) or failed. */
let stepSettled: () => void = () => {};
const nextStep = new Promise<void>((resolve) => (stepSettled = resolve));

/** Stops every started part, newest first; false when one failed to stop (it is logged). */
async function stopStarted(): Promise<boolean> {
  let ok = true;
  for (const part of started.splice(0).reverse()) {
    await part.stop().catch((error: unknown) => {
      ok = false;
      console.error(`[main] stopping the ${part.name} failed: ${(error as Error).message}`);
    });
  }
  return ok;
}

async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`[main] ${signal}: stopping (running renders finish or are handed back)`);
  // The part being started is waited for (bounded), so that it stops with the others, in order;
  // once main() has finished, nextStep is already settled.
  await new Promise<void>((resolve) => {
    setTimeout(resolve, STARTING_WAIT_MS).unref();
    void nextStep.then(resolve);
  });
  process.exit((await stopStarted()) ? 0 : 1);
}

/** A part has started: stopped at shutdown. During a shutdown it is the last part: main() starts nothing more. */
async function keep(name: string, stop: () => Promise<void>): Promise<void> {
  started.push({ name, stop });
  await unlessStopping();
}

/** Before main() starts its next part: during a shutdown it starts nothing more (this never returns then). */
async function unlessStopping(): Promise<void> {
  if (!stopping) return;
  stepSettled();
  await new Promise(() => {});
}

async function main(): Promise<void> {
  const config = loadBotConfig();
  // One JSON line per event (readable on a terminal); secrets are scrubbed from every line.
  const logger = createLogger({ name: 'bot', level: config.logLevel, format: config.logFormat, secrets: secretsOf(config) });
  routeConsole(logger);
  const farmConfig = farmConfigFrom(config);

  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, info: (line) => console.log(line) });
  await keep('database', () => db.close());
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
  if (ops) await keep('HTTP server', () => ops!.stop());
  await unlessStopping();

  // One-process mode runs a worker here; with Postgres it is optional (BLENDFARM_LOCAL_WORKERS=0).
  const localWorkers = config.localWorkers ?? (db.kind === 'pglite' ? 1 : 0);
  if (localWorkers > 0) {
    const spec = rendererSpecFrom(config);
    // As npm run worker's: the model loads now and again after each failure, and while it does not load no job on it is claimed here.
    const readiness = new ModelReadiness({ log: (level, line) => (level === 'warn' ? console.warn : console.log)(`[local workers] ${line}`) });
    const watched = watchRenderer(spec, await loadRenderer(spec, farmConfig.abortGraceMs), readiness, (r) => renderMetrics(registry).wrap(r));
    await unlessStopping();
    const workerLog = lineLogger(logger, localWorkers === 1 ? { workerId: `local-${process.pid}-1` } : {});
    const local = await startLocalWorkers(farm, { renderer: watched.renderer, count: localWorkers, concurrency: spec.threads, log: workerLog });
    watched.start();
    await keep('local workers', () => (readiness.stop(), local.stop('release')));
    console.log(`[main] ${localWorkers} local render worker(s) on ${config.executionProvider ?? 'cpu'}${config.modelDir ? ` with ${config.modelDir}` : ' with the built-in demo model'}`);
  }
  // Workers expire queued jobs nobody took and apply the retention rules; without local workers
  // this process does it too (shard 0 of several), on the same intervals (BLENDFARM_HEARTBEAT_SECONDS,
  // BLENDFARM_PRUNE_INTERVAL_SECONDS), so a farm whose workers are all gone still expires and refunds.
  if (localWorkers === 0 && firstShard) {
    const keeper = startHousekeeping(farm, lineLogger(logger, { component: 'housekeeping' }));
    await keep('housekeeping', () => keeper.stop());
    console.log('[main] no local workers: this process expires queued jobs nobody takes and applies the retention rules');
  }

  await unlessStopping();
  // REST metrics are attached before login, so rate limits while logging in are counted too.
  bot = await startBot({ token: config.discordToken, apiBase: config.discordApiBase, farm, log: lineLogger(logger), onClient: (client) => watchDiscordRest(client.rest, registry) }).catch(
    (error: unknown) => {
      if (config.debug !== undefined) console.error(error);
      throw new Error(loginFailureText(error, config.discordApiBase));
    },
  );
  const running = bot;
  await keep('bot', () => running.stop());
  // Under start:sharded: when the manager is gone (killed, crashed) its shards stop too, rather
  // than keep gateway sessions nobody supervises and a restarted manager would duplicate.
  if (managed) {
    if (!process.connected) void shutdown('shard manager gone');
    else process.once('disconnect', () => void shutdown('shard manager gone'));
  }
}

main().then(
  () => stepSettled(),
  async (err: unknown) => {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    // DEBUG through the settings table (config/settings.ts), as every other setting: the configuration itself may be what failed.
    if (readSetting('debug') !== undefined) console.error(err);
    // A shutdown under way stops what did start; otherwise it is stopped here (local workers
    // that may have claimed jobs, the database), then the process ends.
    if (stopping) return stepSettled();
    stopping = true;
    await stopStarted();
    process.exit(1);
  },
);
