// The storage layer: migrations apply once (also when several processes start together),
// binary artifacts survive both drivers, and an embedded PGlite directory has one owner.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../db/client.ts';
import { DataDirLockedError, LOCK_FILE_NAME } from '../../db/pglite-lock.ts';
import { pidNamespace } from '../../db/process-identity.ts';
import { getArtifact, submitJob } from '../../farm/jobs.ts';
import { claimJob, completeJob } from '../../farm/queue.ts';
import type { ClaimedJob } from '../../farm/types.ts';
import { BACKENDS, CHEAP_BLEND, createTestDatabase, farmContext, type TestDatabase } from '../helpers/db.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TABLES = ['artifacts', 'budget_ledger', 'follow_up_requests', 'guilds', 'job_events', 'job_inputs', 'jobs', 'users', 'workers'];

describe.each(BACKENDS)('database on %s', (backend) => {
  const dropped: TestDatabase[] = [];
  afterAll(async () => {
    for (const testDb of dropped) await testDb.drop();
  });

  it('creates every table once, however many processes open it at the same time', async () => {
    const testDb = await createTestDatabase(backend);
    dropped.push(testDb);
    // PGlite allows one opener, so only Postgres can race.
    const handles = backend === 'postgres' ? await Promise.all([1, 2, 3].map(() => testDb.open({ poolSize: 1 }))) : [await testDb.open()];
    const tables = await queryRows<{ table_name: string }>(
      handles[0].db,
      sql`select table_name from information_schema.tables where table_schema = 'public' order by table_name`,
    );
    expect(tables.map((t) => t.table_name)).toEqual(TABLES);
    const migrations = await queryRows<{ n: number }>(handles[0].db, sql`select count(*)::int as n from drizzle.__drizzle_migrations`);
    const journal = JSON.parse(fs.readFileSync(path.join(ROOT, 'migrations/meta/_journal.json'), 'utf8')) as { entries: unknown[] };
    expect(migrations[0].n).toBe(journal.entries.length);
  });

  it('stores and returns artifact bytes exactly', async () => {
    const testDb = await createTestDatabase(backend);
    dropped.push(testDb);
    const db = await testDb.open();
    const farm = farmContext(db);
    const job = await submitJob(farm, { kind: 'blend', userId: 'bytes', params: CHEAP_BLEND });
    const claimed = (await claimJob(farm, 'w', { models: ['*'], maxPixels: 1e7, executionProvider: 'test' })) as ClaimedJob;
    const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256));
    await completeJob(farm, claimed, { artifact: { format: 'webm', mime: 'video/webm', sizeBytes: bytes.length, meta: { seeds: [1, 2] }, data: bytes }, gpuSeconds: 1 });
    const artifact = await getArtifact(farm, job.id);
    expect(Buffer.isBuffer(artifact?.bytes)).toBe(true);
    expect(artifact?.bytes.equals(bytes)).toBe(true);
    expect(artifact).toMatchObject({ format: 'webm', mime: 'video/webm', sizeBytes: 4096, meta: { seeds: [1, 2] } });
  });
});

describe('embedded PGlite data directory lock', () => {
  it('refuses a second opener with a clear message and releases the lock on close', async () => {
    const testDb = await createTestDatabase('pglite');
    const dataDir = testDb.dataDir!;
    const db = await testDb.open();
    const lockFile = path.join(dataDir, LOCK_FILE_NAME);
    expect(JSON.parse(fs.readFileSync(lockFile, 'utf8'))).toMatchObject({ pid: process.pid });

    // Twice in one process.
    await expect(testDb.open()).rejects.toThrow(DataDirLockedError);
    await expect(testDb.open()).rejects.toThrow(/already open in this process/);

    // Another process: the operator CLI.
    const child = spawn(process.execPath, ['--import', 'tsx', 'apps/farm-cli/main.ts', 'status'], {
      cwd: ROOT,
      env: { ...process.env, ...testDb.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = await once(child, 'exit');
    expect(code).toBe(1);
    expect(stderr).toContain(`The PGlite data directory ${dataDir} is in use by process ${process.pid}`);
    expect(stderr).toContain('set DATABASE_URL');

    await db.close();
    expect(fs.existsSync(lockFile)).toBe(false);
    await testDb.drop();
  });

  it('takes over a lock left behind by a process that no longer exists', async () => {
    const testDb = await createTestDatabase('pglite');
    const child = spawn(process.execPath, ['-e', '0']);
    await once(child, 'exit');
    const lockFile = path.join(testDb.dataDir!, LOCK_FILE_NAME);
    // Written by a process of this pid namespace (db/process-identity.ts): only there is its pid tested.
    fs.writeFileSync(lockFile, JSON.stringify({ pid: child.pid, host: (await import('node:os')).hostname(), pidNamespace: pidNamespace(), startedAt: new Date(0).toISOString() }));

    const db = await testDb.open();
    expect(JSON.parse(fs.readFileSync(lockFile, 'utf8')).pid).toBe(process.pid);
    const [row] = await queryRows<{ one: number }>(db.db, sql`select 1 as one`);
    expect(row.one).toBe(1);
    await testDb.drop();
  });
});
