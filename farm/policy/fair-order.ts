// Fair claim order: weighted fair queueing over users, in GPU-seconds. Each user carries usage_ms,
// the GPU-seconds reserved by their claimed jobs, decaying with a half-life
// (fairnessHalfLifeSeconds). A queued job's virtual start is its owner's decayed usage plus the
// reservations of that owner's queued jobs ahead of it; claims take the lowest virtual start
// (ties: oldest job). A user's burst therefore interleaves with everyone else's jobs instead of
// starving them, heavy jobs count for more than light ones, and the order shown as "queue
// position" is the order jobs are actually claimed in.
import { type SQL, sql } from 'drizzle-orm';

function decayedUsage(usersAlias: string, halfLifeSeconds: number): SQL {
  const u = sql.raw(usersAlias);
  return sql`(${u}.usage_ms * power(0.5, extract(epoch from (now() - coalesce(${u}.usage_at, now())))::float8 / ${halfLifeSeconds}::float8))`;
}

/**
 * CTE "fair(id, model, pixels, run_after, virtual_start)" over all queued jobs. Window functions
 * cannot share a query level with FOR UPDATE, hence a separate CTE that the claim joins.
 */
export function fairQueue(halfLifeSeconds: number): SQL {
  return sql`fair as (
      select j.id, j.model, j.pixels, j.run_after,
             ${decayedUsage('u', halfLifeSeconds)}
               + coalesce(sum(j.reserved_ms) over (partition by j.user_id order by j.id rows between unbounded preceding and 1 preceding), 0)
               as virtual_start
      from jobs j join users u on u.id = j.user_id
      where j.status = 'queued'
    )`;
}

/** CTE "charged": adds the claimed job's reservation to its owner's decayed usage (reads CTE "claimed"). */
export function chargeClaim(halfLifeSeconds: number): SQL {
  return sql`charged as (
      update users set usage_ms = ${decayedUsage('users', halfLifeSeconds)} + claimed.reserved_ms, usage_at = now()
      from claimed where users.id = claimed.user_id
    )`;
}

/**
 * CTE "unbooked": takes a claim that rendered nothing (handed back at shutdown: CTE "released",
 * jobs.*, its started_at the claim's time) off its owner's usage, as much of it as has not decayed
 * since, so the job's next claim does not count it twice.
 */
export function unbookClaim(halfLifeSeconds: number): SQL {
  return sql`unbooked as (
      update users set usage_ms = greatest(0, ${decayedUsage('users', halfLifeSeconds)}
          - released.reserved_ms * power(0.5, greatest(0, extract(epoch from (now() - coalesce(released.started_at, now()))))::float8 / ${halfLifeSeconds}::float8)),
        usage_at = now()
      from released where users.id = released.user_id
    )`;
}
