// Readiness of the database for /readyz: reachable within a deadline, and every migration in
// migrations/ applied (drizzle's journal table has as many entries as migrations/meta/_journal.json).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { type FarmDb, queryRows } from './client.ts';
import { describeDbError } from './errors.ts';
import { MIGRATIONS_FOLDER } from './migrate.ts';

export type DatabaseHealth = { ok: true; migrations: number } | { ok: false; reason: string };

function expectedMigrations(): number {
  const journal = JSON.parse(readFileSync(path.join(MIGRATIONS_FOLDER, 'meta', '_journal.json'), 'utf8')) as { entries: unknown[] };
  return journal.entries.length;
}

/** Never throws: a failure is a reason a person can act on. */
export async function checkDatabase(db: FarmDb, timeoutMs = 2000): Promise<DatabaseHealth> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<DatabaseHealth>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, reason: `the database did not answer within ${timeoutMs} ms` }), timeoutMs);
  });
  const probe = (async (): Promise<DatabaseHealth> => {
    try {
      const [row] = await queryRows<{ applied: number }>(db.db, sql`select count(*)::int as applied from drizzle.__drizzle_migrations`);
      const expected = expectedMigrations();
      if (row.applied < expected) {
        return { ok: false, reason: `${row.applied} of ${expected} migrations applied; restart a process with migrations enabled to apply the rest` };
      }
      return { ok: true, migrations: row.applied };
    } catch (error) {
      // Code and message only (describeDbError): never a query's parameters or a connection string's password.
      return { ok: false, reason: `the database check failed (${describeDbError(error)})` };
    }
  })();
  try {
    return await Promise.race([probe, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
