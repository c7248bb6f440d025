// Throwaway databases for tests, on both back ends:
// - postgres: a fresh database per call on the test server, dropped afterwards: the server at
//   TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test), or, when that does not
//   answer, an embedded Postgres that test/global-setup.ts started (test/helpers/test-postgres.ts);
// - pglite: a copy of a migrated template data directory (initdb + migrations take seconds in
//   PGlite, copying a directory takes milliseconds), removed afterwards.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { sql } from 'drizzle-orm';
import { inject } from 'vitest';
import { type FarmDb, type OpenDatabaseOptions, openDatabase, queryRows } from '../../db/client.ts';
import { MIGRATIONS_FOLDER, migratePglite } from '../../db/migrate.ts';
import { LOCK_FILE_NAME } from '../../db/pglite-lock.ts';
import { type FarmConfigOverrides, type FarmContext, farmConfigFrom } from '../../farm/config.ts';
import { DEFAULT_TEST_DATABASE_URL, withDatabase } from './test-postgres.ts';

/** The server global-setup chose (configured or embedded); the variable when run without it. */
function testServerUrl(): string {
  try {
    const provided = inject('testDatabaseUrl');
    if (provided) return provided;
  } catch {
    // Not inside a vitest worker.
  }
  return process.env.TEST_DATABASE_URL || DEFAULT_TEST_DATABASE_URL;
}

export const TEST_PG_URL = testServerUrl();

export type Backend = 'postgres' | 'pglite';
export const BACKENDS: readonly Backend[] = ['postgres', 'pglite'];

export interface TestDatabase {
  backend: Backend;
  /** postgres only */
  url?: string;
  /** pglite only */
  dataDir?: string;
  /** Options that make openDatabase (or a child process's env) use this database. */
  openOptions: OpenDatabaseOptions;
  /** Environment for a child process using this database. */
  env: Record<string, string>;
  open(options?: Omit<OpenDatabaseOptions, 'url' | 'dataDir'>): Promise<FarmDb>;
  /** Closes every handle opened through open() and deletes the database. */
  drop(): Promise<void>;
}

async function createPostgresDatabase(): Promise<TestDatabase> {
  const name = `blendfarm_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_PG_URL });
  try {
    await admin.connect();
  } catch (error) {
    throw new Error(`Postgres is not reachable at ${TEST_PG_URL} (${(error as Error).message}); start it or set TEST_DATABASE_URL.`);
  }
  try {
    await admin.query(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(TEST_PG_URL, name);
  const handles: FarmDb[] = [];
  return {
    backend: 'postgres',
    url,
    openOptions: { url },
    env: { DATABASE_URL: url },
    async open(options = {}) {
      const handle = await openDatabase({ ...options, url });
      handles.push(handle);
      return handle;
    },
    async drop() {
      await Promise.all(handles.map((h) => h.close().catch(() => {})));
      const client = new pg.Client({ connectionString: TEST_PG_URL });
      await client.connect();
      try {
        await client.query(`drop database if exists "${name}" with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}

function migrationsHash(): string {
  const hash = createHash('sha256');
  for (const file of fs.readdirSync(MIGRATIONS_FOLDER, { recursive: true }).map(String).sort()) {
    const full = path.join(MIGRATIONS_FOLDER, file);
    if (fs.statSync(full).isFile()) hash.update(file).update(fs.readFileSync(full));
  }
  return hash.digest('hex').slice(0, 16);
}

/** A migrated PGlite data directory shared by all test files (built once per migration set). */
async function pgliteTemplate(): Promise<string> {
  const template = path.join(os.tmpdir(), `blendfarm-pglite-template-${migrationsHash()}`);
  if (fs.existsSync(path.join(template, 'PG_VERSION'))) return template;
  const building = `${template}.building-${process.pid}-${randomBytes(3).toString('hex')}`;
  const client = await PGlite.create(building);
  await migratePglite(client);
  await client.close();
  try {
    fs.renameSync(building, template);
  } catch {
    // Another test file finished first; use theirs.
    fs.rmSync(building, { recursive: true, force: true });
  }
  return template;
}

async function createPgliteDatabase(): Promise<TestDatabase> {
  const template = await pgliteTemplate();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'blendfarm-pglite-'));
  fs.cpSync(template, dataDir, { recursive: true, filter: (source) => path.basename(source) !== LOCK_FILE_NAME });
  const handles: FarmDb[] = [];
  return {
    backend: 'pglite',
    dataDir,
    openOptions: { url: '', dataDir },
    env: { DATABASE_URL: '', BLENDFARM_DATA_DIR: dataDir },
    async open(options = {}) {
      const handle = await openDatabase({ ...options, url: '', dataDir });
      handles.push(handle);
      return handle;
    },
    async drop() {
      await Promise.all(handles.map((h) => h.close().catch(() => {})));
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function createTestDatabase(backend: Backend): Promise<TestDatabase> {
  return backend === 'postgres' ? createPostgresDatabase() : createPgliteDatabase();
}

/** Short leases and quick polling so failure paths play out in about a second. */
export const FAST_CONFIG: FarmConfigOverrides = {
  leaseSeconds: 1.5,
  heartbeatSeconds: 0.25,
  progressThrottleMs: 0,
  retryBackoffSeconds: 0,
  pollIntervalMs: 50,
  abortGraceMs: 1000,
  artifactDir: undefined,
};

export function testConfig(overrides: FarmConfigOverrides = {}) {
  return farmConfigFrom({}, { ...FAST_CONFIG, ...overrides, budget: { ...overrides.budget }, cost: { ...overrides.cost } });
}

export function farmContext(db: FarmDb, overrides: FarmConfigOverrides = {}): FarmContext {
  return { db, config: testConfig(overrides) };
}

/** A budget big enough that tests about other things never hit it. */
export const GENEROUS_BUDGET = { refillGpuSeconds: 1_000_000, maxActiveJobs: 10_000 };

export const CHEAP_BLEND = { prompts: ['a red fox', 'a blue whale'], width: 64, height: 64, steps: 2, maxBranches: 2, durationSeconds: 1, fps: 4 };

/** Pretends the lease ran out `secondsAgo` ago by the database's clock (the worker stopped heartbeating) without waiting for it. */
export async function expireLease(db: FarmDb, jobId: number, secondsAgo = 1): Promise<void> {
  await db.db.execute(sql`update jobs set lease_expires_at = now() - make_interval(secs => ${secondsAgo}::float8) where id = ${jobId}`);
}

/** Every budget_ledger sum next to the cached balance, for all users. */
export async function allBalances(db: FarmDb): Promise<Array<{ userId: string; balanceMs: number; ledgerSumMs: number }>> {
  const rows = await queryRows<{ id: string; balance_ms: string | number; ledger_sum_ms: string | number }>(
    db.db,
    sql`select u.id, u.balance_ms, (select coalesce(sum(amount_ms), 0) from budget_ledger l where l.user_id = u.id) as ledger_sum_ms from users u order by u.id`,
  );
  return rows.map((r) => ({ userId: r.id, balanceMs: Number(r.balance_ms), ledgerSumMs: Number(r.ledger_sum_ms) }));
}

export async function countRows(db: FarmDb, table: 'artifacts' | 'job_events' | 'budget_ledger' | 'jobs' | 'job_inputs', where = sql`true`): Promise<number> {
  const [row] = await queryRows<{ n: number }>(db.db, sql`select count(*)::int as n from ${sql.identifier(table)} where ${where}`);
  return row.n;
}

/**
 * Refill tests: the farm gives 10 GPU-seconds an hour, servers may give at most 100 per period of
 * at least an hour, and every job costs exactly 1 GPU-second.
 */
export const HOURLY_REFILL_CEILING: FarmConfigOverrides = {
  budget: { refillGpuSeconds: 10, refillPeriodSeconds: 3600, maxActiveJobs: 10 },
  guildCeilings: { maxRefillGpuSeconds: 100, minRefillPeriodSeconds: 3600, maxActiveJobs: 10 },
  cost: { overheadSeconds: 1, secondsPerMegapixelStep: 0, secondsPerMegapixelFrame: 0 },
};
