// Issue 9, item 9: retention by age and total size deletes old videos, jobs and events, keeps the
// ledger balanced, and never touches queued or running jobs or the jobs they continue from.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { farmCli } from '../../apps/farm-cli/main.ts';
import { queryRows, type FarmDb } from '../../db/client.ts';
import type { FarmContext, FarmConfigOverrides } from '../../farm/config.ts';
import { ParentVideoGoneError } from '../../farm/errors.ts';
import { checkFollowUpParent } from '../../farm/follow-up-rule.ts';
import { getArtifact, getJob, submitJob } from '../../farm/jobs.ts';
import type { JobKind } from '../../db/schema.ts';
import { claimJob, completeJob } from '../../farm/queue.ts';
import { pruneFarm } from '../../farm/retention.ts';
import { allBalances, BACKENDS, CHEAP_BLEND, countRows, farmContext, GENEROUS_BUDGET } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

describe.each(BACKENDS)('retention on %s (item 9)', (backend) => {
  let db: FarmDb;
  let seq = 0;

  useTestFarm(backend, {}, (t) => ({ db } = t));

  const farmWith = (retention: FarmConfigOverrides['retention'], extra: FarmConfigOverrides = {}): FarmContext =>
    farmContext(db, { budget: GENEROUS_BUDGET, retention: { artifactDays: 0, jobDays: 0, maxArtifactBytes: 0, ...retention }, ...extra });

  /** A job of its own model, rendered and finished `daysAgo` days ago with `size` bytes of video. */
  async function finished(farm: FarmContext, daysAgo: number, size = 10, parent?: { id: number; kind: JobKind }): Promise<number> {
    const model = `ret-${++seq}`;
    const prompts = parent?.kind === 'extend' ? ['more'] : ['a', 'b'];
    const job = await submitJob(farm, { kind: parent?.kind ?? 'blend', userId: 'keeper', params: { ...CHEAP_BLEND, prompts, model }, parentJobId: parent?.id });
    const claimed = await claimJob(farm, 'w-ret', { models: [model], maxPixels: 1 << 30, executionProvider: 'test' });
    const name = farm.config.artifactDir ? `job-${job.id}.mp4` : undefined;
    if (name) fs.writeFileSync(path.join(farm.config.artifactDir!, name), Buffer.alloc(size, 1));
    const artifact = { format: 'mp4', mime: 'video/mp4', sizeBytes: size, meta: {}, ...(name ? { path: name } : { data: Buffer.alloc(size, 7) }) };
    expect(await completeJob(farm, claimed!, { artifact, gpuSeconds: 0.5 })).toBe(true);
    await db.db.execute(sql`update jobs set finished_at = now() - make_interval(secs => ${daysAgo * 86_400}::float8) where id = ${job.id}`);
    return job.id;
  }

  /** A job started from `parent` and left queued (or claimed: running). */
  async function activeChild(farm: FarmContext, parent: number, running: boolean): Promise<number> {
    const model = `ret-${++seq}`;
    const job = await submitJob(farm, { kind: 'extend', userId: 'keeper', params: { ...CHEAP_BLEND, prompts: ['next'], model }, parentJobId: parent });
    if (running) expect((await claimJob(farm, 'w-ret', { models: [model], maxPixels: 1 << 30, executionProvider: 'test' }))?.id).toBe(job.id);
    return job.id;
  }

  it('deletes videos older than artifactDays (a dry run first deletes nothing), keeping the job rows', async () => {
    const farm = farmWith({ artifactDays: 30 });
    const old = await finished(farm, 40, 1000);
    const recent = await finished(farm, 2, 1000);
    const dry = await pruneFarm(farm, { dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, ran: true, artifactsByAge: 1, artifactBytes: 1000, jobs: 0 });
    expect(await getArtifact(farm, old)).toBeDefined();

    const report = await pruneFarm(farm);
    expect(report).toMatchObject({ dryRun: false, artifactsByAge: 1, artifactBytes: 1000, jobs: 0 });
    expect(await getArtifact(farm, old)).toBeUndefined();
    expect((await getJob(farm, old))?.status).toBe('done');
    expect(await getArtifact(farm, recent)).toBeDefined();
    expect((await pruneFarm(farm)).artifactsByAge).toBe(0);
  });

  it('never touches what a queued or running job continues from, however old (safe while jobs run)', async () => {
    const farm = farmWith({ artifactDays: 30, jobDays: 60, maxArtifactBytes: 1 });
    const grandparent = await finished(farm, 400, 500);
    const parent = await finished(farm, 300, 500, { id: grandparent, kind: 'extend' });
    const running = await activeChild(farm, parent, true);
    const lonelyParent = await finished(farm, 300, 500);
    const queued = await activeChild(farm, lonelyParent, false);

    await pruneFarm(farm);
    for (const id of [grandparent, parent, lonelyParent]) {
      expect((await getJob(farm, id))?.status, `job ${id}`).toBe('done');
      expect((await getArtifact(farm, id))?.bytes.length, `video of job ${id}`).toBe(500);
    }
    expect((await getJob(farm, running))?.status).toBe('running');
    expect((await getJob(farm, queued))?.status).toBe('queued');
    await db.db.execute(sql`update jobs set status = 'cancelled', finished_at = now() - interval '1000 days', lease_token = null where id in (${running}, ${queued})`);
  });

  // Concurrent transactions need two connections: Postgres only (PGlite runs one at a time).
  it.skipIf(backend === 'pglite')('never deletes the video or job a follow-up being submitted holds, and a submission waits for a delete under way', async () => {
    const farm = farmWith({ artifactDays: 30, jobDays: 60 });
    await pruneFarm(farm); // what earlier tests left
    const parent = await finished(farm, 100, 10);
    // A submission between its parent check and its commit (submitJob's transaction): the parent and
    // its video are locked, the new job not visible yet. Retention, meanwhile, deletes neither.
    const during = await db.db.transaction(async (tx) => {
      await checkFollowUpParent(tx, 'extend', parent, { lock: true });
      return pruneFarm(farm);
    });
    expect(during).toMatchObject({ ran: true, artifactsByAge: 0, jobs: 0 });
    expect((await getArtifact(farm, parent))?.bytes.length).toBe(10);
    // Committed, the new job protects both from then on.
    const child = await activeChild(farm, parent, false);
    expect(await pruneFarm(farm)).toMatchObject({ artifactsByAge: 0, jobs: 0 });
    expect((await getArtifact(farm, parent))?.bytes.length).toBe(10);
    await db.db.execute(sql`update jobs set status = 'cancelled', finished_at = now() - interval '1000 days' where id = ${child}`);

    // The other order: retention holds the video (its first statement locks what it will delete) and
    // deletes it; a submission meanwhile waits, then finds the video gone and is refused.
    const other = await finished(farm, 10, 10);
    let submission: Promise<unknown> | undefined;
    await db.db.transaction(async (tx) => {
      await tx.execute(sql`select id from artifacts where job_id = ${other} for update`);
      submission = submitJob(farm, { kind: 'extend', userId: 'keeper', parentJobId: other, params: { ...CHEAP_BLEND, prompts: ['next'], model: 'ret-waits' } }).then(
        () => 'admitted',
        (e: unknown) => e,
      );
      const waited = await Promise.race([submission, new Promise((resolve) => setTimeout(() => resolve('waiting'), 300))]);
      expect(waited).toBe('waiting');
      await tx.execute(sql`delete from artifacts where job_id = ${other}`);
    });
    const refused = await submission;
    expect(refused).toBeInstanceOf(ParentVideoGoneError);
    expect(await countRows(db, 'jobs', sql`parent_job_id = ${other}`)).toBe(0);
  });

  it('deletes the oldest videos while all of them take more than maxArtifactBytes', async () => {
    await pruneFarm(farmWith({ maxArtifactBytes: 1 })); // start from nothing but protected videos
    const base = Number((await queryRows<{ n: string | number }>(db.db, sql`select coalesce(sum(size_bytes), 0) as n from artifacts`))[0].n);
    const farm = farmWith({ maxArtifactBytes: base + 350 });
    const oldest = await finished(farm, 0.3, 100);
    const middle = await finished(farm, 0.2, 200);
    const newest = await finished(farm, 0.1, 300);
    const report = await pruneFarm(farm);
    expect(report).toMatchObject({ artifactsBySize: 2, artifactBytes: 300 });
    expect(await getArtifact(farm, oldest)).toBeUndefined();
    expect(await getArtifact(farm, middle)).toBeUndefined();
    expect((await getArtifact(farm, newest))?.bytes.length).toBe(300);
  });

  it('deletes jobs older than jobDays with their events and videos, child before parent; the ledger still balances', async () => {
    const farm = farmWith({ jobDays: 90 });
    const parent = await finished(farm, 200, 10);
    const child = await finished(farm, 150, 10, { id: parent, kind: 'reroll' });
    const young = await finished(farm, 10, 10);
    const ledgerBefore = await countRows(db, 'budget_ledger');
    const report = await pruneFarm(farm);
    expect(report.jobs).toBeGreaterThanOrEqual(2);
    expect(report.events).toBeGreaterThanOrEqual(6);
    expect(await getJob(farm, parent)).toBeUndefined();
    expect(await getJob(farm, child)).toBeUndefined();
    expect(await countRows(db, 'job_events', sql`job_id in (${parent}, ${child})`)).toBe(0);
    expect(await countRows(db, 'artifacts', sql`job_id in (${parent}, ${child})`)).toBe(0);
    expect((await getJob(farm, young))?.status).toBe('done');
    // Ledger rows stay, with the job id cleared and the note naming the job.
    expect(await countRows(db, 'budget_ledger')).toBe(ledgerBefore);
    expect(await countRows(db, 'budget_ledger', sql`job_id is null and note like ${`blend job ${parent}`}`)).toBe(1);
    for (const balance of await allBalances(db)) expect(balance.balanceMs).toBe(balance.ledgerSumMs);
  });

  it('keeps an old job a kept child continues from (its link intact); a deleted job takes its pictures along', async () => {
    const farm = farmWith({ jobDays: 90 });
    const oldParent = await finished(farm, 200, 10);
    const youngChild = await finished(farm, 10, 10, { id: oldParent, kind: 'extend' });
    const withPictures = await finished(farm, 120, 10);
    await db.db.execute(sql`insert into job_inputs (job_id, name, mime, bytes) values (${withPictures}, 'start', 'image/png', decode('89504e47', 'hex')), (${withPictures}, 'end', 'image/png', decode('89504e47', 'hex'))`);
    const report = await pruneFarm(farm);
    expect(report.otherRows).toEqual({ job_inputs: 2 });
    expect(await getJob(farm, withPictures)).toBeUndefined();
    expect((await queryRows<{ n: number }>(db.db, sql`select count(*)::int as n from job_inputs where job_id = ${withPictures}`))[0].n).toBe(0);
    expect(await countRows(db, 'budget_ledger', sql`job_id is null and note like ${`blend job ${withPictures}`}`)).toBe(1);
    expect((await getJob(farm, oldParent))?.status).toBe('done');
    expect((await getArtifact(farm, oldParent))?.bytes.length).toBe(10);
    expect((await getJob(farm, youngChild))?.parentJobId).toBe(oldParent);
    // The database itself refuses to delete a job another job continues from (parent_job_id: no action).
    const refused = await db.db.execute(sql`delete from jobs where id = ${oldParent}`).then(
      () => undefined,
      (err: unknown) => err as { code?: string; constraint?: string; cause?: { code?: string; constraint?: string } },
    );
    // A foreign-key violation (SQLSTATE 23503) on the parent link, whatever the driver wraps it in.
    expect(refused?.cause?.code ?? refused?.code).toBe('23503');
    expect(refused?.cause?.constraint ?? refused?.constraint).toBe('jobs_parent_job_id_jobs_id_fk');
    expect((await getJob(farm, oldParent))?.status).toBe('done');
    // Parent and child together in one statement is fine (the check runs at its end), events and videos go along.
    await db.db.execute(sql`delete from jobs where id in (${oldParent}, ${youngChild})`);
    expect(await countRows(db, 'jobs', sql`id in (${oldParent}, ${youngChild})`)).toBe(0);
    expect(await countRows(db, 'job_events', sql`job_id in (${oldParent}, ${youngChild})`)).toBe(0);
    expect(await countRows(db, 'artifacts', sql`job_id in (${oldParent}, ${youngChild})`)).toBe(0);
  });

  it('removes files from the artifact directory, and runs as `npm run farm -- prune`', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blendfarm-retention-'));
    try {
      const farm = farmWith({ artifactDays: 30 }, { artifactDir: dir });
      const old = await finished(farm, 31, 64);
      expect(fs.readdirSync(dir)).toEqual([`job-${old}.mp4`]);
      const out: string[] = [];
      const env = { BLENDFARM_ARTIFACT_DIR: dir, BLENDFARM_RETENTION_ARTIFACT_DAYS: '30', BLENDFARM_RETENTION_JOB_DAYS: '0' };
      const dry = await farmCli(['prune', '--dry-run', '--json'], { db, env, stdout: (t) => out.push(t), stderr: () => {} });
      expect(dry).toBe(0);
      expect(JSON.parse(out.pop()!)).toMatchObject({ dryRun: true, ran: true, artifactsByAge: 1, artifactBytes: 64, files: 0 });
      expect(fs.readdirSync(dir)).toHaveLength(1);
      expect(await farmCli(['prune'], { db, env, stdout: (t) => out.push(t), stderr: () => {} })).toBe(0);
      expect(out.pop()).toBe('Deleted 1 video(s) (0.0 MB; 0 for the size cap), 0 job(s), 0 event(s); removed 1 file(s).');
      expect(fs.readdirSync(dir)).toEqual([]);
      expect(await getArtifact(farm, old)).toBeUndefined();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
