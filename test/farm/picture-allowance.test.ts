// The pictures one member's jobs may hold (maxHeldPictureBytes): a cancel refunds in full, so
// submitting pictures and cancelling at once stored them for free (a hostile review: ~20 MiB per
// cycle, kept until retention). Jobs waiting or running, and those that ended without a video
// within retention's window, count; done jobs and pictures retention has let go of do not.
import { readFileSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { type FarmDb, queryRows } from '../../db/client.ts';
import { type FarmContext, queueHorizonSeconds } from '../../farm/config.ts';
import { PictureAllowanceError } from '../../farm/errors.ts';
import { fileSize } from '../../farm/text.ts';
import { cancelJob, submitJob } from '../../farm/jobs.ts';
import { auditBalance } from '../../farm/policy/budget.ts';
import { BACKENDS, CHEAP_BLEND, countRows, farmContext, GENEROUS_BUDGET } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

const PHOTO = new Uint8Array(readFileSync(new URL('../fixtures/photos/coffee.png', import.meta.url)));
const OTHER = new Uint8Array(readFileSync(new URL('../fixtures/photos/chelsea-crop.png', import.meta.url)));
const PAIR = PHOTO.length + OTHER.length;

describe.each(BACKENDS)('the pictures a member’s jobs may hold, on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;
  let seq = 0;
  // Room for one job's two pictures and a half.
  useTestFarm(backend, {}, (t) => {
    db = t.db;
    farm = farmContext(db, { budget: GENEROUS_BUDGET, maxHeldPictureBytes: Math.round(PAIR * 1.5) });
  });

  const withPictures = (userId: string) =>
    submitJob(farm, { kind: 'blend', userId, params: { ...CHEAP_BLEND, model: `held-${++seq}`, images: [{ index: 0 }, { index: 1 }] }, inputs: { 'image-1': PHOTO, 'image-2': OTHER } });

  it('refuses pictures past the allowance while a cancelled job’s are kept, nothing stored or reserved; frees it when they age out or the job renders', async () => {
    const first = await withPictures('hoarder');
    await cancelJob(farm, first.id);

    const jobsBefore = await countRows(db, 'jobs');
    const inputsBefore = await countRows(db, 'job_inputs');
    const balanceBefore = await auditBalance(db.db, 'hoarder');
    const error = await withPictures('hoarder').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PictureAllowanceError);
    expect((error as PictureAllowanceError).code).toBe('too_many_pictures');
    // Sizes as the bot writes them (fileSize), the rule as retention keeps pictures (unrenderedInputsDue).
    expect((error as Error).message).toBe(
      `Your jobs that are waiting or rendering, or ended without a video and whose pictures the farm still keeps (24h after they end, longer while a late render or a follow-up may still need them), hold ${fileSize(PAIR)} of pictures; this one's ${fileSize(PAIR)} would pass the ${fileSize(Math.round(PAIR * 1.5))} one member's jobs may hold. ` +
        'Wait until they render or the farm deletes those pictures, or attach smaller pictures.',
    );
    expect(await countRows(db, 'jobs')).toBe(jobsBefore);
    expect(await countRows(db, 'job_inputs')).toBe(inputsBefore);
    expect(await auditBalance(db.db, 'hoarder')).toEqual(balanceBefore);

    // Another member is not held to this one's pictures.
    await cancelJob(farm, (await withPictures('neighbour')).id);

    // Ended longer ago than retention keeps such pictures: no longer counted.
    await db.db.execute(sql`update jobs set finished_at = now() - interval '25 hours' where id = ${first.id}`);
    const second = await withPictures('hoarder');
    expect(second.status).toBe('queued');

    // A waiting job's pictures count; once it has rendered (done) they do not.
    await expect(withPictures('hoarder')).rejects.toBeInstanceOf(PictureAllowanceError);
    await db.db.execute(sql`update jobs set status = 'done', finished_at = now() where id = ${second.id}`);
    expect((await withPictures('hoarder')).status).toBe('queued');
    const [held] = await queryRows<{ n: number }>(db.db, sql`select count(*)::int as n from job_inputs i join jobs j on j.id = i.job_id where j.user_id = 'hoarder'`);
    expect(held.n).toBe(6);
  });

  it('works with a fractional retention window (BLENDFARM_RETENTION_UNRENDERED_INPUT_HOURS=0.5)', async () => {
    const halfHour = farmContext(db, { budget: GENEROUS_BUDGET, maxHeldPictureBytes: PAIR * 3, retention: { artifactDays: 30, jobDays: 90, maxArtifactBytes: 0, unrenderedInputHours: 0.5 } });
    const job = await submitJob(halfHour, { kind: 'blend', userId: 'halfhour', params: { ...CHEAP_BLEND, model: `held-${++seq}`, images: [{ index: 0 }, { index: 1 }] }, inputs: { 'image-1': PHOTO, 'image-2': OTHER } });
    await cancelJob(halfHour, job.id);
    const again = await submitJob(halfHour, { kind: 'blend', userId: 'halfhour', params: { ...CHEAP_BLEND, model: `held-${++seq}`, images: [{ index: 0 }, { index: 1 }] }, inputs: { 'image-1': PHOTO, 'image-2': OTHER } });
    expect(again.status).toBe('queued');
  });

  it('counts pictures exactly while retention keeps them: a failed job keeping its lease token (a late spooled render may still complete it) past the window still counts, until retention would delete them', async () => {
    // A queue horizon (3 days) longer than the 24 h window: retention keeps such a job's pictures that long.
    const late = farmContext(db, { budget: GENEROUS_BUDGET, maxHeldPictureBytes: Math.round(PAIR * 1.5), queueTimeoutSeconds: 3 * 24 * 3600 });
    const submit = () => submitJob(late, { kind: 'blend', userId: 'late', params: { ...CHEAP_BLEND, model: `held-${++seq}`, images: [{ index: 0 }, { index: 1 }] }, inputs: { 'image-1': PHOTO, 'image-2': OTHER } });
    const first = await submit();
    await cancelJob(late, first.id);
    // Failed on its last attempt by a reaper 25 h ago: the lease token stays.
    await db.db.execute(sql`update jobs set status = 'failed', lease_token = gen_random_uuid(), finished_at = now() - interval '25 hours' where id = ${first.id}`);
    await expect(submit()).rejects.toBeInstanceOf(PictureAllowanceError);
    // Past the horizon too: retention deletes them, and they no longer count.
    await db.db.execute(sql`update jobs set finished_at = now() - make_interval(secs => ${queueHorizonSeconds(late.config) + 3600}::float8) where id = ${first.id}`);
    expect((await submit()).status).toBe('queued');
  });
});

describe('the picture allowance’s refusal', () => {
  it('sizes bytes as the bot does, and says how long pictures of jobs without a video still count', () => {
    const MiB = 1024 * 1024;
    expect(new PictureAllowanceError(196 * MiB, 9.5 * MiB, 200 * MiB, 24).message).toBe(
      "Your jobs that are waiting or rendering, or ended without a video and whose pictures the farm still keeps (24h after they end, longer while a late render or a follow-up may still need them), hold 196 MiB of pictures; this one's 9.5 MiB would pass the 200 MiB one member's jobs may hold. " +
        'Wait until they render or the farm deletes those pictures, or attach smaller pictures.',
    );
    expect(new PictureAllowanceError(640 * 1024, 10 * MiB, 10 * MiB, 0).message).toBe(
      "Your jobs that are waiting or rendering, or ended without a video (the farm keeps their pictures until the job is deleted), hold 640 KiB of pictures; this one's 10 MiB would pass the 10 MiB one member's jobs may hold. " +
        'Wait until they render, or attach smaller pictures.',
    );
  });
});
