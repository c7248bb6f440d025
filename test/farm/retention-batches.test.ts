// A large prune deletes in batches (PRUNE_BATCH_ROWS rows, each batch a transaction of its own), so
// other statements run between them: with PGlite, which runs one transaction at a time, a prune of
// thousands of old jobs in one transaction held up every worker's heartbeat and claim until it ended.
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import type { FarmDb } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { submitJob } from '../../farm/jobs.ts';
import { claimJob, renewLeases } from '../../farm/queue.ts';
import { PRUNE_BATCH_ROWS, pruneFarm } from '../../farm/retention.ts';
import { BACKENDS, CHEAP_BLEND, countRows, GENEROUS_BUDGET } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

describe.each(BACKENDS)('a large prune on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;
  useTestFarm(backend, { budget: GENEROUS_BUDGET, retention: { artifactDays: 0, jobDays: 90, maxArtifactBytes: 0 } }, (t) => ({ db, farm } = t));

  it('lets a claim and a heartbeat run between its batches, and still deletes every old job with its events', async () => {
    const old = 3 * PRUNE_BATCH_ROWS;
    await db.db.execute(sql`insert into users (id, balance_ms) values ('old', 0)`);
    await db.db.execute(sql`insert into jobs (kind, user_id, params, model, pixels, status, finished_at, reserved_ms)
      select 'blend', 'old', '{}'::jsonb, 'm', 4096, 'done', now() - interval '200 days', 0 from generate_series(1, ${old})`);
    await db.db.execute(sql`insert into job_events (job_id, type) select j.id, t.type from jobs j, (values ('queued'), ('claimed'), ('done')) t(type) where j.user_id = 'old'`);
    const caps = { models: ['prune-race'], maxPixels: 1 << 30, executionProvider: 'test' };
    const running = await submitJob(farm, { kind: 'blend', userId: 'young', params: { ...CHEAP_BLEND, model: 'prune-race' } });
    const lease = await claimJob(farm, 'w-busy', caps);
    expect(lease?.id).toBe(running.id);
    const waiting = await submitJob(farm, { kind: 'blend', userId: 'young', params: { ...CHEAP_BLEND, model: 'prune-race' } });

    let pruned = false;
    const prune = pruneFarm(farm).finally(() => (pruned = true));
    // Asked once the prune has begun: each is answered before the prune ends.
    const heartbeat = await renewLeases(farm, 'w-busy', [lease!.leaseToken]);
    expect({ heartbeat: [...heartbeat], pruned }).toEqual({ heartbeat: [lease!.leaseToken], pruned: false });
    const claimed = await claimJob(farm, 'w-other', caps);
    expect({ claimed: claimed?.id, pruned }).toEqual({ claimed: waiting.id, pruned: false });

    expect(await prune).toMatchObject({ ran: true, jobs: old, events: 3 * old });
    expect(await countRows(db, 'jobs', sql`user_id = 'old'`)).toBe(0);
    expect(await countRows(db, 'jobs', sql`user_id = 'young'`)).toBe(2);
  });
});
