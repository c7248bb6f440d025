// Retention of pictures (job_inputs) of jobs that never rendered: a hostile-user review stored
// 92.9 MiB for free by submitting /blend with two 10 MiB pictures and cancelling at once (fully
// refunded), the pictures kept until the job itself went after 90 days. unrenderedInputHours deletes
// the pictures of failed and cancelled jobs without a video once they ended that long ago; those of
// younger ones, of done jobs and of jobs a late render may still finish stay.
import { readFileSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { farmCli } from '../../apps/farm-cli/main.ts';
import { type FarmDb, queryRows } from '../../db/client.ts';
import type { FarmConfigOverrides, FarmContext } from '../../farm/config.ts';
import { cancelJob, getJob, getJobInputs, submitJob } from '../../farm/jobs.ts';
import { claimJob, completeJob } from '../../farm/queue.ts';
import { pruneOnce } from '../../farm/housekeeping.ts';
import { describePrune, pruneFarm } from '../../farm/retention.ts';
import { BACKENDS, CHEAP_BLEND, farmContext, GENEROUS_BUDGET } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

const PHOTO = new Uint8Array(readFileSync(new URL('../fixtures/photos/coffee.png', import.meta.url)));
const OTHER = new Uint8Array(readFileSync(new URL('../fixtures/photos/chelsea-crop.png', import.meta.url)));

describe.each(BACKENDS)('retention of unrendered jobs\' pictures on %s', (backend) => {
  let db: FarmDb;
  let seq = 0;

  useTestFarm(backend, {}, (t) => ({ db } = t));

  const farmWith = (retention: FarmConfigOverrides['retention'], extra: FarmConfigOverrides = {}): FarmContext =>
    farmContext(db, { budget: GENEROUS_BUDGET, retention: { artifactDays: 0, jobDays: 0, maxArtifactBytes: 0, ...retention }, ...extra });

  const inputRows = async (jobId: number) =>
    (await queryRows<{ n: number; bytes: number }>(db.db, sql`select count(*)::int as n, coalesce(sum(octet_length(bytes)), 0)::float8 as bytes from job_inputs where job_id = ${jobId}`))[0];

  const endedAgo = (jobId: number, hours: number) => db.db.execute(sql`update jobs set finished_at = now() - make_interval(secs => ${hours * 3600}::float8) where id = ${jobId}`);

  /** A blend from two pictures (start and end), cancelled at once, ended `hours` ago. */
  async function cancelledWithPictures(farm: FarmContext, hours: number, userId = 'mallory'): Promise<number> {
    const job = await submitJob(farm, { kind: 'blend', userId, params: { ...CHEAP_BLEND, model: `pic-${++seq}`, images: [{ index: 0 }, { index: 1 }] }, inputs: { 'image-1': PHOTO, 'image-2': OTHER } });
    await cancelJob(farm, job.id);
    await endedAgo(job.id, hours);
    return job.id;
  }

  /** A job rendered and done `hours` ago, with two pictures stored. */
  async function doneWithPictures(farm: FarmContext, hours: number): Promise<number> {
    const model = `pic-${++seq}`;
    const job = await submitJob(farm, { kind: 'blend', userId: 'keeper', params: { ...CHEAP_BLEND, model } });
    const claimed = await claimJob(farm, 'w-pic', { models: [model], maxPixels: 1 << 30, executionProvider: 'test' });
    expect(await completeJob(farm, claimed!, { artifact: { format: 'mp4', mime: 'video/mp4', sizeBytes: 10, meta: {}, data: Buffer.alloc(10, 7) }, gpuSeconds: 0.5 })).toBe(true);
    await db.db.execute(sql`insert into job_inputs (job_id, name, mime, bytes) values (${job.id}, 'image-1', 'image/png', ${Buffer.from(PHOTO)}), (${job.id}, 'image-2', 'image/png', ${Buffer.from(OTHER)})`);
    await endedAgo(job.id, hours);
    return job.id;
  }

  it('deletes the pictures of a cancelled job that ended longer ago than the window (rows and bytes), keeps a younger one and a done job\'s', async () => {
    const farm = farmWith({ unrenderedInputHours: 24 });
    const old = await cancelledWithPictures(farm, 25);
    const young = await cancelledWithPictures(farm, 23);
    const done = await doneWithPictures(farm, 1000);
    expect(await inputRows(old)).toEqual({ n: 2, bytes: PHOTO.length + OTHER.length });

    const dry = await pruneFarm(farm, { dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, unrenderedInputs: 2, unrenderedInputBytes: PHOTO.length + OTHER.length });
    expect((await inputRows(old)).n).toBe(2);

    const report = await pruneFarm(farm);
    expect(report).toMatchObject({ dryRun: false, ran: true, unrenderedInputs: 2, unrenderedInputBytes: PHOTO.length + OTHER.length, jobs: 0, otherRows: {} });
    expect(describePrune(report)).toBe(`Deleted 0 video(s) (0.0 MB; 0 for the size cap), 0 job(s), 0 event(s), 2 picture(s) of unrendered jobs (${((PHOTO.length + OTHER.length) / 1_000_000).toFixed(1)} MB).`);
    expect(await inputRows(old)).toEqual({ n: 0, bytes: 0 });
    expect((await getJob(farm, old))?.status).toBe('cancelled'); // the job row stays
    expect((await inputRows(young)).n).toBe(2);
    expect(await inputRows(done)).toEqual({ n: 2, bytes: PHOTO.length + OTHER.length });
    expect(await pruneFarm(farm)).toMatchObject({ unrenderedInputs: 0, unrenderedInputBytes: 0 });

    // 0 turns the rule off.
    await endedAgo(young, 10_000);
    expect(await pruneFarm(farmWith({ unrenderedInputHours: 0 }))).toMatchObject({ unrenderedInputs: 0 });
    expect((await inputRows(young)).n).toBe(2);
    // On by default (24 h).
    expect((await pruneFarm(farmContext(db, { budget: GENEROUS_BUDGET, retention: { artifactDays: 0, jobDays: 0, maxArtifactBytes: 0 } }))).unrenderedInputs).toBe(2);
    expect((await inputRows(young)).n).toBe(0);
  });

  it('keeps a failed job\'s pictures while a late render may still finish it (lease token kept), and deletes them after', async () => {
    const farm = farmWith({ unrenderedInputHours: 1 }, { queueTimeoutSeconds: 48 * 3600 });
    const reaped = await cancelledWithPictures(farm, 0);
    // As reapExpiredLeases leaves a job failed on its last attempt: failed, its lease token kept.
    await db.db.execute(sql`update jobs set status = 'failed', lease_token = gen_random_uuid() where id = ${reaped}`);
    await endedAgo(reaped, 25);
    const failed = await cancelledWithPictures(farm, 0);
    await db.db.execute(sql`update jobs set status = 'failed' where id = ${failed}`);
    await endedAgo(failed, 2);

    expect(await pruneFarm(farm)).toMatchObject({ unrenderedInputs: 2 });
    expect((await inputRows(failed)).n).toBe(0);
    expect((await inputRows(reaped)).n).toBe(2);
    await endedAgo(reaped, 49);
    expect(await pruneFarm(farm)).toMatchObject({ unrenderedInputs: 2 });
    expect((await inputRows(reaped)).n).toBe(0);
  });

  it('`npm run farm -- prune` reports them (BLENDFARM_RETENTION_UNRENDERED_INPUT_HOURS)', async () => {
    const farm = farmWith({ unrenderedInputHours: 24 });
    await pruneFarm(farm); // what earlier tests left
    const old = await cancelledWithPictures(farm, 5);
    const out: string[] = [];
    const env = { BLENDFARM_RETENTION_ARTIFACT_DAYS: '0', BLENDFARM_RETENTION_JOB_DAYS: '0', BLENDFARM_RETENTION_UNRENDERED_INPUT_HOURS: '4' };
    expect(await farmCli(['prune', '--dry-run', '--json'], { db, env, stdout: (t) => out.push(t), stderr: () => {} })).toBe(0);
    expect(JSON.parse(out.pop()!)).toMatchObject({ dryRun: true, ran: true, unrenderedInputs: 2, unrenderedInputBytes: PHOTO.length + OTHER.length });
    expect(await farmCli(['prune'], { db, env: { ...env, BLENDFARM_RETENTION_UNRENDERED_INPUT_HOURS: '6' }, stdout: (t) => out.push(t), stderr: () => {} })).toBe(0);
    expect(out.pop()).toBe('Deleted 0 video(s) (0.0 MB; 0 for the size cap), 0 job(s), 0 event(s).');
    expect(await farmCli(['prune'], { db, env, stdout: (t) => out.push(t), stderr: () => {} })).toBe(0);
    expect(out.pop()).toMatch(/^Deleted 0 video\(s\) \(0\.0 MB; 0 for the size cap\), 0 job\(s\), 0 event\(s\), 2 picture\(s\) of unrendered jobs \(\d+\.\d MB\)\.$/);
    expect(await getJobInputs(farm, old)).toEqual({});
  });

  it('the periodic run logs a run that deleted only such pictures (the usual case: nothing else was old enough)', async () => {
    const farm = farmWith({ unrenderedInputHours: 24 });
    await cancelledWithPictures(farm, 25);
    const lines: string[] = [];
    await pruneOnce(farm, (line) => lines.push(line));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^retention: Deleted 0 video\(s\) .*, 2 picture\(s\) of unrendered jobs \(\d+\.\d MB\)\.$/);
    // Nothing left to delete: nothing logged.
    await pruneOnce(farm, (line) => lines.push(line));
    expect(lines).toHaveLength(1);
  });
});
