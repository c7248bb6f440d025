// Applies the drizzle-kit migrations in migrations/ at start-up. On a shared Postgres several
// processes may start at once, so the migration run is serialised with an advisory lock.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migrateWithPglite } from 'drizzle-orm/pglite/migrator';
import type pg from 'pg';

export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../migrations', import.meta.url));

/** Arbitrary constant shared by every Blendfarm process: "the migration lock". */
const MIGRATION_LOCK_KEY = 7_463_021_985;

/**
 * What a migration run did to a database that had the farm's tables already (an upgrade): the
 * tags of the migrations it applied, for one log line (operators want to know when the schema
 * changed). Empty for a database that was up to date, and for a new one (its tables made now).
 */
export type AppliedMigrations = string[];

type Query = (text: string) => Promise<{ rows: Array<Record<string, unknown>> }>;

/** The `when` of each migration drizzle recorded as applied; undefined when it has recorded none (a new database). */
async function recorded(query: Query): Promise<Set<number> | undefined> {
  const [table] = (await query(`select to_regclass('drizzle.__drizzle_migrations') is not null as present`)).rows;
  if (!table?.present) return undefined;
  const rows = (await query('select created_at from drizzle.__drizzle_migrations')).rows;
  return rows.length ? new Set(rows.map((r) => Number(r.created_at))) : undefined;
}

/** Runs `migrate` and says which migrations it applied to a database that had some already. */
async function reportingApplied(query: Query, migrate: () => Promise<void>): Promise<AppliedMigrations> {
  const before = await recorded(query);
  await migrate();
  if (!before) return [];
  const after = (await recorded(query)) ?? new Set<number>();
  const journal = JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, 'meta', '_journal.json'), 'utf8')) as { entries: Array<{ when: number; tag: string }> };
  return journal.entries.filter((e) => after.has(e.when) && !before.has(e.when)).map((e) => e.tag);
}

export async function migratePostgres(pool: pg.Pool): Promise<AppliedMigrations> {
  const client = await pool.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      return await reportingApplied((text) => client.query(text), () => migratePg(drizzlePg({ client }), { migrationsFolder: MIGRATIONS_FOLDER }));
    } finally {
      await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  } finally {
    client.release();
  }
}

export async function migratePglite(client: PGlite): Promise<AppliedMigrations> {
  return reportingApplied((text) => client.query<Record<string, unknown>>(text), () => migrateWithPglite(drizzlePglite({ client }), { migrationsFolder: MIGRATIONS_FOLDER }));
}
