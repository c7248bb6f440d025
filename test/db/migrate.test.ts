// Migrations on a shared Postgres (db/migrate.ts, db/client.ts): they run on a connection of their
// own without the client's query and statement timeouts (BLENDFARM_DB_QUERY_TIMEOUT_MS), so a
// process waiting for another process's migration waits, saying so, instead of dying with "Query
// read timeout" ("cannot reach the database"), and a migration statement longer than the query
// timeout (a large table rewritten) finishes.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../db/client.ts';
import { MIGRATION_LOCK_KEY } from '../../db/migrate.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { useTempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/** Far below anything a migration or the wait for one takes here. */
const QUERY_TIMEOUT_MS = 300;

const dropped: TestDatabase[] = [];
afterAll(async () => {
  for (const testDb of dropped) await testDb.drop();
});

async function postgres(): Promise<TestDatabase> {
  const testDb = await createTestDatabase('postgres');
  dropped.push(testDb);
  return testDb;
}

let folders = '';
useTempDir('blendfarm-migrations-', (dir) => (folders = dir));

/** A drizzle-kit migrations folder with one migration made of `statements`. */
function migrationsFolder(name: string, statements: string[]): string {
  const folder = path.join(folders, name);
  fs.mkdirSync(path.join(folder, 'meta'), { recursive: true });
  fs.writeFileSync(path.join(folder, '0000_probe.sql'), statements.join('\n--> statement-breakpoint\n'));
  const journal = { version: '7', dialect: 'postgresql', entries: [{ idx: 0, version: '7', when: 1_764_000_000_000, tag: '0000_probe', breakpoints: true }] };
  fs.writeFileSync(path.join(folder, 'meta', '_journal.json'), JSON.stringify(journal));
  return folder;
}

describe('migrations on Postgres', () => {
  it('a process waits for another process’s migration longer than its query timeout, saying so, then opens', async () => {
    const testDb = await postgres();
    // The other process: a connection holding the migration lock (its migration under way).
    const other = new pg.Client({ connectionString: testDb.url });
    await other.connect();
    try {
      const [{ pid }] = (await other.query<{ pid: number }>('select pg_backend_pid() as pid')).rows;
      await other.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
      const lines: string[] = [];
      const line = (l: string) => lines.push(l);
      const opening = testDb.open({ timeouts: { queryTimeoutMs: QUERY_TIMEOUT_MS }, info: line, log: line });
      let settled = false;
      opening.then(() => (settled = true), () => (settled = true));
      await until(() => lines.length > 0 || settled, 15_000, 'the wait to be said');
      expect(lines[0]).toMatch(new RegExp(`^\\[db\\] waiting for another process's migration of the database \\(held by database session ${pid}( from [^)]+)?\\) to end before starting$`));
      // Held well past the query timeout.
      await sleep(QUERY_TIMEOUT_MS * 4);
      expect(settled).toBe(false);
      await other.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
      const db = await opening;
      expect(lines.some((l) => /^\[db\] the other process's migration ended after \d+ s; applying what is left to apply$/.test(l))).toBe(true);
      expect(lines.some((l) => /cannot reach|timeout/i.test(l))).toBe(false);
      const [row] = await queryRows<{ n: number }>(db.db, sql`select count(*)::int as n from jobs`);
      expect(row.n).toBe(0);
    } finally {
      await other.end();
    }
  });

  it('a migration statement longer than the query timeout finishes', async () => {
    const testDb = await postgres();
    const folder = migrationsFolder('slow', ['create table slow_probe (id integer)', `select pg_sleep(${(QUERY_TIMEOUT_MS * 3) / 1000})`, 'insert into slow_probe values (1)']);
    const db = await testDb.open({ timeouts: { queryTimeoutMs: QUERY_TIMEOUT_MS }, migrationsFolder: folder, log: () => {} });
    const [row] = await queryRows<{ id: number }>(db.db, sql`select id from slow_probe`);
    expect(row.id).toBe(1);
    // The pool's own queries keep their timeout.
    await expect(db.db.execute(sql`select pg_sleep(${(QUERY_TIMEOUT_MS * 3) / 1000})`)).rejects.toThrow();
  });

  it('the migration lock is free again after a migration, and after one that failed', async () => {
    const testDb = await postgres();
    const folder = migrationsFolder('broken', ['create table broken_probe (id integer)', 'select no_such_function()']);
    await expect(testDb.open({ migrationsFolder: folder, log: () => {} })).rejects.toThrow(/no_such_function/);
    const probe = new pg.Client({ connectionString: testDb.url });
    await probe.connect();
    try {
      const [{ locked }] = (await probe.query<{ locked: boolean }>('select pg_try_advisory_lock($1) as locked', [MIGRATION_LOCK_KEY])).rows;
      expect(locked).toBe(true);
    } finally {
      await probe.end();
    }
  });
});
