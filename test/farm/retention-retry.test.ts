// A retry (or re-roll) of a cancelled or failed job whose pictures retention deleted
// (unrenderedInputHours) is refused at once, saying why, and charges nothing: before, the retry
// was queued and reserved, and the worker only then failed it for the missing picture. Within the
// window the pictures are still there and the retry renders from them.
import { readFileSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { type FarmDb, queryRows } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { submitFollowUp } from '../../farm/follow-up.ts';
import { cancelJob, getJob, getJobInputs, retryJob, submitJob } from '../../farm/jobs.ts';
import { getBudget } from '../../farm/policy/budget.ts';
import { pruneFarm } from '../../farm/retention.ts';
import { BACKENDS, CHEAP_BLEND, countRows, farmContext } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

const PHOTO = new Uint8Array(readFileSync(new URL('../fixtures/photos/coffee.png', import.meta.url)));
const OTHER = new Uint8Array(readFileSync(new URL('../fixtures/photos/chelsea-crop.png', import.meta.url)));

const refusalOf = (promise: Promise<unknown>): Promise<unknown> => promise.then(() => undefined, (error: unknown) => error);

describe.each(BACKENDS)('retry after retention deleted the pictures on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;
  let seq = 0;

  useTestFarm(backend, {}, (t) => {
    db = t.db;
    farm = farmContext(db, { budget: { refillGpuSeconds: 10_000, maxActiveJobs: 100 }, retention: { artifactDays: 0, jobDays: 0, maxArtifactBytes: 0, unrenderedInputHours: 24 } });
  });

  /** A blend from two pictures, cancelled at once, ended `hours` ago. */
  async function cancelledWithPictures(userId: string, hours: number): Promise<number> {
    const job = await submitJob(farm, { kind: 'blend', userId, params: { ...CHEAP_BLEND, model: `retry-${++seq}`, images: [{ index: 0 }, { index: 1 }] }, inputs: { 'image-1': PHOTO, 'image-2': OTHER } });
    expect((await cancelJob(farm, job.id)).cancelled).toBe(true);
    await db.db.execute(sql`update jobs set finished_at = now() - make_interval(secs => ${hours * 3600}::float8) where id = ${job.id}`);
    return job.id;
  }

  it('refuses the retry clearly and charges nothing once the pictures are gone', async () => {
    const gone = await cancelledWithPictures('owner', 25);
    expect(await pruneFarm(farm)).toMatchObject({ unrenderedInputs: 2 });
    expect(await getJobInputs(farm, gone)).toEqual({});
    const before = await getBudget(farm, 'owner');
    const ledger = await countRows(db, 'budget_ledger');

    const refused = await refusalOf(retryJob(farm, gone));
    expect(refused).toMatchObject({
      code: 'invalid_state',
      message: `The pictures of job ${gone} are no longer stored (those of a job that ended without a video are deleted 24 hours after it ended), so it can't be retried; run the command again with the pictures.`,
    });
    const job = await getJob(farm, gone);
    expect(job?.status).toBe('cancelled');
    const after = await getBudget(farm, 'owner');
    expect(after.balanceGpuSeconds).toBe(before.balanceGpuSeconds);
    expect(after.heldGpuSeconds).toBe(0);
    expect(await countRows(db, 'budget_ledger')).toBe(ledger);
    expect(await countRows(db, 'jobs', sql`status in ('queued', 'running')`)).toBe(0);

    // A re-roll of it is refused before anything is queued or charged too (submitJob's picture check;
    // its wording is submission's: 'Invalid job parameters: image-1 is missing; attach ...').
    const reroll = await refusalOf(submitFollowUp(farm, { kind: 'reroll', userId: 'owner', parentJobId: gone }));
    expect(reroll).toMatchObject({ name: 'JobParamsError', message: expect.stringContaining('image-1 is missing') });
    expect((await getBudget(farm, 'owner')).balanceGpuSeconds).toBe(before.balanceGpuSeconds);
    expect(await countRows(db, 'budget_ledger')).toBe(ledger);
  });

  it('retries within the window, from the pictures still stored', async () => {
    const young = await cancelledWithPictures('other', 23);
    expect(await pruneFarm(farm)).toMatchObject({ unrenderedInputs: 0 });
    const retried = await retryJob(farm, young);
    expect(retried.status).toBe('queued');
    expect(Object.keys(await getJobInputs(farm, young)).sort()).toEqual(['image-1', 'image-2']);
    // Queued again, it is protected: its pictures stay however long ago it first ended.
    await db.db.execute(sql`update jobs set finished_at = now() - interval '1000 hours' where id = ${young}`);
    expect(await pruneFarm(farm)).toMatchObject({ unrenderedInputs: 0 });
    const [row] = await queryRows<{ n: number }>(db.db, sql`select count(*)::int as n from job_inputs where job_id = ${young}`);
    expect(row.n).toBe(2);
  });
});
