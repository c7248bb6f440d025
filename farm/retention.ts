// Retention: what the farm deletes, and what it never touches. Videos (bytea or files in the
// artifact directory), jobs and their events would otherwise pile up forever. The rules
// (FarmConfig.retention; 0 turns a rule off):
//
//   artifactDays      videos of jobs finished longer ago are deleted; the job row stays
//   maxArtifactBytes  while all videos together take more than this, the oldest go first
//                     (videos only: pictures of unrendered jobs have their own rule, and those of
//                     rendered jobs stay while the job does: re-roll and extend render from them)
//   unrenderedInputHours  the pictures (job_inputs) of jobs that ended without a video (failed or
//                     cancelled) are deleted this many hours after they ended; the job row stays.
//                     A cancelled or failed job costs nothing, so its pictures (up to 10 MiB each)
//                     would otherwise be stored free until jobDays; a retry within the window still
//                     has them, one after it has none to render from. A failed job a late render may
//                     still turn done (reapExpiredLeases keeps its lease token) keeps them at least
//                     queueHorizonSeconds, after which no spooled render of it is stored
//   jobDays           jobs finished longer ago are deleted; the schema's foreign keys do the rest
//                     (db/schema.ts): their events, video and pictures go with them (on delete
//                     cascade), budget_ledger entries stay with their job_id cleared (on delete
//                     set null; the note still names the job), so every balance still equals the
//                     sum of its ledger
//
// Never touched: queued and running jobs, and every job an active job continues from (its
// parent chain: an extension renders from its parent's movie and video). A job row another kept
// job points to stays until that child goes (parent_job_id is `no action`: the database refuses
// to delete it first), so jobs go leaf first, in rounds. A follow-up being submitted (or retried)
// holds its parent's row and video locked until it commits (follow-up-rule.ts checkFollowUpParent):
// retention skips locked rows and decides only once it holds its own locks, so the new job protects
// them before any delete. Workers run this every pruneIntervalSeconds, one at a time (an advisory lock); `npm run farm -- prune` runs it once.
// A run deletes in batches of PRUNE_BATCH_ROWS, each a short transaction of its own, so a large prune
// does not hold up heartbeats and claims (PGlite runs one transaction at a time).
import fs from 'node:fs/promises';
import path from 'node:path';
import { type SQL, sql } from 'drizzle-orm';
import { queryRows, type Transaction } from '../db/client.ts';
import { type FarmContext, queueHorizonSeconds } from './config.ts';
import { ACTIVE_STATUSES, sqlStatuses } from './types.ts';

export interface PruneOptions {
  /** Count what would go, delete nothing. */
  dryRun?: boolean;
}

export interface PruneReport {
  dryRun: boolean;
  /** false when another process was pruning at the same moment (nothing done). */
  ran: boolean;
  artifactsByAge: number;
  artifactsBySize: number;
  artifactBytes: number;
  jobs: number;
  events: number;
  /** Rows of other tables that went with deleted jobs, by table (job_inputs: their pictures). */
  otherRows: Record<string, number>;
  /** Files removed from the artifact directory. */
  files: number;
  /** Pictures (job_inputs rows) of jobs that ended without a video, deleted by unrenderedInputHours. */
  unrenderedInputs: number;
  /** Their bytes. */
  unrenderedInputBytes: number;
}

const PRUNE_LOCK = sql`hashtext('blendfarm:prune')`;

/**
 * Ids of jobs that must keep everything: active jobs and all their ancestors (CTE "protected").
 */
const PROTECTED = sql`protected as (
  with recursive chain(id, parent_job_id) as (
    select id, parent_job_id from jobs where status in ${sqlStatuses(ACTIVE_STATUSES)}
    union
    select p.id, p.parent_job_id from jobs p join chain c on p.id = c.parent_job_id
  )
  select id from chain
)`;

/**
 * The rule of unrenderedInputHours, as SQL on a job `j` (the statement must define PROTECTED's
 * `protected`): a failed or cancelled job whose pictures retention deletes now, for it ended without
 * a video longer ago than the window (one that keeps its lease token, which a late spooled render may
 * still complete, at least the queue horizon) and no active job's chain holds it. Undefined when the
 * window is 0 (pictures stay until the job goes). pruneFarm deletes by it; the picture allowance
 * (farm/jobs.ts) counts the pictures of failed and cancelled jobs it does not hold, so a member's
 * pictures count exactly while retention keeps them.
 */
export function unrenderedInputsDue(config: FarmContext['config']): SQL | undefined {
  const windowSeconds = config.retention.unrenderedInputHours * 3600;
  if (!(windowSeconds > 0)) return undefined;
  const lateRenderSeconds = Math.max(windowSeconds, queueHorizonSeconds(config));
  return sql`(j.status in ('failed', 'cancelled')
    and j.finished_at < now() - make_interval(secs => case when j.lease_token is null then ${windowSeconds}::float8 else ${lateRenderSeconds}::float8 end)
    and j.id not in (select id from protected)
    and not exists (select 1 from artifacts a where a.job_id = j.id))`;
}

/** The jobs in a chain (parents, recursively) with a queued or running job: `with ${PROTECTED}` defines `protected`. */
export { PROTECTED as PROTECTED_JOBS };

/** `ids` as a bigint set for `in (...)`. */
const idSet = (ids: number[]) => sql`(select (jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))::bigint)`;

/**
 * Deletes artifact rows by id and returns what went: first locks them, skipping rows a submission
 * holds (checkFollowUpParent locks the video an upscale or extension starts from until the new job
 * commits), then, in a second statement whose snapshot sees every job committed before those locks,
 * deletes those the protection rule still allows.
 */
async function deleteArtifacts(tx: Transaction, ids: number[]): Promise<Array<{ size_bytes: number; path: string | null }>> {
  if (ids.length === 0) return [];
  const locked = await queryRows<{ id: number }>(tx, sql`select a.id::float8 as id from artifacts a where a.id in ${idSet(ids)} for update skip locked`);
  if (locked.length === 0) return [];
  return queryRows(
    tx,
    sql`with ${PROTECTED}
        delete from artifacts a
        where a.id in ${idSet(locked.map((r) => r.id))}
          and a.job_id not in (select id from protected)
        returning a.size_bytes, a.path`,
  );
}

/**
 * The most rows one batch of a prune locks and deletes (videos, jobs, or jobs whose pictures go).
 * Each batch is a transaction of its own, so other statements run between batches instead of
 * waiting for the whole prune: with PGlite, which runs one transaction at a time, a worker's
 * heartbeat and claims, and the bot's submissions.
 */
export const PRUNE_BATCH_ROWS = 500;

/** The most batches one run of each rule takes (what is left goes at the next run). */
const MAX_BATCHES_PER_RULE = 200;

/** A batch found another process pruning (the advisory lock held): this run stops. */
const BUSY = Symbol('another process is pruning');

/**
 * Applies the retention rules once, in batches of at most PRUNE_BATCH_ROWS rows, each its own
 * transaction holding the prune's advisory lock (another process pruning at the same moment: this
 * run stops at its next batch; `ran` false when it had done nothing). Dry run: everything in one
 * transaction, rolled back: counts what would be deleted, changes nothing.
 */
export async function pruneFarm(farm: FarmContext, options: PruneOptions = {}): Promise<PruneReport> {
  const dryRun = options.dryRun ?? false;
  const { artifactDays, jobDays, maxArtifactBytes } = farm.config.retention;
  const report: PruneReport = { dryRun, ran: true, artifactsByAge: 0, artifactsBySize: 0, artifactBytes: 0, jobs: 0, events: 0, otherRows: {}, files: 0, unrenderedInputs: 0, unrenderedInputBytes: 0 };
  const files: string[] = [];
  const gone = (rows: Array<{ size_bytes: number; path: string | null }>) => {
    for (const row of rows) {
      report.artifactBytes += Number(row.size_bytes);
      if (row.path) files.push(row.path);
    }
    return rows.length;
  };
  const tryLock = async (tx: Transaction) => (await queryRows<{ ok: boolean }>(tx, sql`select pg_try_advisory_xact_lock(${PRUNE_LOCK}) as ok`))[0].ok;

  /**
   * Runs `step` (one batch: how many rows it deleted) until it deletes none, at most
   * MAX_BATCHES_PER_RULE times; false when another process holds the prune's lock (`ran` false if
   * no batch of this run had run yet).
   */
  type Batches = (step: (tx: Transaction) => Promise<number>) => Promise<boolean>;
  let batches: Batches;
  let didSomething = false;
  const repeat = async (batch: (step: (tx: Transaction) => Promise<number>) => Promise<number | typeof BUSY>, step: (tx: Transaction) => Promise<number>) => {
    for (let round = 0; round < MAX_BATCHES_PER_RULE; round++) {
      const deleted = await batch(step);
      if (deleted === BUSY) {
        if (!didSomething) report.ran = false;
        return false;
      }
      didSomething = true;
      if (deleted === 0) break;
    }
    return true;
  };

  const rules = async (): Promise<void> => {
    if (artifactDays > 0) {
      const ok = await batches(async (tx) => {
        const old = await queryRows<{ id: number }>(
          tx,
          sql`with ${PROTECTED} select a.id::float8 as id from artifacts a join jobs j on j.id = a.job_id
              where j.status in ('done', 'failed', 'cancelled') and j.finished_at < now() - make_interval(secs => ${artifactDays * 86_400}::float8)
                and a.job_id not in (select id from protected)
              order by a.id limit ${PRUNE_BATCH_ROWS}`,
        );
        const n = gone(await deleteArtifacts(tx, old.map((r) => r.id)));
        report.artifactsByAge += n;
        return n;
      });
      if (!ok) return;
    }

    if (maxArtifactBytes > 0) {
      // Oldest first, while what is left is over the cap.
      const ok = await batches(async (tx) => {
        const over = await queryRows<{ id: number }>(
          tx,
          sql`with ${PROTECTED}, total as (select coalesce(sum(size_bytes), 0)::float8 as bytes from artifacts),
              ordered as (
                select a.id, coalesce(sum(a.size_bytes) over (order by j.finished_at nulls last, a.id rows between unbounded preceding and 1 preceding), 0)::float8 as before
                from artifacts a join jobs j on j.id = a.job_id
                where j.status in ('done', 'failed', 'cancelled') and a.job_id not in (select id from protected)
              )
              select ordered.id::float8 as id from ordered, total where total.bytes - ordered.before > ${maxArtifactBytes}::float8
              order by ordered.before limit ${PRUNE_BATCH_ROWS}`,
        );
        const n = gone(await deleteArtifacts(tx, over.map((r) => r.id)));
        report.artifactsBySize += n;
        return n;
      });
      if (!ok) return;
    }

    const due = unrenderedInputsDue(farm.config);
    if (due) {
      // As for jobs below: the first statement locks the jobs (FOR SHARE: a retry, which locks
      // its job FOR UPDATE, waits for this commit and then finds the pictures gone, or holds the
      // row and is skipped), the second checks the rule again and deletes their pictures.
      const unrendered = sql`${due} and exists (select 1 from job_inputs i where i.job_id = j.id)`;
      const ok = await batches(async (tx) => {
        const locked = await queryRows<{ id: number }>(
          tx,
          sql`with ${PROTECTED} select j.id::float8 as id from jobs j where ${unrendered} order by j.id limit ${PRUNE_BATCH_ROWS} for share of j skip locked`,
        );
        if (locked.length === 0) return 0;
        const [deleted] = await queryRows<{ rows: number; bytes: number }>(
          tx,
          sql`with ${PROTECTED},
              doomed as (select j.id from jobs j where j.id in ${idSet(locked.map((r) => r.id))} and ${unrendered}),
              gone as (delete from job_inputs where job_id in (select id from doomed) returning octet_length(bytes) as n)
              select count(*)::int as rows, coalesce(sum(n), 0)::float8 as bytes from gone`,
        );
        report.unrenderedInputs += deleted.rows;
        report.unrenderedInputBytes += deleted.bytes;
        return deleted.rows;
      });
      if (!ok) return;
    }

    if (jobDays > 0) {
      // Two statements per batch. The first locks a batch of leaves (a job no other job points
      // to; a locked one, e.g. the parent of a follow-up being submitted, is left for the next
      // pass). The second, whose snapshot sees every job committed before those locks were
      // taken, checks the rule again, counts what the foreign keys' cascade will take with them
      // (same snapshot, before the delete), and deletes them. A parent goes in a later batch,
      // after its child.
      const leaf = sql`j.status in ('done', 'failed', 'cancelled')
                  and j.finished_at < now() - make_interval(secs => ${jobDays * 86_400}::float8)
                  and j.id not in (select id from protected)
                  and not exists (select 1 from jobs c where c.parent_job_id = j.id)`;
      await batches(async (tx) => {
        const locked = await queryRows<{ id: number }>(
          tx,
          sql`with ${PROTECTED} select j.id::float8 as id from jobs j where ${leaf} order by j.id limit ${PRUNE_BATCH_ROWS} for update of j skip locked`,
        );
        if (locked.length === 0) return 0;
        const [batch] = await queryRows<{ jobs: number; events: number; inputs: number; artifacts: Array<{ size_bytes: number; path: string | null }> }>(
          tx,
          sql`with ${PROTECTED},
              doomed as (select j.id from jobs j where j.id in ${idSet(locked.map((r) => r.id))} and ${leaf}),
              gone as (delete from jobs where id in (select id from doomed) returning id)
              select (select count(*) from gone)::int as jobs,
                (select count(*) from job_events where job_id in (select id from doomed))::int as events,
                (select count(*) from job_inputs where job_id in (select id from doomed))::int as inputs,
                (select coalesce(jsonb_agg(jsonb_build_object('size_bytes', size_bytes, 'path', path)), '[]'::jsonb)
                   from artifacts where job_id in (select id from doomed)) as artifacts`,
        );
        report.jobs += batch.jobs;
        report.events += batch.events;
        report.artifactsByAge += gone(batch.artifacts);
        if (batch.inputs > 0) report.otherRows.job_inputs = (report.otherRows.job_inputs ?? 0) + batch.inputs;
        return batch.jobs;
      });
    }
  };

  if (dryRun) {
    const rollback = new Error('dry run');
    try {
      await farm.db.db.transaction(async (tx) => {
        if (!(await tryLock(tx))) {
          report.ran = false;
          return;
        }
        batches = (step) => repeat((s) => s(tx), step);
        await rules();
        throw rollback;
      });
    } catch (error) {
      if (error !== rollback) throw error;
    }
  } else {
    batches = (step) => repeat((s) => farm.db.db.transaction(async (tx) => ((await tryLock(tx)) ? s(tx) : BUSY)), step);
    await rules();
  }

  if (!dryRun && farm.config.artifactDir) {
    // After the commit: a crash before this leaves a file without a row, never a row without its file.
    for (const name of files) {
      const removed = await fs.rm(path.resolve(farm.config.artifactDir, name)).then(() => true, () => false);
      if (removed) report.files++;
    }
  }
  return report;
}

/** One line for logs and the CLI. */
export function describePrune(report: PruneReport): string {
  if (!report.ran) return 'Another process is pruning right now; nothing done.';
  const mb = (report.artifactBytes / 1_000_000).toFixed(1);
  const other = Object.entries(report.otherRows).map(([table, n]) => `, ${n} ${table} row(s)`).join('');
  const pictures = report.unrenderedInputs > 0 ? `, ${report.unrenderedInputs} picture(s) of unrendered jobs (${(report.unrenderedInputBytes / 1_000_000).toFixed(1)} MB)` : '';
  return `${report.dryRun ? 'Would delete' : 'Deleted'} ${report.artifactsByAge + report.artifactsBySize} video(s) (${mb} MB; ${report.artifactsBySize} for the size cap), ${report.jobs} job(s), ${report.events} event(s)${other}${pictures}` +
    (report.files > 0 ? `; removed ${report.files} file(s)` : '') + '.';
}
