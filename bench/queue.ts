// Queue throughput: jobs per second claimed and completed by 1, 4 and 16 workers with a
// renderer that does nothing, against Postgres. What it measures is the farm's own overhead per
// job (claim statement, completion transaction with artifact + settlement + event, NOTIFY).
//
//   npm run bench:queue -- [--jobs N] [--workers 1,4,16] [--users N]
//
// Uses a fresh database on the server bench/postgres.ts chooses (BENCH_DATABASE_URL, else
// DATABASE_URL, else the tests' default, else an embedded Postgres) and drops it afterwards.
// Every worker gets its own connection pool (as separate processes would) but all run in this
// one Node process.
import os from 'node:os';
import { parseArgs } from 'node:util';
import { sql } from 'drizzle-orm';
import { type FarmDb, openDatabase, queryRows } from '../db/client.ts';
import { farmConfigFrom } from '../farm/config.ts';
import { onJobEvent } from '../farm/events.ts';
import { FakeRenderer } from '../farm/fake-renderer.ts';
import { submitJob } from '../farm/jobs.ts';
import { FarmWorker } from '../farm/worker.ts';
import { numberOption, runCli } from '../apps/cli-kit.ts';
import { BENCH_POSTGRES_HELP, withBenchDatabase } from './postgres.ts';

const DEFAULTS = { jobs: '2000', workers: '1,4,16', users: '8' } as const;
const LIMITS = { jobs: 1_000_000, workers: 256, users: 100_000 } as const;

const USAGE = `Usage: npm run bench:queue -- [--jobs N] [--workers LIST] [--users N]

Queue throughput: jobs per second claimed and completed by each number of workers with a renderer
that does nothing (the farm's own overhead per job), printed on stdout as a Markdown table (recorded results: bench/results/queue.md).
  --jobs N        jobs per round, 1 to ${LIMITS.jobs} (default ${DEFAULTS.jobs})
  --workers LIST  comma-separated worker counts, one round each, 1 to ${LIMITS.workers} (default ${DEFAULTS.workers})
  --users N       distinct users the jobs are spread over, 1 to ${LIMITS.users} (default ${DEFAULTS.users})
${BENCH_POSTGRES_HELP}
`;

let jobsPerRound = 0;
let workerCounts: number[] = [];
let userCount = 0;

/**
 * The command line, checked before anything is created (a bad one is exit 2): --jobs 0 (or a word)
 * waited forever for jobs that were never submitted, and the database it had made was left behind
 * when it was stopped. False for --help.
 */
function readOptions(): boolean {
  const { values } = parseArgs({
    options: {
      help: { type: 'boolean', short: 'h' },
      jobs: { type: 'string', default: DEFAULTS.jobs },
      workers: { type: 'string', default: DEFAULTS.workers },
      users: { type: 'string', default: DEFAULTS.users },
    },
  });
  if (values.help) return false;
  jobsPerRound = numberOption('jobs', values.jobs, { integer: true, min: 1, max: LIMITS.jobs })!;
  workerCounts = values.workers.split(',').map((n) => numberOption('workers', n.trim(), { integer: true, min: 1, max: LIMITS.workers })!);
  userCount = numberOption('users', values.users, { integer: true, min: 1, max: LIMITS.users })!;
  return true;
}

const databaseName = `blendfarm_bench_${process.pid}`;
/** The benchmark database's URL (set by main). */
let benchUrl = '';

const config = farmConfigFrom(
  {},
  {
    pollIntervalMs: 100,
    progressThrottleMs: 1000,
    budget: { refillGpuSeconds: 1e9, maxActiveJobs: 1e9 },
  },
);
const params = { prompts: ['a', 'b'], width: 64, height: 64, steps: 2, maxBranches: 2, durationSeconds: 1, fps: 1 };

async function round(control: FarmDb, workerCount: number): Promise<{ seconds: number; jobsPerSecond: number }> {
  const farm = { db: control, config };
  for (let i = 0; i < jobsPerRound; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, jobsPerRound - i) }, (_, k) => submitJob(farm, { kind: 'blend', userId: `bench-user-${(i + k) % userCount}`, params })),
    );
  }
  const handles = await Promise.all(Array.from({ length: workerCount }, () => openDatabase({ url: benchUrl, migrate: false, poolSize: 2 })));

  let done = 0;
  let finished: () => void = () => {};
  const allDone = new Promise<void>((resolve) => (finished = resolve));
  const unsubscribe = await onJobEvent(control, (event) => {
    if (event.type === 'done' && ++done === jobsPerRound) finished();
  });

  const started = performance.now();
  const workers = await Promise.all(
    handles.map(async (db, n) => {
      const worker = new FarmWorker({ farm: { db, config }, renderer: new FakeRenderer({ steps: 0, stepMs: 0 }), id: `bench-${workerCount}-${n}`, log: () => {} });
      await worker.start();
      return worker;
    }),
  );
  await allDone;
  const seconds = (performance.now() - started) / 1000;

  await Promise.all(workers.map((w) => w.stop('release')));
  await unsubscribe();
  await Promise.all(handles.map((h) => h.close()));
  return { seconds, jobsPerSecond: jobsPerRound / seconds };
}

async function main(): Promise<void> {
  await withBenchDatabase(databaseName, (url, server) => {
    benchUrl = url;
    return measure(server);
  });
}

async function measure(serverDescription: string): Promise<void> {
  const control = await openDatabase({ url: benchUrl, poolSize: 20 });
  try {
    // Through the control handle: a connection of its own left open was ended by the drop below,
    // and its pool's unhandled 'error' crashed the benchmark after its last round (exit 1).
    const [{ server_version: version }] = await queryRows<{ server_version: string }>(control.db, sql`show server_version`);
    console.log(`# queue benchmark: ${jobsPerRound} jobs per round, ${userCount} users, no-op renderer`);
    console.log(`# ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, Postgres ${version}, ${new Date().toISOString()}`);
    console.log(`# server: ${serverDescription}`);
    console.log('| workers | jobs | seconds | jobs/s |');
    console.log('|--------:|-----:|--------:|-------:|');
    for (const count of workerCounts) {
      const result = await round(control, count);
      console.log(`| ${count} | ${jobsPerRound} | ${result.seconds.toFixed(2)} | ${result.jobsPerSecond.toFixed(0)} |`);
    }
  } finally {
    await control.close();
  }
}

await runCli(async () => {
  if (!readOptions()) {
    process.stdout.write(USAGE);
    return;
  }
  await main();
});
