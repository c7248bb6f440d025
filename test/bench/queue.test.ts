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
    expect(await benchDatabases()).toEqual(before);
  });
});
