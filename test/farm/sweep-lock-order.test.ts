// Two sweeps at once (every worker's heartbeat and the bot's housekeeping run them): each locks a
// disjoint batch of jobs (SKIP LOCKED) and settles them one by one, and each settlement locks the
// owner's users row until the batch commits. A race review found batches whose owners came in
// opposite orders deadlocking (Postgres 40P01: a whole batch of expiries or refunds rolled back)
// in 5 rounds of 5. Batches now settle in owner order, so every sweep takes users rows in the same
// order. Concurrent transactions need two connections: Postgres only (PGlite runs one at a time).
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { type FarmDb, queryRows } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { expireQueuedJobs, reapExpiredLeases } from '../../farm/queue.ts';
import { allBalances, BACKENDS, farmContext } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

describe.each(BACKENDS)('sweeps at once on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;
  useTestFarm(backend, {}, (t) => {
    db = t.db;
    farm = farmContext(db, { queueTimeoutSeconds: 60, lastAttemptGraceSeconds: 0 });
  });

  async function reset(): Promise<void> {
    await db.db.execute(sql`truncate jobs, budget_ledger, users, job_events restart identity cascade`);
    await db.db.execute(sql`insert into users (id, balance_ms) values ('u1', 0), ('u2', 0)`);
  }

  /** Queued jobs nobody took for an hour, owned in this order (ids ascending). */
  async function staleQueued(owners: string[]): Promise<void> {
    for (const owner of owners) {
      await db.db.execute(sql`insert into jobs (kind, user_id, params, model, pixels, status, run_after, reserved_ms)
        values ('blend', ${owner}, '{}'::jsonb, 'm', 4096, 'queued', now() - interval '1 hour', 1000)`);
    }
  }

  const runs = (n: number, owner: string) => Array<string>(n).fill(owner);
  const queued = async () => (await queryRows<{ n: number }>(db.db, sql`select count(*)::int as n from jobs where status = 'queued'`))[0].n;

  it.skipIf(backend === 'pglite')('two queue-expiry sweeps whose batches hold two users in opposite orders both finish: every job expired and refunded once', async () => {
    for (let round = 0; round < 3; round++) {
      await reset();
      // The first batch of 50 (by id) holds u1 then u2, the second u2 then u1.
      await staleQueued([...runs(25, 'u1'), ...runs(25, 'u2'), ...runs(25, 'u2'), ...runs(25, 'u1')]);
      const results = await Promise.allSettled([expireQueuedJobs(farm, 50), expireQueuedJobs(farm, 50)]);
      expect(results.map((r) => (r.status === 'fulfilled' ? r.value : String((r.reason as Error).cause ?? r.reason)))).toEqual([50, 50]);
      expect(await queued()).toBe(0);
      // Each user got each of their 50 reservations back once: 50 s.
      expect((await allBalances(db)).map((b) => [b.userId, b.balanceMs, b.ledgerSumMs])).toEqual([['u1', 50_000, 50_000], ['u2', 50_000, 50_000]]);
    }
  });

  it.skipIf(backend === 'pglite')('a lease reaper and a queue-expiry sweep at once, owners in opposite orders, both finish', async () => {
    for (let round = 0; round < 3; round++) {
      await reset();
      // Last attempts whose leases ran out an hour ago, u1's first (the reaper takes them in lease order).
      for (let i = 0; i < 50; i++) {
        await db.db.execute(sql`insert into jobs (kind, user_id, params, model, pixels, status, attempts, max_attempts, lease_token, lease_expires_at, started_at, worker_id, reserved_ms)
          values ('blend', ${i < 25 ? 'u1' : 'u2'}, '{}'::jsonb, 'm', 4096, 'running', 3, 3, gen_random_uuid(), now() - interval '1 hour' + make_interval(secs => ${i}), now() - interval '2 hours', 'w', 1000)`);
      }
      await staleQueued([...runs(25, 'u2'), ...runs(25, 'u1')]);
      const results = await Promise.allSettled([reapExpiredLeases(farm, 50), expireQueuedJobs(farm, 50)]);
      expect(results.map((r) => (r.status === 'fulfilled' ? r.value : String((r.reason as Error).cause ?? r.reason)))).toEqual([50, 50]);
      expect(await queued()).toBe(0);
      expect((await allBalances(db)).map((b) => [b.userId, b.balanceMs, b.ledgerSumMs])).toEqual([['u1', 50_000, 50_000], ['u2', 50_000, 50_000]]);
    }
  });
});
