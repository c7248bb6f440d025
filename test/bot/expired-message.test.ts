// A job no worker took before the queue's timeout, as its message says it: the farm's own texts
// (farm/queue.ts expireQueuedJobs) through the bot's failedText. No attempt count, the refund said
// once, nothing about models or sizes the member cannot pick, and not "cancelled".
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import type { FarmDb } from '../../db/client.ts';
import { failedText } from '../../bot/format.ts';
import { expireQueuedJobs, getJob, submitJob, type FarmContext } from '../../farm/index.ts';
import { CHEAP_BLEND } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

describe('an expired job’s message', () => {
  let db: FarmDb;
  let farm: FarmContext;

  useTestFarm('pglite', { budget: { refillGpuSeconds: 100, maxActiveJobs: 20 }, queueTimeoutSeconds: 21600 }, (t) => ({ db, farm } = t));

  it('says no render worker took it within the timeout, that its GPU-seconds are back, and to try again later', async () => {
    const job = await submitJob(farm, { kind: 'blend', userId: 'waiter', params: { ...CHEAP_BLEND, prompts: ['a cat', 'a dog'], model: 'nobody-has-it' } });
    await db.db.execute(sql`update jobs set run_after = now() - interval '21601 seconds' where id = ${job.id}`);
    expect(await expireQueuedJobs(farm)).toBe(1);
    const expired = (await getJob(farm, job.id))!;
    expect(failedText(expired)).toBe(
      `**Blend** #${job.id}: a cat → a dog\nNo render worker took this job within 6h, so it was dropped; the GPU-seconds it held are back in your budget. Try again later.`,
    );
  });
});
