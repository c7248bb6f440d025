// Upgrading a database made by older migrations: migrations/0002_fk_on_delete_actions (generated from
// db/schema.ts) gives every foreign key to jobs its on-delete action on a database that already
// holds jobs, events, videos, pictures and ledger rows, on both drivers; retention, now a plain
// delete of jobs, then removes what belongs to old jobs and keeps the ledger and kept chains.
// migrations/0003_extend_movie_has_pictures flags the active extensions of movies with pictures that
// an older version stored without movieHasPictures, so the claim routes them to a picture model.
import fs, { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { getTableConfig } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migrateWithPglite } from 'drizzle-orm/pglite/migrator';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { type FarmDb, IN_MEMORY, openDatabase, queryRows } from '../../db/client.ts';
import { MIGRATIONS_FOLDER } from '../../db/migrate.ts';
import { jobs, schema } from '../../db/schema.ts';
import type { FarmContext } from '../../farm/config.ts';
import { cancelJob, getArtifact, getJob, submitJob } from '../../farm/jobs.ts';
import { claimJob, claimSpecificJob, completeJob } from '../../farm/queue.ts';
import { jobDigest, recoverSpool, Spool } from '../../farm/spool.ts';
import type { WorkerCapabilities } from '../../farm/types.ts';
import { pruneFarm } from '../../farm/retention.ts';
import type { JobKind } from '../../db/schema.ts';
import { allBalances, type Backend, BACKENDS, CHEAP_BLEND, countRows, createTestDatabase, farmContext, GENEROUS_BUDGET, type TestDatabase } from '../helpers/db.ts';

/** The migration that gave the foreign keys to jobs their on-delete actions. */
const PHOTO = readFileSync(new URL('../fixtures/photos/coffee.png', import.meta.url));

const FK_ACTIONS_MIGRATION = '0002_fk_on_delete_actions';
/** The migration that flagged extensions of movies with pictures stored before the flag existed. */
const MOVIE_HAS_PICTURES_MIGRATION = '0003_extend_movie_has_pictures';

interface Journal {
  entries: Array<{ idx: number; tag: string }>;
}

/** A migrations folder holding only the migrations before `tag` (what an older version shipped). */
function migrationsBefore(tag: string): string {
  const journal = JSON.parse(fs.readFileSync(path.join(MIGRATIONS_FOLDER, 'meta/_journal.json'), 'utf8')) as Journal;
  const cut = journal.entries.findIndex((e) => e.tag === tag);
  expect(cut, `${tag} in the journal`).toBeGreaterThan(0);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blendfarm-old-migrations-'));
  fs.mkdirSync(path.join(dir, 'meta'));
  const entries = journal.entries.slice(0, cut);
  fs.writeFileSync(path.join(dir, 'meta/_journal.json'), JSON.stringify({ ...journal, entries }));
  for (const e of entries) fs.copyFileSync(path.join(MIGRATIONS_FOLDER, `${e.tag}.sql`), path.join(dir, `${e.tag}.sql`));
  return dir;
}

/** confdeltype of every foreign key to jobs: a = no action, c = cascade, n = set null. */
async function jobForeignKeys(db: FarmDb): Promise<Record<string, string>> {
  const rows = await queryRows<{ tbl: string; col: string; action: string }>(
    db.db,
    sql`select c.conrelid::regclass::text as tbl, a.attname::text as col, c.confdeltype::text as action
        from pg_constraint c join pg_attribute a on a.attrelid = c.conrelid and a.attnum = any(c.conkey)
        where c.contype = 'f' and c.confrelid = 'jobs'::regclass`,
  );
  return Object.fromEntries(rows.map((r) => [`${r.tbl}.${r.col}`, r.action]));
}

it('declares an on-delete action for every foreign key to jobs in db/schema.ts (retention relies on them)', () => {
  const actions: Record<string, string | undefined> = {};
  for (const table of Object.values(schema)) {
    const config = getTableConfig(table);
    for (const fk of config.foreignKeys) {
      const ref = fk.reference();
      if (ref.foreignTable !== jobs) continue;
      actions[`${config.name}.${ref.columns.map((c) => c.name).join(',')}`] = fk.onDelete;
    }
  }
  expect(actions).toEqual({
    'artifacts.job_id': 'cascade',
    'job_events.job_id': 'cascade',
    'job_inputs.job_id': 'cascade',
    'budget_ledger.job_id': 'set null',
    'follow_up_requests.parent_job_id': 'cascade',
    'follow_up_requests.job_id': 'cascade',
    // A job a kept job continues from must stay: retention deletes children first.
    'jobs.parent_job_id': 'no action',
  });
});

/**
 * Columns today's code reads and writes that a later migration than those under test adds: the
 * tests fill the older database with today's functions, so these stand in while they do and are
 * dropped (oldDatabaseFilled) before the new version migrates it.
 */
const STAND_INS = [sql`alter table users add column if not exists refill_levels jsonb`, sql`alter table jobs add column if not exists user_error text`, sql`alter table workers add column if not exists instance uuid`, sql`alter table workers add column if not exists pid_namespace text`, sql`alter table workers add column if not exists lease_seconds double precision`];
const DROP_STAND_INS = [sql`alter table users drop column if exists refill_levels`, sql`alter table jobs drop column if exists user_error`, sql`alter table workers drop column if exists instance`, sql`alter table workers drop column if exists pid_namespace`, sql`alter table workers drop column if exists lease_seconds`];

/** The older database holds its rows: the stand-in columns go, as the older version never had them. */
async function oldDatabaseFilled(db: FarmDb): Promise<void> {
  for (const statement of DROP_STAND_INS) await db.db.execute(statement);
  await db.close();
}

/** A database as the version before migration `tag` left it; `open(true)` starts the new version on it (applies the pending migrations). */
async function olderDatabase(backend: Backend, tag: string, cleanup: Array<() => Promise<void> | void>): Promise<(migrate: boolean) => Promise<FarmDb>> {
  const oldMigrations = migrationsBefore(tag);
  cleanup.push(() => fs.rmSync(oldMigrations, { recursive: true, force: true }));
  if (backend === 'postgres') {
    const testDb: TestDatabase = await createTestDatabase('postgres');
    cleanup.push(() => testDb.drop());
    const client = new pg.Client({ connectionString: testDb.url });
    await client.connect();
    try {
      await migratePg(drizzlePg({ client }), { migrationsFolder: oldMigrations });
    } finally {
      await client.end();
    }
    return withStandIns((migrate) => testDb.open({ migrate }));
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'blendfarm-pglite-upgrade-'));
  cleanup.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const client = await PGlite.create(dataDir);
  await migrateWithPglite(drizzlePglite({ client }), { migrationsFolder: oldMigrations });
  await client.close();
  return withStandIns(async (migrate) => {
    const handle = await openDatabase({ url: '', dataDir, migrate });
    cleanup.push(() => handle.close().catch(() => {}));
    return handle;
  });
}

/** open(false) adds the stand-in columns (STAND_INS). */
function withStandIns(open: (migrate: boolean) => Promise<FarmDb>): (migrate: boolean) => Promise<FarmDb> {
  return async (migrate) => {
    const db = await open(migrate);
    if (!migrate) for (const statement of STAND_INS) await db.db.execute(statement);
    return db;
  };
}

describe.each(BACKENDS)('upgrading an older database on %s', (backend) => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterAll(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it('applies the foreign-key migration to a database holding rows; retention then deletes old jobs with what belongs to them', async () => {
    const open = await olderDatabase(backend, FK_ACTIONS_MIGRATION, cleanup);
    const old = await open(false);
    expect(await jobForeignKeys(old)).toEqual({
      'artifacts.job_id': 'a',
      'budget_ledger.job_id': 'a',
      'job_events.job_id': 'a',
      'job_inputs.job_id': 'a',
      'jobs.parent_job_id': 'a',
    });
    let farm: FarmContext = farmContext(old, { budget: GENEROUS_BUDGET, retention: { artifactDays: 0, jobDays: 90, maxArtifactBytes: 0 } });
    let seq = 0;
    const finished = async (daysAgo: number, parent?: { id: number; kind: JobKind }): Promise<number> => {
      const model = `upgrade-${++seq}`;
      const prompts = parent?.kind === 'extend' ? ['more'] : ['a', 'b'];
      const job = await submitJob(farm, { kind: parent?.kind ?? 'blend', userId: 'keeper', params: { ...CHEAP_BLEND, prompts, model }, parentJobId: parent?.id });
      const claimed = await claimJob(farm, 'w-upgrade', { models: [model], maxPixels: 1 << 30, executionProvider: 'test' });
      const artifact = { format: 'mp4', mime: 'video/mp4', sizeBytes: 10, meta: {}, data: Buffer.alloc(10, 7) };
      expect(await completeJob(farm, claimed!, { artifact, gpuSeconds: 0.5 })).toBe(true);
      await old.db.execute(sql`update jobs set finished_at = now() - make_interval(secs => ${daysAgo * 86_400}::float8) where id = ${job.id}`);
      return job.id;
    };
    const oldParent = await finished(200); // goes, with its child
    const oldChild = await finished(150, { id: oldParent, kind: 'reroll' });
    await old.db.execute(sql`insert into job_inputs (job_id, name, mime, bytes) values (${oldParent}, 'start', 'image/png', decode('89504e47', 'hex'))`);
    const keptParent = await finished(200); // stays: a young job continues from it
    const youngChild = await finished(10, { id: keptParent, kind: 'extend' });
    const activeParent = await finished(300); // stays: a queued job continues from it
    const queued = (await submitJob(farm, { kind: 'extend', userId: 'keeper', params: { ...CHEAP_BLEND, prompts: ['next'], model: 'upgrade-queued' }, parentJobId: activeParent })).id;
    const doomed = sql`(${oldParent}, ${oldChild})`;
    const eventsOfDoomed = await countRows(old, 'job_events', sql`job_id in ${doomed}`);
    const ledgerOfDoomed = await countRows(old, 'budget_ledger', sql`job_id in ${doomed}`);
    const ledgerUnlinked = await countRows(old, 'budget_ledger', sql`job_id is null`);
    const ledgerTotal = await countRows(old, 'budget_ledger');
    expect(eventsOfDoomed).toBeGreaterThanOrEqual(6);
    expect(ledgerOfDoomed).toBeGreaterThanOrEqual(4);
    await oldDatabaseFilled(old);

    // The new version starts: the pending migration runs on the populated database.
    const db = await open(true);
    farm = farmContext(db, { budget: GENEROUS_BUDGET, retention: { artifactDays: 0, jobDays: 90, maxArtifactBytes: 0 } });
    const applied = await queryRows<{ n: number }>(db.db, sql`select count(*)::int as n from drizzle.__drizzle_migrations`);
    const journal = JSON.parse(fs.readFileSync(path.join(MIGRATIONS_FOLDER, 'meta/_journal.json'), 'utf8')) as Journal;
    expect(applied[0].n).toBe(journal.entries.length);
    expect(await jobForeignKeys(db)).toEqual({
      'artifacts.job_id': 'c',
      'budget_ledger.job_id': 'n',
      'follow_up_requests.job_id': 'c',
      'follow_up_requests.parent_job_id': 'c',
      'job_events.job_id': 'c',
      'job_inputs.job_id': 'c',
      'jobs.parent_job_id': 'a',
    });
    expect(await countRows(db, 'jobs')).toBe(6); // nothing lost on the way

    const report = await pruneFarm(farm);
    expect(report).toMatchObject({ ran: true, jobs: 2, events: eventsOfDoomed, artifactsByAge: 2, artifactBytes: 20, otherRows: { job_inputs: 1 } });

    // Gone, with everything that belonged to them.
    expect(await getJob(farm, oldParent)).toBeUndefined();
    expect(await getJob(farm, oldChild)).toBeUndefined();
    expect(await countRows(db, 'jobs', sql`id in ${doomed}`)).toBe(0);
    expect(await countRows(db, 'job_events', sql`job_id in ${doomed}`)).toBe(0);
    expect(await countRows(db, 'artifacts', sql`job_id in ${doomed}`)).toBe(0);
    expect((await queryRows<{ n: number }>(db.db, sql`select count(*)::int as n from job_inputs where job_id in ${doomed}`))[0].n).toBe(0);
    // Ledger rows kept, their job links nulled; balances still equal the ledger.
    expect(await countRows(db, 'budget_ledger')).toBe(ledgerTotal);
    expect(await countRows(db, 'budget_ledger', sql`job_id in ${doomed}`)).toBe(0);
    expect(await countRows(db, 'budget_ledger', sql`job_id is null`)).toBe(ledgerUnlinked + ledgerOfDoomed);
    expect(await countRows(db, 'budget_ledger', sql`job_id is null and note like ${`blend job ${oldParent}`}`)).toBe(1);
    for (const balance of await allBalances(db)) expect(balance.balanceMs).toBe(balance.ledgerSumMs);

    // Kept: chains a kept job continues from, with their links and videos.
    for (const id of [keptParent, youngChild, activeParent]) {
      expect((await getJob(farm, id))?.status, `job ${id}`).toBe('done');
      expect((await getArtifact(farm, id))?.bytes.length, `video of job ${id}`).toBe(10);
    }
    expect((await getJob(farm, youngChild))?.parentJobId).toBe(keptParent);
    expect((await getJob(farm, queued))).toMatchObject({ status: 'queued', parentJobId: activeParent });
    expect(await countRows(db, 'jobs')).toBe(4);
  });
});

describe.each(BACKENDS)('upgrading extensions stored before movieHasPictures on %s', (backend) => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterAll(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it('backfills the flag on queued and running extensions of a movie with pictures; a text-only worker no longer claims them, a spooled render of one is still completed', async () => {
    const open = await olderDatabase(backend, MOVIE_HAS_PICTURES_MIGRATION, cleanup);
    const old = await open(false);
    let farm: FarmContext = farmContext(old, { budget: GENEROUS_BUDGET, leaseSeconds: 300 });
    const withEncoder: WorkerCapabilities = { models: ['enc'], modelAbilities: { enc: ['text', 'picture'] }, maxPixels: 10_000_000, executionProvider: 'test' };
    const textOnly: WorkerCapabilities = { models: ['enc'], modelAbilities: { enc: ['text'] }, maxPixels: 10_000_000, executionProvider: 'test' };
    const params = { ...CHEAP_BLEND, model: 'enc' };
    const artifact = { format: 'mp4', mime: 'video/mp4', sizeBytes: 1, meta: {}, data: Buffer.from('v') };
    const finish = async (id: number) => {
      const claimed = await claimSpecificJob(farm, 'w-old', id, withEncoder);
      expect(await completeJob(farm, claimed!, { artifact, gpuSeconds: 0.1 })).toBe(true);
    };
    // What the older version stored: extensions without the flag.
    const asOlderVersion = async (id: number) => void (await old.db.execute(sql`update jobs set params = params - 'movieHasPictures' where id = ${id}`));
    const extend = async (parentJobId: number, prompt: string) => {
      const job = await submitJob(farm, { kind: 'extend', userId: 'fay', parentJobId, params: { ...params, prompts: [prompt] } });
      await asOlderVersion(job.id);
      return job.id;
    };
    const pictured = (await submitJob(farm, { kind: 'blend', userId: 'fay', params: { ...params, images: [{ index: 1, strength: 0.5 }] }, inputs: { 'image-2': PHOTO } })).id;
    await finish(pictured);
    const plain = (await submitJob(farm, { kind: 'blend', userId: 'fay', params })).id;
    await finish(plain);
    const finishedExtension = await extend(pictured, 'done');
    await finish(finishedExtension);
    const queued = await extend(pictured, 'queued');
    const deeper = await extend(finishedExtension, 'deeper'); // the pictures are two links up
    const plainExtension = await extend(plain, 'plain');
    const cancelled = await extend(pictured, 'cancelled');
    await cancelJob(farm, cancelled);
    // Running on an old worker, which spooled its render and lost the database.
    const running = await extend(pictured, 'running');
    const claimed = await claimSpecificJob(farm, 'w-old', running, withEncoder);
    const spoolDir = fs.mkdtempSync(path.join(os.tmpdir(), 'blendfarm-upgrade-spool-'));
    cleanup.push(() => fs.rmSync(spoolDir, { recursive: true, force: true }));
    const spool = new Spool(spoolDir);
    const video = Buffer.from('the render of the running extension');
    spool.release(await spool.put({ jobId: running, attempt: claimed!.attempt, leaseToken: claimed!.leaseToken, workerId: 'w-old', format: 'mp4', mime: 'video/mp4', meta: {}, gpuSeconds: 0.5, jobDigest: jobDigest(claimed!), queuedEventId: claimed!.queuedEventId }, video));
    const flagged = async (db: FarmDb) =>
      (await queryRows<{ id: number }>(db.db, sql`select id::int from jobs where params @> '{"movieHasPictures": true}'::jsonb order by id`)).map((r) => r.id);
    expect(await flagged(old)).toEqual([]);
    await oldDatabaseFilled(old);

    const db = await open(true);
    farm = farmContext(db, { budget: GENEROUS_BUDGET, leaseSeconds: 300 });
    // Active extensions of the picture movie, however far down the chain; not the text movie's, not finished ones.
    expect(await flagged(db)).toEqual([queued, deeper, running]);
    expect((await getJob(farm, plainExtension))?.params.movieHasPictures).toBeUndefined();
    // The claim routes them: the text-only worker gets only the text movie's extension.
    expect((await claimJob(farm, 'w-text', textOnly))?.id).toBe(plainExtension);
    expect(await claimJob(farm, 'w-text', textOnly)).toBeUndefined();
    expect((await claimJob(farm, 'w-enc', withEncoder))?.id).toBe(queued);
    expect((await claimJob(farm, 'w-enc', withEncoder))?.id).toBe(deeper);
    // The render spooled before the upgrade is the same job: completed, not deleted as changed.
    const lines: string[] = [];
    const counts = await recoverSpool({
      farm,
      spool,
      workerId: 'w-new',
      capabilities: withEncoder,
      log: (line) => lines.push(line),
      complete: (lease, entry, bytes) => completeJob(farm, lease, { artifact: { format: entry.format, mime: entry.mime, sizeBytes: bytes.byteLength, meta: entry.meta, data: bytes }, gpuSeconds: entry.gpuSeconds }),
      reported: new Map(),
    });
    expect(lines.join('\n')).toContain(`job ${running}: completed from the spool`);
    expect(counts.completed).toBe(1);
    expect(await getJob(farm, running)).toMatchObject({ status: 'done', spentGpuSeconds: 0.5 });
    expect((await getArtifact(farm, running))?.bytes.toString()).toBe(video.toString());
  });
});

describe('the line an upgrade logs', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterAll(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it('names the migrations applied to a database that had the tables, once; a new or current database logs nothing', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'blendfarm-pglite-upgrade-log-'));
    cleanup.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    const oldMigrations = migrationsBefore(MOVIE_HAS_PICTURES_MIGRATION);
    cleanup.push(() => fs.rmSync(oldMigrations, { recursive: true, force: true }));
    const client = await PGlite.create(dataDir);
    await migrateWithPglite(drizzlePglite({ client }), { migrationsFolder: oldMigrations });
    await client.close();

    const journal = JSON.parse(fs.readFileSync(path.join(MIGRATIONS_FOLDER, 'meta/_journal.json'), 'utf8')) as Journal;
    const pending = journal.entries.slice(journal.entries.findIndex((e) => e.tag === MOVIE_HAS_PICTURES_MIGRATION)).map((e) => e.tag);
    const lines: string[] = [];
    const upgraded = await openDatabase({ url: '', dataDir, migrate: true, log: (l) => lines.push(l) });
    await upgraded.close();
    expect(lines).toEqual([`[db] upgraded the database at ${path.resolve(dataDir)}: applied migrations ${pending.join(', ')}`]);

    const again = await openDatabase({ url: '', dataDir, migrate: true, log: (l) => lines.push(l) });
    await again.close();
    const fresh = await openDatabase({ url: '', dataDir: IN_MEMORY, migrate: true, log: (l) => lines.push(l) });
    await fresh.close();
    expect(lines).toHaveLength(1);
  });
});
