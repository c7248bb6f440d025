// A spooled render's claim (claimSpecificJob) racing its owner's retry. The claim takes a job only
// while it is still the queuing the render was made for (its latest 'queued' event); under READ
// COMMITTED a single locking statement read that event with the snapshot it started with, while its
// row lock's re-check (EvalPlanQual) re-read only the job row: a claim, a failure and a retry
// committed while it ran (here: one transaction that writes the row and a new 'queued' event, as
// those three would) went unseen, and the old queuing's render was completed as the retried job.
// Concurrent transactions need two connections: Postgres only (PGlite runs one statement at a time).
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { type FarmDb, queryRows } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { submitJob } from '../../farm/jobs.ts';
import { claimSpecificJob, leaseStateOf } from '../../farm/queue.ts';
import type { WorkerCapabilities } from '../../farm/types.ts';
import { BACKENDS, CHEAP_BLEND, GENEROUS_BUDGET, type TestDatabase } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';
import { until } from '../helpers/until.ts';

const caps: WorkerCapabilities = { models: ['spool-race'], maxPixels: 10_000_000, executionProvider: 'test' };

/**
 * Events written after the job's queuing that the latest-queuing lookup reads past (as a long-lived
 * job's progress and hand-backs would): they keep the claim's statement busy long enough for another
 * transaction to commit while it runs.
 */
const SLOW_LOOKUP_EVENTS = 400_000;

describe.each(BACKENDS)('a spooled render claimed while its job is retried, on %s', (backend) => {
  let testDb: TestDatabase;
  let db: FarmDb;
  let farm: FarmContext;
  useTestFarm(backend, { budget: GENEROUS_BUDGET }, (t) => ({ testDb, db, farm } = t));

  it.skipIf(backend === 'pglite')('never completes the retried queuing with a render of the earlier one', async () => {
    const job = await submitJob(farm, { kind: 'blend', userId: 'spool-race', params: { ...CHEAP_BLEND, model: 'spool-race' } });
    const spooledFor = (await leaseStateOf(farm, job.id))?.queuedEventId;
    expect(spooledFor).toBeDefined();
    await db.db.execute(sql`insert into job_events (job_id, type, data) select ${job.id}, 'progress', '{}'::jsonb from generate_series(1, ${SLOW_LOOKUP_EVENTS})`);
    await db.db.execute(sql`analyze job_events`);

    // The worker's claim from its spool, on a connection of its own.
    const worker: FarmContext = { db: await testDb.open({ migrate: false, poolSize: 2 }), config: farm.config };
    const claim = claimSpecificJob(worker, 'w-spool', job.id, caps, spooledFor);
    let settled = false;
    void claim.finally(() => (settled = true)).catch(() => {});
    // Once its claim statement runs: the job is taken, fails and is retried by its owner (one
    // transaction here: the row written, a new queuing recorded), unless the claim holds the row.
    await until(async () => settled || (await queryRows<{ n: number }>(db.db, sql`select count(*)::int as n from pg_stat_activity where pid <> pg_backend_pid() and state = 'active' and query like '%with picked as%'`))[0].n > 0, 15_000, 'the spool claim to run');
    const retried = await db.db.transaction(async (tx) => {
      const rows = await queryRows<{ id: number }>(tx, sql`update jobs set run_after = now(), error = null where id = ${job.id} and status = 'queued' returning id`);
      if (rows.length === 0) return false;
      await tx.execute(sql`insert into job_events (job_id, type, data) values (${job.id}, 'queued', '{"retried": true}'::jsonb)`);
      return true;
    });
    const claimed = await claim;

    const latest = (await leaseStateOf(farm, job.id))?.queuedEventId;
    // Either the claim came first (the retry then found the job running and changed nothing) or the
    // retry did (the claim refused the earlier queuing's render): never both.
    expect({ claimed: claimed !== undefined, retried }).not.toEqual({ claimed: true, retried: true });
    if (claimed) expect(latest).toBe(spooledFor);
    else expect(latest).not.toBe(spooledFor);
  });
});
