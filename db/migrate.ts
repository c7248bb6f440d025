// Applies the drizzle-kit migrations in migrations/ at start-up. On a shared Postgres several
// processes may start at once, so the migration run is serialised with an advisory lock: a process
// finding it taken waits (saying so) for the other's migration to end, however long it takes, and
// then applies whatever is left (usually nothing).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migrateWithPglite } from 'drizzle-orm/pglite/migrator';
import type pg from 'pg';

export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../migrations', import.meta.url));

/** Arbitrary constant shared by every Blendfarm process: "the migration lock" (a session-level advisory lock). */
export const MIGRATION_LOCK_KEY = 7_463_021_985;
/** How often a process waiting for another's migration asks for the migration lock again. */
export const MIGRATION_LOCK_POLL_MS = 500;
/** How often that wait is said again in the log, with how long it has lasted. */
export const MIGRATION_WAIT_LOG_INTERVAL_MS = 30_000;

export interface MigrateOptions {
  /** The drizzle-kit migrations folder (default MIGRATIONS_FOLDER); tests bring their own. */
  migrationsFolder?: string;
  /** Where the wait for another process's migration is said (default: stderr). */
  log?: (line: string) => void;
}

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
async function reportingApplied(query: Query, folder: string, migrate: () => Promise<void>): Promise<AppliedMigrations> {
  const before = await recorded(query);
  await migrate();
  if (!before) return [];
  const after = (await recorded(query)) ?? new Set<number>();
  const journal = JSON.parse(readFileSync(join(folder, 'meta', '_journal.json'), 'utf8')) as { entries: Array<{ when: number; tag: string }> };
  return journal.entries.filter((e) => after.has(e.when) && !before.has(e.when)).map((e) => e.tag);
}

/**
 * Applies the migrations on `client`, a connection of its own (db/client.ts opens it without the
 * query and statement timeouts: waiting for another process's migration, or a migration rewriting
 * a large table, may take longer than any query should), holding the migration lock meanwhile.
 */
export async function migratePostgres(client: pg.Client, options: MigrateOptions = {}): Promise<AppliedMigrations> {
  const folder = options.migrationsFolder ?? MIGRATIONS_FOLDER;
  await takeMigrationLock(client, options.log ?? ((line) => console.error(line)));
  try {
    return await reportingApplied((text) => client.query(text), folder, () => migratePg(drizzlePg({ client }), { migrationsFolder: folder }));
  } finally {
    // A connection that dropped has released the lock already; its error must not hide the migration's.
    await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
  }
}

/**
 * Takes the migration lock, waiting as long as another process holds it (its migration under way):
 * asked again every MIGRATION_LOCK_POLL_MS with pg_try_advisory_lock (no statement waits, so no
 * timeout ends the wait), and said in the log at once and every MIGRATION_WAIT_LOG_INTERVAL_MS.
 */
async function takeMigrationLock(client: pg.Client, log: (line: string) => void): Promise<void> {
  const started = performance.now();
  let saidAt: number | undefined;
  for (;;) {
    const { rows } = await client.query<{ locked: boolean }>('select pg_try_advisory_lock($1) as locked', [MIGRATION_LOCK_KEY]);
    if (rows[0]?.locked) {
      if (saidAt !== undefined) log(`[db] the other process's migration ended after ${Math.round((performance.now() - started) / 1000)} s; applying what is left to apply`);
      return;
    }
    if (saidAt === undefined || performance.now() - saidAt >= MIGRATION_WAIT_LOG_INTERVAL_MS) {
      const holder = await migrationLockHolder(client);
      log(
        saidAt === undefined
          ? `[db] waiting for another process's migration of the database${holder} to end before starting`
          : `[db] still waiting for another process's migration of the database${holder}: ${Math.round((performance.now() - started) / 1000)} s so far`,
      );
      saidAt = performance.now();
    }
    await sleep(MIGRATION_LOCK_POLL_MS);
  }
}

/** " (held by database session PID from ADDRESS)" for the log, or "" when it cannot be seen. */
async function migrationLockHolder(client: pg.Client): Promise<string> {
  try {
    // A bigint advisory key is stored as its high (classid) and low (objid) 32 bits, objsubid 1.
    const { rows } = await client.query<{ pid: number; addr: string | null }>(
      `select a.pid, host(a.client_addr) as addr from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'advisory' and l.granted and l.objsubid = 1 and l.classid::bigint = $1 and l.objid::bigint = $2`,
      [Math.floor(MIGRATION_LOCK_KEY / 2 ** 32), MIGRATION_LOCK_KEY % 2 ** 32],
    );
    const [holder] = rows;
    return holder ? ` (held by database session ${holder.pid}${holder.addr ? ` from ${holder.addr}` : ''})` : '';
  } catch {
    return '';
  }
}

export async function migratePglite(client: PGlite, options: Pick<MigrateOptions, 'migrationsFolder'> = {}): Promise<AppliedMigrations> {
  const folder = options.migrationsFolder ?? MIGRATIONS_FOLDER;
  return reportingApplied((text) => client.query<Record<string, unknown>>(text), folder, () => migrateWithPglite(drizzlePglite({ client }), { migrationsFolder: folder }));
}
