/**
 * npm run start:sharded: when one gateway connection is not enough (about 2,500 servers), the
 * ShardingManager runs one bot process per shard (apps/bot/main.ts, with the same environment).
 * Needs DATABASE_URL (PGlite is one process only); render workers then run as `npm run worker`
 * processes (shard processes run none unless BLENDFARM_LOCAL_WORKERS says so).
 *
 * The shard count is BLENDFARM_SHARDS, by default what Discord recommends (GET /gateway/bot),
 * asked at DISCORD_API_BASE when that is set: discord.js's own 'auto' always asks discord.com, so
 * behind a REST proxy (or against the tests' fake Discord) it could not start. The same answer's
 * max_concurrency sets how quickly shards are started one after another.
 */
import { DiscordAPIError, REST, type RESTGetAPIGatewayBotResult, Routes, type Shard, ShardingManager } from 'discord.js';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadBotConfig, tokenRefusedText } from './bot-config.ts';
import { SETTINGS_DOCS, settingLines, settingsOnlyArguments } from '../cli-kit.ts';

/** discord.js's default pause between two shard starts: Discord allows one IDENTIFY per 5 s per bucket. */
const IDENTIFY_INTERVAL_MS = 5500;
/** How long one shard process may take from its start to its gateway session (tsx, migrations, login). */
const SPAWN_TIMEOUT_MS = 120_000;
/** A stopped shard process gets this long to finish its shutdown before it is killed. */
const STOP_GRACE_MS = 45_000;
/** A shard that keeps exiting is started again after 5 s, 10 s, 20 s, ... at most this long. */
const MAX_RESPAWN_DELAY_MS = 5 * 60_000;

const say = (line: string) => console.log(`[shards] ${line}`);
/** One line on stderr and a non-zero exit: what went wrong and what to do, no stack trace. */
function fail(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}

settingsOnlyArguments(
  'npm run start:sharded',
  `Usage: npm run start:sharded

Runs one bot process (npm start) per Discord gateway shard; render workers run separately
(npm run worker). It takes no arguments; the settings it reads most:

${settingLines(['discordToken', 'databaseUrl', 'shards', 'discordApiBase', 'localWorkers', 'httpPort'])}

Each shard process gets this environment. ${SETTINGS_DOCS}
`,
);
const config = loadBotConfig();
if (!config.databaseUrl) fail('sharding runs several bot processes, which need a shared Postgres: set DATABASE_URL.');
const apiBase = config.discordApiBase;

/** Discord's recommendation for this bot: how many shards, and how many may log in at once. */
async function recommendation(): Promise<{ shards: number; maxConcurrency: number }> {
  // Asked at the configured base with the bot's own REST client, as the shard processes will be.
  const rest = new REST(apiBase ? { api: apiBase } : {}).setToken(config.discordToken);
  const where = apiBase ?? 'discord.com';
  let info: RESTGetAPIGatewayBotResult;
  try {
    info = (await rest.get(Routes.gatewayBot())) as RESTGetAPIGatewayBotResult;
  } catch (error) {
    if (error instanceof DiscordAPIError && error.status === 401) {
      fail(tokenRefusedText(apiBase));
    }
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const detail = cause?.code ?? cause?.message ?? (error as Error).message;
    fail(`could not ask the Discord API at ${where} for the recommended shard count (${detail}): check DISCORD_API_BASE and that the API is reachable from here.`);
  }
  const shards = Number(info.shards);
  if (!Number.isInteger(shards) || shards < 1) fail(`the Discord API at ${where} recommended ${String(info.shards)} shards, which is not a shard count: check DISCORD_API_BASE.`);
  const maxConcurrency = Number(info.session_start_limit?.max_concurrency);
  return { shards, maxConcurrency: Number.isInteger(maxConcurrency) && maxConcurrency >= 1 ? maxConcurrency : 1 };
}

const recommended = await recommendation();
const { maxConcurrency } = recommended;
// BLENDFARM_SHARDS overrides the count (e.g. more shards ahead of growth, so adding servers does
// not mean a re-shard soon); Discord refuses a session that carries too many servers (4011).
const totalShards = config.shards ?? recommended.shards;
// Shards whose ids differ modulo max_concurrency may IDENTIFY together: starting one every
// 5.5 s / max_concurrency keeps each bucket at one IDENTIFY per 5.5 s, as discord.js's default does.
const spawnDelay = Math.ceil(IDENTIFY_INTERVAL_MS / maxConcurrency);

// Shard processes inherit this process's environment when each is created (DATABASE_URL,
// DISCORD_API_BASE, what .env set). Workers are separate processes in a sharded deployment, so
// none run inside a shard unless the operator asked for them.
if (config.localWorkers === undefined) process.env.BLENDFARM_LOCAL_WORKERS = '0';

const manager = new ShardingManager(fileURLToPath(new URL('./main.ts', import.meta.url)), {
  token: config.discordToken,
  totalShards,
  // tsx's loader by absolute path: the shard processes run from the operator's folder, where a
  // bare `--import tsx` would not be found.
  execArgv: ['--import', import.meta.resolve('tsx')],
  shardArgs: [],
  // Restarts are ours (below): discord.js would restart a crashing shard at once, forever, and
  // every start spends one of the bot's 1,000 daily IDENTIFYs.
  respawn: false,
});

let stopping = false;
const respawnTimers = new Set<NodeJS.Timeout>();

function exitDescription(child: ChildProcess | null): string {
  if (!child) return 'exited';
  return child.signalCode ? `was killed by ${child.signalCode}` : `exited with code ${child.exitCode}`;
}

function watch(shard: Shard): void {
  const deaths: number[] = [];
  // A shard that never connected is start-up's business (manager.spawn() rejects); one that did
  // and then exits is started again.
  let connected = false;
  shard.on('spawn', () => {
    // Created during a shutdown (the manager's start loop is still between two shards): not wanted.
    if (stopping) shard.kill();
    else say(`shard ${shard.id} of ${totalShards} started (pid ${shard.process?.pid})`);
  });
  shard.on('ready', () => {
    connected = true;
    say(`shard ${shard.id} is connected to the gateway`);
  });
  shard.on('death', () => {
    if (stopping || !connected) return;
    const now = performance.now();
    deaths.push(now);
    while (deaths.length > 0 && now - deaths[0] > 60 * 60_000) deaths.shift();
    const delay = Math.min(MAX_RESPAWN_DELAY_MS, 5000 * 2 ** (deaths.length - 1));
    say(`shard ${shard.id} ${exitDescription(shard.process)} (its output is above); starting it again in ${Math.round(delay / 1000)} s`);
    const timer = setTimeout(() => {
      respawnTimers.delete(timer);
      if (stopping) return;
      // A start that fails ends in another 'death', which schedules the next try.
      shard.spawn(SPAWN_TIMEOUT_MS).catch((error: Error) => say(`shard ${shard.id} did not come back: ${error.message}`));
    }, delay);
    respawnTimers.add(timer);
  });
  shard.on('error', (error: Error) => say(`shard ${shard.id}: ${error.message}`));
}

/** Asks every shard process to stop (SIGTERM: main.ts shuts down cleanly) and waits for them. */
async function stopShards(): Promise<void> {
  stopping = true;
  for (const timer of respawnTimers) clearTimeout(timer);
  const children = [...manager.shards.values()].map((s) => s.process).filter((c): c is ChildProcess => !!c && c.exitCode === null && c.signalCode === null);
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
}

const onSignal = (signal: NodeJS.Signals) => {
  if (stopping) return;
  say(`${signal}: stopping the shard processes`);
  void stopShards().then(() => process.exit(0));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

manager.on('shardCreate', watch);
const source = `${recommended.shards} recommended by ${apiBase ?? 'discord.com'}`;
say(`${totalShards} shard(s) (${config.shards === undefined ? source : `BLENDFARM_SHARDS; ${source}`}); max_concurrency ${maxConcurrency}, so one starts every ${spawnDelay} ms`);
if (totalShards < recommended.shards) say(`fewer shards than recommended: Discord closes a shard's session with 4011 when it carries too many servers; unset BLENDFARM_SHARDS if that happens`);
try {
  await manager.spawn({ delay: spawnDelay, timeout: SPAWN_TIMEOUT_MS });
  say(`all ${totalShards} shard(s) are connected`);
} catch (error) {
  if (stopping) process.exit(0);
  const code = (error as { code?: string }).code;
  const id = [...manager.shards.values()].at(-1)?.id ?? 0;
  const why =
    code === 'ShardingReadyDied'
      ? `shard ${id} exited before it connected to the gateway (its error is above)`
      : code === 'ShardingReadyTimeout'
        ? `shard ${id} was not connected to the gateway ${SPAWN_TIMEOUT_MS / 1000} s after it started (its output is above)`
        : code === 'ShardingReadyDisconnected'
          ? `shard ${id} lost its gateway connection while it started`
          : `starting the shards failed: ${(error as Error).message}`;
  process.stderr.write(`error: ${why}; the other shards are being stopped.\n`);
  await stopShards();
  process.exit(1);
}
