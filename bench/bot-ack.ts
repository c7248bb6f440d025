// How fast the bot acknowledges interactions under a burst: N distinct users send /blend at the
// same moment; the time from the fake Discord dispatching each INTERACTION_CREATE to the bot's
// first callback (defer or reply), as the fake Discord records it, gives p50/p95/p99. Discord drops
// an interaction not answered within 3 s.
//
//   npx tsx bench/bot-ack.ts [--db pglite|postgres] [--bursts 50,200] [--rounds 3] [--submit-concurrency N]
//
// The real discord.js client and bot (bot/bot.ts) run in a child process, as `npm start` does: the
// bot, the farm on an in-memory PGlite (the `npm start` default) or on a fresh database on the
// Postgres bench/postgres.ts chooses (BENCH_DATABASE_URL, else DATABASE_URL, else the tests'
// default, else an embedded Postgres; dropped afterwards), and one render worker with the no-op
// FakeRenderer so that submissions are admitted.
// The fake Discord runs in this process, so its own work does not share the bot's event loop (the
// real Discord is elsewhere too). Each round waits for every job of the burst to be queued and its
// message posted before the next begins.
import os from 'node:os';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { deployCommands } from '../apps/bot/deploy-commands.ts';
import { choiceOption, numberOption, runParsed } from '../apps/cli-kit.ts';
import { startBot } from '../bot/bot.ts';
import { FakeRenderer } from '../farm/fake-renderer.ts';
import { farmConfigFrom, IN_MEMORY, openDatabase, startLocalWorkers, type FarmContext } from '../farm/index.ts';
import { startFakeDiscord } from '../test/fake-discord/index.ts';
import { BENCH_POSTGRES_HELP, withBenchDatabase } from './postgres.ts';

const BACKENDS = ['pglite', 'postgres'] as const;
const DEFAULTS = { db: BACKENDS[0], bursts: '50,200', rounds: '3' } as const;

const USAGE = `Usage: npx tsx bench/bot-ack.ts [--db ${BACKENDS.join('|')}] [--bursts LIST] [--rounds N] [--submit-concurrency N]

The bot's acknowledgement latency: bursts of simultaneous /blend from distinct users against a fake
Discord; p50/p95/p99/max milliseconds to the bot's first answer, printed on stdout as a Markdown
table (recorded results: bench/results/bot-ack.md).
  --db NAME                 the farm's database: ${BACKENDS.join(' or ')} (default ${DEFAULTS.db}: in memory, as npm start)
  --bursts LIST             comma-separated burst sizes (default ${DEFAULTS.bursts})
  --rounds N                rounds per burst size (default ${DEFAULTS.rounds})
  --submit-concurrency N    the bot's submitConcurrency (default: the bot's own)
With --db postgres: ${BENCH_POSTGRES_HELP}
`;

/** The command line, checked (a bad one is a UsageError: one line, exit 2); undefined for --help. */
function options(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean', short: 'h' },
      db: { type: 'string', default: DEFAULTS.db },
      bursts: { type: 'string', default: DEFAULTS.bursts },
      rounds: { type: 'string', default: DEFAULTS.rounds },
      // BotOptions.submitConcurrency (unset: the bot's default).
      'submit-concurrency': { type: 'string' },
      // Internal: run the bot side against this REST base (the child process).
      bot: { type: 'string' },
      url: { type: 'string', default: '' },
    },
  });
  if (values.help) return undefined;
  return {
    backend: choiceOption('db', values.db, BACKENDS)!,
    bursts: values.bursts.split(',').map((n) => numberOption('bursts', n.trim(), { integer: true, min: 1 })!),
    rounds: numberOption('rounds', values.rounds, { integer: true, min: 1 })!,
    submitConcurrency: numberOption('submit-concurrency', values['submit-concurrency'], { integer: true, min: 1 }),
    bot: values.bot,
    url: values.url,
  };
}
type Options = NonNullable<ReturnType<typeof options>>;

const databaseName = `blendfarm_bench_ack_${process.pid}`;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** The child: farm, one no-op render worker and the bot, until stdin closes. */
async function serveBot(restBase: string, url: string, submitConcurrency: number | undefined): Promise<void> {
  const db = await openDatabase({ url, dataDir: IN_MEMORY });
  const farm: FarmContext = { db, config: farmConfigFrom({}, { budget: { refillGpuSeconds: 1e9, maxActiveJobs: 1e6 }, pollIntervalMs: 200 }) };
  const workers = await startLocalWorkers(farm, { renderer: () => new FakeRenderer({ models: ['demo'], steps: 1, stepMs: 600_000 }), log: () => {} });
  const bot = await startBot({ token: 'fake.token.value', apiBase: restBase, farm, log: (m) => process.env.BENCH_BOT_LOG && console.error(m), messenger: { editIntervalMs: 3000 }, ...(submitConcurrency !== undefined ? { submitConcurrency } : {}) });
  // Diagnostics: how long after Discord created it each interaction reached the bot's handler.
  const arrivals: number[] = [];
  bot.client.on('interactionCreate', (i) => void arrivals.push(Date.now() - i.createdTimestamp));
  if (process.env.BENCH_ARRIVALS) setInterval(() => { if (arrivals.length) { const a = arrivals.splice(0).sort((x, y) => x - y); console.error(`arrival ms: n=${a.length} p50=${a[a.length >> 1]} max=${a.at(-1)}`); } }, 2000).unref();
  console.log('ready');
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.once('end', resolve));
  await bot.stop();
  await workers.stop('release');
  await db.close();
}

async function main(opts: Options): Promise<void> {
  if (opts.backend !== 'postgres') return measure(opts, '', 'in-memory PGlite');
  await withBenchDatabase(databaseName, (url, server) => measure(opts, url, server));
}

/** Starts the fake Discord and the bot's process (its farm on `url`, PGlite when empty) and measures. */
async function measure(opts: Options, url: string, database: string): Promise<void> {
  const { bursts, rounds, backend, submitConcurrency } = opts;
  const fake = await startFakeDiscord({ guilds: [{ name: 'Bench', channels: ['renders'] }] });
  await deployCommands({ token: fake.token, guildId: fake.guild().id, apiBase: fake.restBase });
  const child = spawn(process.execPath, [...process.execArgv, ...(process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []), new URL(import.meta.url).pathname, '--bot', fake.restBase, '--url', url, ...(submitConcurrency !== undefined ? ['--submit-concurrency', String(submitConcurrency)] : [])], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the bot process exited (${code})`)));
    createInterface({ input: child.stdout! }).on('line', (line) => line === 'ready' && resolve());
  });
  try {
    console.log(`# bot acknowledgement latency: ${bursts.join(' and ')} simultaneous /blend from distinct users, ${rounds} rounds each, ${backend}, submitConcurrency ${submitConcurrency ?? 'default'}`);
    console.log(`# database: ${database}`);
    console.log(`# ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString()}`);
    console.log('| burst | round | p50 ms | p95 ms | p99 ms | max ms | answered | posted |');
    console.log('|------:|------:|-------:|-------:|-------:|-------:|---------:|-------:|');
    // A warm-up burst (JIT, connection pool, first queries) that is not reported.
    for (const size of [10, ...bursts.flatMap((b) => Array<number>(rounds).fill(b))].map((n, i) => ({ n, i }))) {
      const users = Array.from({ length: size.n }, () => fake.createUser());
      for (const user of users) fake.addMember(user);
      const handles = users.map((user, k) => fake.sendSlashCommand({ commandName: 'blend', user, options: { from: `a lighthouse ${k}`, to: 'a city of glass', quality: 'draft', duration: 1 } }));
      const responses = await Promise.all(handles.map((h) => h.waitForResponse(10_000).catch(() => null)));
      // Let every submission land (job queued, message edited) before the next burst.
      const posted = await Promise.all(handles.map((h) => h.waitForOriginal((m) => Boolean(m.content), 30_000).then(() => 1, () => 0)));
      if (size.i === 0) continue;
      const latencies = responses.filter((r) => r !== null).map((r) => r!.latencyMs).sort((a, b) => a - b);
      const round = ((size.i - 1) % rounds) + 1;
      console.log(`| ${size.n} | ${round} | ${percentile(latencies, 50)} | ${percentile(latencies, 95)} | ${percentile(latencies, 99)} | ${latencies.at(-1)} | ${latencies.length}/${size.n} | ${posted.reduce((a: number, b) => a + b, 0)} |`);
    }
  } finally {
    child.stdin!.end();
    await new Promise((resolve) => child.once('exit', resolve));
    await fake.close();
  }
}

await runParsed(USAGE, options, (opts) => (opts.bot !== undefined ? serveBot(opts.bot, opts.url, opts.submitConcurrency) : main(opts)));
