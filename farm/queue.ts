// The workers' side of the queue, leases only: claim, heartbeat, progress, complete, fail,
// release, reap. Which job a claim takes and what a finished or failed job costs are the policy's
// (policy/: claimOrder, onClaim, settle); this module only asks it.
//
// Ownership of a running job is a lease: a random token written at claim time plus an expiry
// that heartbeats push forward. Every write a worker makes is conditional on still holding the
// token, so a worker that lost its job (lease expired and re-claimed, or cancelled) can neither
// report progress nor complete it: a job is completed at most once. Nothing here holds a
// transaction open while rendering; each call is one short statement or transaction.
import { type SQL, sql } from 'drizzle-orm';
import { type Queryable, type Transaction, queryRows } from '../db/client.ts';
import { artifacts, jobs } from '../db/schema.ts';
import type { FarmContext } from './config.ts';
import { JOB_EVENTS_CHANNEL, eventPayload, recordEvent, type EventFields } from './events.ts';
import { EXPIRED_ERROR_PREFIX, holderEndedError, LEASE_LOST_TEXT, leaseLostError, NO_WORKER_COULD_RENDER_TEXT } from './failure.ts';
import { policyOf } from './policy/index.ts';
import { durationText, storableText } from './text.ts';
import { capableSql, findCapableWorkers, jobNeeds } from './worker-registry.ts';
import { type ClaimedJob, claimedJobFromRow, type Job, jobFromRow, type JobProgress, jobRowFromJson, secondsToMs, type WorkerCapabilities } from './types.ts';

/** A claimed job's identity as far as lease-conditional writes are concerned. */
export type Lease = Pick<ClaimedJob, 'id' | 'leaseToken' | 'userId' | 'attempt'>;

/**
 * How many of the best-placed runnable jobs a claim considers. The claim locks the first of
 * them that no concurrent claim holds, so this bounds the join work (a fresh queue has no
 * planner statistics, and a nested loop over every queued job twice is quadratic) while
 * leaving room for this many simultaneous claimers; beyond that a claim may come back empty
 * and simply retries after the poll interval.
 */
export const CLAIM_CANDIDATES = 64;

function leaseExpiry(farm: FarmContext) {
  return sql`now() + make_interval(secs => ${farm.config.leaseSeconds}::float8)`;
}

/**
 * Claims the next job this worker can run, in the policy's claim order, with one atomic statement:
 * UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING. Concurrent workers skip
 * each other's locked rows, so no job is handed out twice. Returns undefined when none fits.
 */
export async function claimJob(farm: FarmContext, workerId: string, capabilities: WorkerCapabilities): Promise<ClaimedJob | undefined> {
  const policy = policyOf(farm);
  return claimPicked(
    farm.db.db,
    farm,
    workerId,
    sql`${policy.claimOrder()}, candidates as materialized (
      select f.id, f.virtual_start from fair f join jobs j on j.id = f.id
      where f.run_after <= now()
        and ${capableSql(capabilities)}
      order by f.virtual_start asc, f.id asc
      limit ${CLAIM_CANDIDATES}
    ), picked as (
      select j.id
      from jobs j join candidates c on c.id = j.id
      -- Re-checked on the row version the lock returns (EvalPlanQual): a job taken and put back
      -- with a back-off (or retried with other parameters) since this statement's snapshot.
      where j.status = 'queued' and j.run_after <= now() and ${capableSql(capabilities)}
      order by c.virtual_start asc, c.id asc
      limit 1
      for update of j skip locked
    )`,
  );
}

/** The id of job `j`'s latest 'queued' event: which queuing of it this is (ClaimedJob.queuedEventId). */
const LATEST_QUEUED_EVENT = (job: SQL) => sql`(select max(e.id) from job_events e where e.job_id = ${job} and e.type = 'queued')`;

/**
 * Claims one named job for a render this worker already has (its spool, farm/spool.ts): the same
 * bookkeeping as claimJob — attempt, lease token and expiry, a 'claimed'
 * event (data `fromSpool: true`) and its NOTIFY — but only while the job is queued, this worker
 * could render it and, when `queuedEventId` is given, it is still that queuing of the job (not
 * retried by its owner since). The claim order and a retry's back-off (run_after) do not apply: the
 * render is done, so taking it first delays nobody; and the policy's onClaim is not run: the claim
 * that rendered it booked it already. Returns undefined, changing nothing, when the
 * job is not queued (taken, cancelled, finished), was retried, or another claim holds it right now.
 *
 * Two statements in one transaction, lock first: under READ COMMITTED a statement's snapshot is
 * taken when it starts, and a row lock's re-check (EvalPlanQual) re-reads only the locked row, so
 * the latest-queuing check (job_events, another table) inside the locking statement would read
 * that older snapshot: a claim, a failure and the owner's retry committed while it ran would go
 * unseen, and a render of the job's earlier queuing would complete the retried one. The second
 * statement's snapshot is taken after the lock is held, so it sees every queuing committed before
 * it, and none can be added while the lock is held (a retry writes the row).
 */
export async function claimSpecificJob(
  farm: FarmContext,
  workerId: string,
  jobId: number,
  capabilities: WorkerCapabilities,
  queuedEventId?: number,
): Promise<ClaimedJob | undefined> {
  const claimable = sql`j.id = ${jobId} and j.status = 'queued' and ${capableSql(capabilities)}`;
  const sameQueuing = queuedEventId === undefined ? sql`true` : sql`${LATEST_QUEUED_EVENT(sql`j.id`)} = ${queuedEventId}`;
  return farm.db.db.transaction(async (tx) => {
    const locked = await queryRows<{ id: number }>(tx, sql`select j.id from jobs j where ${claimable} for update of j skip locked`);
    if (locked.length === 0) return undefined;
    return claimPicked(tx, farm, workerId, sql`picked as (select j.id from jobs j where ${claimable} and ${sameQueuing})`, { fromSpool: true }, false);
  });
}

/**
 * The claim itself, for the job in CTE "picked" (id) that `pick` (one or more CTEs) selects, run
 * on `q` (the database, or claimSpecificJob's transaction).
 * `book`: the policy's onClaim books the claim against its owner's share; not for a render already
 * done (claimSpecificJob: its first claim booked it).
 */
async function claimPicked(q: Queryable, farm: FarmContext, workerId: string, pick: SQL, eventData: Record<string, unknown> = {}, book = true): Promise<ClaimedJob | undefined> {
  const [row] = await queryRows<{ job: Record<string, unknown>; queued_event_id: number | string | null }>(
    q,
    sql`
    with ${pick}, claimed as (
      update jobs set
        status = 'running',
        attempts = jobs.attempts + 1,
        worker_id = ${workerId},
        lease_token = gen_random_uuid(),
        lease_expires_at = ${leaseExpiry(farm)},
        started_at = now(),
        progress = null
      from picked
      where jobs.id = picked.id
      returning jobs.*
    ), ${book ? policyOf(farm).onClaim() : sql`charged as (select 1)`}, logged as (
      insert into job_events (job_id, type, data)
      select id, 'claimed', jsonb_build_object('workerId', worker_id, 'attempt', attempts) || ${JSON.stringify(eventData)}::jsonb from claimed
    )
    select row_to_json(claimed) as job, ${LATEST_QUEUED_EVENT(sql`claimed.id`)} as queued_event_id,
           pg_notify(${JOB_EVENTS_CHANNEL}, json_build_object(
             'jobId', id, 'type', 'claimed', 'status', 'running', 'attempt', attempts, 'at', now())::text) -- ids only: farm/events.ts
    from claimed`,
  );
  if (!row) return undefined;
  const job = claimedJobFromRow(jobRowFromJson(row.job));
  if (row.queued_event_id !== null) job.queuedEventId = Number(row.queued_event_id);
  return job;
}

/** A job with its lease as it stands (token, and whether it runs out in the future by the database's clock). */
export interface LeaseState {
  job: Job;
  leaseToken: string | null;
  leaseLive: boolean;
  /** Which queuing of the job this is (ClaimedJob.queuedEventId). */
  queuedEventId?: number;
}

/** The job and who holds it: what a spooled render needs to know (farm/spool.ts). Undefined: no such job. */
export async function leaseStateOf(farm: FarmContext, jobId: number): Promise<LeaseState | undefined> {
  const [row] = await queryRows<{ job: Record<string, unknown>; live: boolean | null; queued_event_id: number | string | null }>(
    farm.db.db,
    sql`select row_to_json(jobs) as job, lease_expires_at > now() as live, ${LATEST_QUEUED_EVENT(sql`jobs.id`)} as queued_event_id from jobs where id = ${jobId}`,
  );
  if (!row) return undefined;
  const jobRow = jobRowFromJson(row.job);
  const state: LeaseState = { job: jobFromRow(jobRow), leaseToken: jobRow.leaseToken, leaseLive: row.live === true };
  if (row.queued_event_id !== null) state.queuedEventId = Number(row.queued_event_id);
  return state;
}

/**
 * Extends the leases of this worker's running jobs (the worker's own row: heartbeatWorker). Returns the
 * tokens still held; a token missing from the answer means that job was cancelled or taken
 * back, and its render should stop.
 */
export async function renewLeases(farm: FarmContext, workerId: string, leaseTokens: readonly string[]): Promise<Set<string>> {
  const rows = await queryRows<{ lease_token: string }>(
    farm.db.db,
    sql`
    update jobs set lease_expires_at = ${leaseExpiry(farm)}
    where status = 'running' and worker_id = ${workerId}
      and lease_token in (select (jsonb_array_elements_text(${JSON.stringify(leaseTokens)}::jsonb))::uuid)
    returning lease_token`,
  );
  return new Set(rows.map((r) => r.lease_token));
}

/** Stores and publishes progress (also renews the lease). False: the lease is gone, stop. */
export async function reportProgress(farm: FarmContext, lease: Lease, progress: JobProgress): Promise<boolean> {
  // Ids only (farm/events.ts): listeners read the progress from the row.
  const payload = eventPayload('progress', { jobId: lease.id, status: 'running', attempt: lease.attempt });
  const rows = await queryRows<{ id: number }>(
    farm.db.db,
    sql`
    with updated as (
      update jobs set progress = ${JSON.stringify(progress)}::jsonb, lease_expires_at = ${leaseExpiry(farm)}
      where id = ${lease.id} and lease_token = ${lease.leaseToken} and status = 'running'
      returning id
    )
    select id, pg_notify(${JOB_EVENTS_CHANNEL}, (${JSON.stringify(payload)}::jsonb || jsonb_build_object('at', now()))::text)
    from updated`,
  );
  return rows.length === 1;
}

export interface CompletedArtifact {
  format: string;
  mime: string;
  sizeBytes: number;
  meta: Record<string, unknown>;
  /** Exactly one of: the bytes (stored in the database) or a path relative to the artifact directory. */
  data?: Buffer;
  path?: string;
}

/**
 * completeJob's transaction did all its work but no answer to its COMMIT arrived (the connection
 * dropped, or the client's query timeout fired while the server committed): the job may have
 * been stored. completionOf tells which once the database answers and the transaction is over;
 * until then nothing written for this completion (an artifact file) may be deleted. The driver's
 * error is the cause.
 */
export class CompletionUnknownError extends Error {
  constructor(jobId: number, cause: unknown) {
    super(`job ${jobId}: the database did not answer the completion's commit; it may have been stored`, { cause });
    this.name = 'CompletionUnknownError';
  }
}

/**
 * Finishes a job: status, artifact, settlement (FarmPolicy.settle: the measured GPU-seconds,
 * capped at the reservation) and the 'done' event (with the lease token, for completionOf) in
 * one transaction, only if the caller still holds the lease. Returns false, changing nothing,
 * when the lease was lost. Throws CompletionUnknownError when the transaction failed after its
 * work was done (only the COMMIT's answer was missing); any other error means nothing was stored.
 */
export async function completeJob(
  farm: FarmContext,
  lease: Lease,
  result: { artifact: CompletedArtifact; gpuSeconds: number; progress?: JobProgress },
): Promise<boolean> {
  const spentMs = Math.max(0, secondsToMs(result.gpuSeconds));
  let committing = false;
  try {
    return await farm.db.db.transaction(async (tx) => {
      const stored = await completeLocked(tx, farm, lease, result.artifact, spentMs, result.progress);
      committing = stored;
      return stored;
    });
  } catch (error) {
    if (committing) throw new CompletionUnknownError(lease.id, error);
    throw error;
  }
}

async function completeLocked(tx: Transaction, farm: FarmContext, lease: Lease, artifact: CompletedArtifact, spentMs: number, progress: JobProgress | undefined): Promise<boolean> {
  // Running under this lease, or failed by a reaper when this lease ran out and not queued again
  // since (reapExpiredLeases keeps the token on such a row; a retry clears it): the render exists,
  // so the job is done after all, charged again, and delivered again (its failure may have been).
  const [row] = await queryRows<{ job: Record<string, unknown>; was: string }>(
    tx,
    sql`
    with old as (select id, status from jobs where id = ${lease.id} for update)
    update jobs set status = 'done', finished_at = now(), spent_ms = ${spentMs}::bigint, error = null, user_error = null,
      progress = coalesce(${progress ? JSON.stringify(progress) : null}::jsonb, progress),
      lease_token = null, lease_expires_at = null,
      delivered_at = null, delivery_claimed_by = null, delivery_claim_expires_at = null
    from old
    where jobs.id = old.id and jobs.lease_token = ${lease.leaseToken} and jobs.status in ('running', 'failed')
    returning row_to_json(jobs) as job, old.status as was`,
  );
  if (!row) return false;
  const job = jobRowFromJson(row.job);
  const afterFailure = row.was === 'failed';
  await tx.insert(artifacts).values({ jobId: job.id, ...artifact, data: artifact.data ?? null, path: artifact.path ?? null });
  await policyOf(farm).settle(tx, job, afterFailure ? { kind: 'done-after-refund', spentMs } : { kind: 'done', spentMs });
  await recordEvent(tx, 'done', eventFields(job), { spentGpuSeconds: spentMs / 1000, leaseToken: lease.leaseToken, ...(afterFailure ? { afterFailure: true } : {}) });
  return true;
}

/**
 * What became of a completion under `lease` whose answer was lost (CompletionUnknownError). Such a
 * completion's transaction had locked the job row (completeLocked's first statement) when its
 * answer went missing, and holds that lock until it commits or rolls back — the server ends an
 * abandoned one within BLENDFARM_DB_QUERY_TIMEOUT_MS (idle_in_transaction_session_timeout) — so:
 * - 'stored': the job is done, completed under this lease (its 'done' event names the token) and,
 *   when `artifactPath` is given, with that artifact file;
 * - 'pending': not stored yet, and a transaction holds the job row now: it may be this
 *   completion's, whose COMMIT may still land (ask again later; keep its file);
 * - 'not-stored': not stored, and no transaction holds the row, so this completion's transaction
 *   is over without having committed: nothing it wrote is referenced or ever will be (delete its
 *   file). That is so whatever the job is now — done by another lease or with another file,
 *   cancelled, queued again, deleted, or still running or failed (by a reaper, the token kept)
 *   under this very lease: then another completion under it (the spool's, farm/spool.ts) can still
 *   make it done, with a file of its own.
 */
export async function completionOf(farm: FarmContext, lease: Lease, artifactPath?: string): Promise<'stored' | 'pending' | 'not-stored'> {
  // First whether the row is free (a lock taken and let go at once), then, in a statement that
  // starts after that (so it sees whatever a transaction holding it committed), what it says.
  const free = await queryRows<{ id: number }>(farm.db.db, sql`select id from jobs where id = ${lease.id} for share skip locked`);
  const [row] = await queryRows<{ status: string; by_lease: boolean; path: string | null }>(
    farm.db.db,
    sql`select j.status,
          exists (select 1 from job_events e where e.job_id = j.id and e.type = 'done' and e.data->>'leaseToken' = ${lease.leaseToken}) as by_lease,
          (select a.path from artifacts a where a.job_id = j.id) as path
        from jobs j where j.id = ${lease.id}`,
  );
  if (!row) return 'not-stored';
  if (row.status === 'done' && row.by_lease && (artifactPath === undefined || row.path === artifactPath)) return 'stored';
  return free.length === 0 ? 'pending' : 'not-stored';
}

export type FailOutcome = 'retrying' | 'failed' | 'lost';

/**
 * Ends an attempt with an error. The job is queued again (after a back-off) unless it is out
 * of attempts or the error is permanent; then it is failed with this error and settled by the
 * policy: the whole reservation is refunded, unless the attempt ran past its time limit or failed
 * by its request's own fault (then the time it ran is charged). 'lost': the lease was gone already,
 * nothing changed.
 */
export async function failAttempt(
  farm: FarmContext,
  lease: Lease,
  error: string,
  options: {
    permanent?: boolean;
    /** Ran past its time limit: fails at once, charged for the time the attempt ran. */
    timedOut?: boolean;
    /**
     * The request's own fault (RenderError requestFault: e.g. a video that cannot fit its maxBytes):
     * fails at once, charged for the time the attempt ran, like a timed-out render.
     */
    requestFault?: boolean;
    /** The failure as the job's owner is told it (Job.userError); left out, they get failureForOwner's generic line. */
    userError?: string;
  } = {},
): Promise<FailOutcome> {
  // A renderer's message may carry anything (a prompt echoed back with a NUL in it): cleaned, never refused.
  const charged: ChargedFailure | undefined = options.timedOut ? 'timed-out' : options.requestFault ? 'request-fault' : undefined;
  const permanent = (options.permanent ?? false) || charged !== undefined;
  const texts = { error: storableText(error), userError: options.userError === undefined ? null : storableText(options.userError) };
  return farm.db.db.transaction((tx) => failLocked(tx, farm, lease.id, lease.leaseToken, texts, permanent, charged));
}

/** A failure charged for the time its attempt ran (settlement's outcome of that kind); any other is refunded in full. */
type ChargedFailure = 'timed-out' | 'request-fault';

/**
 * `reaped`: the lease ran out (reapExpiredLeases). A job that fails so keeps its lease token and
 * worker: its worker may have finished the render and spooled it, and a completion under that lease
 * is still taken (completeLocked) until the job is queued again.
 */
async function failLocked(
  tx: Transaction,
  farm: FarmContext,
  jobId: number,
  leaseToken: string,
  { error, userError }: { error: string; userError: string | null },
  permanent: boolean,
  charged: ChargedFailure | undefined = undefined,
  reaped = false,
): Promise<FailOutcome> {
  const [row] = await queryRows<{ job: Record<string, unknown>; worker_id: string | null; ran_ms: number }>(
    tx,
    sql`
    with old as (select id, worker_id from jobs where id = ${jobId})
    update jobs set
      status = case when ${permanent}::boolean or attempts >= max_attempts then 'failed' else 'queued' end,
      finished_at = case when ${permanent}::boolean or attempts >= max_attempts then now() end,
      charged_ms = null,
      run_after = now() + make_interval(secs => ${farm.config.retryBackoffSeconds}::float8 * attempts),
      error = ${error}, user_error = ${userError}, progress = null, lease_expires_at = null,
      worker_id = case when ${reaped}::boolean and attempts >= max_attempts then jobs.worker_id end,
      lease_token = case when ${reaped}::boolean and attempts >= max_attempts then jobs.lease_token end
    from old
    where jobs.id = old.id and jobs.lease_token = ${leaseToken} and jobs.status = 'running'
    returning row_to_json(jobs) as job, old.worker_id, greatest(0, extract(epoch from (now() - jobs.started_at)) * 1000)::float8 as ran_ms`,
  );
  if (!row) return 'lost';
  const job = jobRowFromJson(row.job);
  const fields = { ...eventFields(job), workerId: row.worker_id, error };
  if (job.status === 'failed') {
    await policyOf(farm).settle(tx, job, charged ? { kind: charged, ranMs: row.ran_ms } : { kind: 'failed' });
    await recordEvent(tx, 'failed', fields);
    return 'failed';
  }
  await recordEvent(tx, 'retrying', fields, { nextAttempt: job.attempts + 1 });
  return 'retrying';
}

/**
 * Hands a job back without counting the attempt (graceful shutdown). Returns false if the
 * lease was already gone.
 */
export async function releaseJob(farm: FarmContext, lease: Lease, reason = 'worker shut down'): Promise<boolean> {
  return farm.db.db.transaction((tx) => releaseLocked(tx, farm, lease, { reason }));
}

/** releaseJob's statement; `data` is stored with the 'released' event. */
async function releaseLocked(tx: Transaction, farm: FarmContext, lease: Lease, data: Record<string, unknown>): Promise<boolean> {
  const unbook = policyOf(farm).onRelease?.();
  // The claim's booking in the claim order (onClaim) is undone: the job's next claim books it.
  const [row] = await queryRows<{ job: Record<string, unknown> }>(
    tx,
    sql`
    with released as (
      update jobs set status = 'queued', attempts = greatest(0, attempts - 1), run_after = now(),
        progress = null, worker_id = null, lease_token = null, lease_expires_at = null
      where id = ${lease.id} and lease_token = ${lease.leaseToken} and status = 'running'
      returning *
    )${unbook ? sql`, ${unbook}` : sql.empty()}
    select row_to_json(released) as job from released`,
  );
  if (!row) return false;
  await recordEvent(tx, 'released', eventFields(jobRowFromJson(row.job)), data);
  return true;
}

/**
 * A worker that cannot render a job it claimed (a worker fault: its model's files, its GPU
 * provider, a missing ffmpeg) hands it back without using an attempt, for another worker
 * ('released'; the event says `workerFault: true` and which worker). The job fails instead,
 * refunded in full (the farm's fault), once it has been handed back so as many times as it has
 * attempts and by every online worker able to run it, since its owner last queued it: a fault they
 * all share does not keep it claimed and handed back for ever (a hand-back restarts the queue
 * timeout), while a job one broken worker hands back waits for a healthy one, even a busy one, and
 * a lone broken worker's job waits a few pauses for another to come online. False when the lease
 * was already gone.
 */
export async function handBackForWorkerFault(farm: FarmContext, lease: Lease, workerId: string, reason: string): Promise<'released' | 'failed' | false> {
  return farm.db.db.transaction(async (tx) => {
    const [job] = await queryRows<{ row: Record<string, unknown>; handed_back: Array<string | null> }>(
      tx,
      sql`select row_to_json(j) as row, coalesce((select jsonb_agg(e.data ->> 'workerId') from job_events e
            where e.job_id = j.id and e.type = 'released' and e.data @> '{"workerFault": true}'::jsonb
              and e.id > coalesce(${LATEST_QUEUED_EVENT(sql`j.id`)}, 0)), '[]'::jsonb) as handed_back
          from jobs j where j.id = ${lease.id} and j.lease_token = ${lease.leaseToken} and j.status = 'running'
          for update of j`,
    );
    if (!job) return false;
    const row = jobFromRow(jobRowFromJson(job.row));
    const handBacks = job.handed_back.length + 1;
    const handedBack = new Set([...job.handed_back.filter((id) => id !== null), workerId]);
    const { capable } = await findCapableWorkers(farm, jobNeeds(row.kind, row.params), tx);
    const another = capable.some((w) => !handedBack.has(w.id));
    if (another || handBacks < row.maxAttempts) return (await releaseLocked(tx, farm, lease, { reason, workerFault: true, workerId })) ? 'released' : false;
    const error = `${reason} (handed back ${handBacks} times, by every online worker able to run it: ${[...handedBack].sort().join(', ')})`;
    const outcome = await failLocked(tx, farm, lease.id, lease.leaseToken, { error: storableText(error), userError: NO_WORKER_COULD_RENDER_TEXT }, true);
    return outcome === 'failed' ? 'failed' : false;
  });
}

/**
 * Takes back running jobs whose lease expired (their worker died or hung): each is retried or,
 * out of attempts, failed and refunded. A job on its last attempt is failed only once its lease
 * has been expired for lastAttemptGraceSeconds: until then it stays running under the expired
 * lease, so a render its worker finished and spooled is still completed under that lease when
 * the worker comes back (farm/spool.ts), and the worker may still renew it. One failed after that
 * keeps its lease token: a completion under it (the spool's, after a longer outage) still makes it
 * done, charged again, until its owner retries it. Safe to run from every
 * worker at once (SKIP LOCKED). Returns how many jobs were taken back (reapExpiredLeasesDetailed:
 * which, and what became of each).
 */
export async function reapExpiredLeases(farm: FarmContext, limit = 50): Promise<number> {
  return (await reapExpiredLeasesDetailed(farm, limit)).length;
}

/** One job reapExpiredLeasesDetailed took back: whose lease it was, and what became of the job. */
export interface ReapedJob {
  jobId: number;
  /** The worker that held the lease (null when unknown). */
  workerId: string | null;
  /** The attempt whose lease ran out. */
  attempt: number;
  /** 'retrying': queued again for another attempt; 'failed': that was its last attempt, failed and refunded; 'lost': settled by someone else meanwhile. */
  outcome: FailOutcome;
}

/** reapExpiredLeases, saying which jobs it took back, from which workers, and what became of each (in the order they were settled). */
export async function reapExpiredLeasesDetailed(farm: FarmContext, limit = 50): Promise<ReapedJob[]> {
  const grace = farm.config.lastAttemptGraceSeconds;
  return farm.db.db.transaction(async (tx) => {
    // The first comparison lets the partial index on running leases find the candidates.
    const expired = await queryRows<{ id: string | number; lease_token: string; worker_id: string | null; attempts: number; user_id: string }>(
      tx,
      sql`select id, lease_token, worker_id, attempts, user_id from jobs
          where status = 'running' and lease_expires_at < now()
            and lease_expires_at < now() - case when attempts >= max_attempts then make_interval(secs => ${grace}::float8) else interval '0' end
          order by lease_expires_at limit ${limit} for update skip locked`,
    );
    // Settled in owner order: every batch transaction takes users rows in the same (ascending) order.
    expired.sort((a, b) => (a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : Number(a.id) - Number(b.id)));
    const reaped: ReapedJob[] = [];
    for (const job of expired) {
      const error = leaseLostError(job.worker_id, Number(job.attempts));
      const outcome = await failLocked(tx, farm, Number(job.id), job.lease_token, { error, userError: LEASE_LOST_TEXT }, false, undefined, true);
      reaped.push({ jobId: Number(job.id), workerId: job.worker_id, attempt: Number(job.attempts), outcome });
    }
    return reaped;
  });
}

/**
 * Takes back, at once, the running jobs of a worker id whose process ended (a new process took the
 * id over: claimWorkerId): as the reaper would once their leases ran out, each attempt fails and
 * the job is queued again. Jobs on their last attempt are left to the reaper and its grace, so a
 * render the ended process spooled on another machine can still complete them. `holder`: the
 * process that ended, in words (the error reads "<holder> ended during attempt N", holderEndedError);
 * `exceptLeaseTokens`: leases whose render waits in the caller's spool (left to complete from it).
 */
export async function takeBackJobsOf(farm: FarmContext, workerId: string, holder: string, exceptLeaseTokens: readonly string[] = []): Promise<number> {
  return farm.db.db.transaction(async (tx) => {
    const held = await queryRows<{ id: string | number; lease_token: string; attempts: number }>(
      tx,
      sql`select id, lease_token, attempts from jobs
          where status = 'running' and worker_id = ${workerId} and attempts < max_attempts
            and not (lease_token::text = any(select jsonb_array_elements_text(${JSON.stringify(exceptLeaseTokens)}::jsonb)))
          order by id for update skip locked`,
    );
    for (const job of held) {
      const error = holderEndedError(holder, job.attempts);
      await failLocked(tx, farm, Number(job.id), job.lease_token, { error, userError: LEASE_LOST_TEXT }, false, undefined, true);
    }
    return held.length;
  });
}


/**
 * Fails queued jobs that no worker took within queueTimeoutSeconds of becoming claimable (a model
 * no worker has, a size none fits, or no worker at all): status failed with an "Expired: ..."
 * error, the whole reservation refunded (FarmPolicy.settle), and a 'failed' event, which the bot
 * posts like any failure. Safe to run from every worker at once (SKIP LOCKED). Returns how many
 * jobs expired; 0 when queueTimeoutSeconds is 0 (never).
 */
export async function expireQueuedJobs(farm: FarmContext, limit = 50): Promise<number> {
  const timeout = farm.config.queueTimeoutSeconds;
  if (!(timeout > 0)) return 0;
  // Nothing here checks the workers: every one that can render it may just have been busy.
  const error =
    `${EXPIRED_ERROR_PREFIX} no worker took this job within ${durationText(timeout)} of it becoming claimable, so it failed unrendered and the GPU-seconds it held were refunded in full. ` +
    'The workers that can render it were busy all that time, or none of them was running.';
  // Its owner's line (failureForOwner; the bot adds the refund and what to do).
  const userError = `no render worker took this job within ${durationText(timeout)}, so it was dropped`;
  return farm.db.db.transaction(async (tx) => {
    const rows = await queryRows<{ job: Record<string, unknown> }>(
      tx,
      sql`
      with stale as (
        select id from jobs
        where status = 'queued' and run_after < now() - make_interval(secs => ${timeout}::float8)
        order by id limit ${limit} for update skip locked
      )
      update jobs set status = 'failed', finished_at = now(), error = ${error}, user_error = ${userError}, progress = null, charged_ms = null
      from stale where jobs.id = stale.id
      returning row_to_json(jobs) as job`,
    );
    const expiredJobs = rows.map((row) => jobRowFromJson(row.job)).sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : a.id - b.id));
    for (const job of expiredJobs) {
      await policyOf(farm).settle(tx, job, { kind: 'failed' });
      await recordEvent(tx, 'failed', { ...eventFields(job), error }, { expired: true });
    }
    return rows.length;
  });
}

function eventFields(job: typeof jobs.$inferSelect): EventFields {
  return { jobId: job.id, userId: job.userId, status: job.status, attempt: job.attempts, workerId: job.workerId };
}
