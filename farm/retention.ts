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
//
// Videos stored as files (artifacts.path, relative to BLENDFARM_ARTIFACT_DIR) go only with their
// file: a process that cannot reach the file (no BLENDFARM_ARTIFACT_DIR, a folder that is not there,
// a path outside it) leaves the video's row, and a job such a video belongs to, for a process that
// can (the report counts them: keptFiles, keptFilesReason); a removal that fails (other than the
// file being gone already) keeps the row too, so a later run tries again (filesFailed, fileErrors).
// A file is removed inside its batch's transaction, before the row's delete commits: a crash between
// the two leaves a row without its file (the next run finds the file gone and deletes the row),
// never a file nothing points to.
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
  /** Files removed from the artifact directory (0 in a dry run). */
  files: number;
  /** Videos deleted whose file was gone already (ENOENT). */
  filesAlreadyGone: number;
  /**
   * Videos stored as files that the rules would delete but this process cannot reach (see
   * keptFilesReason): their rows, and the jobs they belong to, stay for a process that can.
   */
  keptFiles: number;
  /** Why this process cannot reach them; null when keptFiles is 0. */
  keptFilesReason: string | null;
  /** Files whose removal failed (other than ENOENT): their rows stay, and the next run tries again. */
  filesFailed: number;
  /** The first FILE_ERRORS_LISTED of those failures: the file and its error. */
  fileErrors: Array<{ file: string; error: string }>;
  /** Pictures (job_inputs rows) of jobs that ended without a video, deleted by unrenderedInputHours. */
  unrenderedInputs: number;
  /** Their bytes. */
  unrenderedInputBytes: number;
}

const PRUNE_LOCK = sql`hashtext('blendfarm:prune')`;

/** How many failed file removals a report lists (filesFailed counts them all). */
export const FILE_ERRORS_LISTED = 10;

/**
 * The folder in which this process can remove video files: its artifact directory when set and a
 * folder here; otherwise why not (every file-backed video is then kept for another process).
 */
async function artifactFolder(artifactDir: string | undefined): Promise<{ dir: string } | { why: string }> {
  if (!artifactDir) return { why: 'BLENDFARM_ARTIFACT_DIR is not set here' };
  const dir = path.resolve(artifactDir);
  try {
    if (!(await fs.stat(dir)).isDirectory()) return { why: `BLENDFARM_ARTIFACT_DIR (${dir}) is not a folder here` };
  } catch (error) {
    return { why: `BLENDFARM_ARTIFACT_DIR (${dir}) cannot be read here (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` };
  }
  return { dir };
}

/** The file a stored video path names in `dir` (paths are stored relative to it); undefined when it lies outside `dir`. */
function fileInFolder(dir: string, stored: string): string | undefined {
  const file = path.resolve(dir, stored);
  const inside = path.relative(dir, file);
  return inside !== '' && !inside.startsWith('..') && !path.isAbsolute(inside) ? file : undefined;
}

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
  const report: PruneReport = {
    dryRun,
    ran: true,
    artifactsByAge: 0,
    artifactsBySize: 0,
    artifactBytes: 0,
    jobs: 0,
    events: 0,
    otherRows: {},
    files: 0,
    filesAlreadyGone: 0,
    keptFiles: 0,
    keptFilesReason: null,
    filesFailed: 0,
    fileErrors: [],
    unrenderedInputs: 0,
    unrenderedInputBytes: 0,
  };
  const folder = await artifactFolder(farm.config.artifactDir);
  /** Videos (artifact ids) this run keeps: files it cannot reach, or failed to remove. Later batches skip them. */
  const unreachable = new Set<number>();
  const failed = new Set<number>();
  const skipped = () => idSet([...unreachable, ...failed]);
  const gone = (rows: Array<{ size_bytes: number }>) => {
    for (const row of rows) report.artifactBytes += Number(row.size_bytes);
    return rows.length;
  };

  /**
   * Removes the files of videos about to be deleted in this transaction (a dry run removes none);
   * returns the artifact ids whose rows must stay: a file this process cannot reach, or whose removal
   * failed (ENOENT is not a failure: the file is gone already).
   */
  const removeFiles = async (videos: Array<{ id: number; path: string | null }>): Promise<Set<number>> => {
    const keep = new Set<number>();
    for (const video of videos) {
      if (!video.path) continue;
      if (unreachable.has(video.id) || failed.has(video.id)) {
        keep.add(video.id);
        continue;
      }
      const file = 'dir' in folder ? fileInFolder(folder.dir, video.path) : undefined;
      if (!file) {
        unreachable.add(video.id);
        report.keptFilesReason ??= 'dir' in folder ? `stored outside BLENDFARM_ARTIFACT_DIR (${folder.dir}): ${video.path}` : folder.why;
        keep.add(video.id);
        continue;
      }
      if (dryRun) continue;
      try {
        await fs.rm(file);
        report.files++;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
          report.filesAlreadyGone++;
          continue;
        }
        failed.add(video.id);
        if (report.fileErrors.length < FILE_ERRORS_LISTED) report.fileErrors.push({ file, error: (error as Error).message });
        keep.add(video.id);
      }
    }
    report.keptFiles = unreachable.size;
    report.filesFailed = failed.size;
    return keep;
  };

  /**
   * Deletes artifact rows by id (candidates a rule chose), returning how many rows the batch settled
   * (deleted, or kept from now on: a file this process cannot reach or remove). First locks them,
   * skipping rows a submission holds (checkFollowUpParent locks the video an upscale or extension
   * starts from until the new job commits); then, in a statement whose snapshot sees every job
   * committed before those locks, takes those the protection rule still allows; removes their files;
   * deletes the rows whose file went (or never was).
   */
  const deleteArtifacts = async (tx: Transaction, ids: number[]): Promise<{ settled: number; deleted: number }> => {
    if (ids.length === 0) return { settled: 0, deleted: 0 };
    const keptBefore = unreachable.size + failed.size;
    const locked = await queryRows<{ id: number }>(tx, sql`select a.id::float8 as id from artifacts a where a.id in ${idSet(ids)} for update skip locked`);
    if (locked.length === 0) return { settled: 0, deleted: 0 };
    const allowed = await queryRows<{ id: number; path: string | null }>(
      tx,
      sql`with ${PROTECTED}
          select a.id::float8 as id, a.path from artifacts a
          where a.id in ${idSet(locked.map((r) => r.id))}
            and a.job_id not in (select id from protected)`,
    );
    const keep = await removeFiles(allowed);
    const doomed = allowed.filter((r) => !keep.has(r.id)).map((r) => r.id);
    const deleted = doomed.length === 0 ? [] : await queryRows<{ size_bytes: number }>(tx, sql`delete from artifacts a where a.id in ${idSet(doomed)} returning a.size_bytes`);
    return { settled: deleted.length + unreachable.size + failed.size - keptBefore, deleted: gone(deleted) };
  };
  const tryLock = async (tx: Transaction) => (await queryRows<{ ok: boolean }>(tx, sql`select pg_try_advisory_xact_lock(${PRUNE_LOCK}) as ok`))[0].ok;

  /**
   * Runs `step` (one batch: how many rows it settled, deleted or kept from now on) until it settles none, at most
   * MAX_BATCHES_PER_RULE times; false when another process holds the prune's lock (`ran` false if
   * no batch of this run had run yet).
   */
  type Batches = (step: (tx: Transaction) => Promise<number>) => Promise<boolean>;
  let batches: Batches;
  let didSomething = false;
  const repeat = async (batch: (step: (tx: Transaction) => Promise<number>) => Promise<number | typeof BUSY>, step: (tx: Transaction) => Promise<number>) => {
    for (let round = 0; round < MAX_BATCHES_PER_RULE; round++) {
      const settled = await batch(step);
      if (settled === BUSY) {
        if (!didSomething) report.ran = false;
        return false;
      }
      didSomething = true;
      if (settled === 0) break;
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
                and a.id not in ${skipped()}
              order by a.id limit ${PRUNE_BATCH_ROWS}`,
        );
        const { settled, deleted } = await deleteArtifacts(tx, old.map((r) => r.id));
        report.artifactsByAge += deleted;
        return settled;
      });
      if (!ok) return;
    }

    if (maxArtifactBytes > 0) {
      // Oldest first, while what is left is over the cap. A video kept (a file this process cannot
      // reach or remove) keeps its place and its bytes: the cap counts only what was freed, and
      // newer videos do not go in its place (whether a video is over the cap depends only on the
      // videos after it).
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
                and ordered.id not in ${skipped()}
              order by ordered.before limit ${PRUNE_BATCH_ROWS}`,
        );
        const { settled, deleted } = await deleteArtifacts(tx, over.map((r) => r.id));
        report.artifactsBySize += deleted;
        return settled;
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
      // Three steps per batch. The first locks a batch of leaves (a job no other job points to; a
      // locked one, e.g. the parent of a follow-up being submitted, is left for the next pass). The
      // second, whose snapshot sees every job committed before those locks were taken, checks the
      // rule again and finds their video files, and removes them (a job whose file this process
      // cannot reach or remove stays, with its video: keptFiles, filesFailed). The third counts what
      // the foreign keys' cascade will take with the rest (same snapshot, before the delete) and
      // deletes them. A parent goes in a later batch, after its child.
      const leaf = sql`j.status in ('done', 'failed', 'cancelled')
                  and j.finished_at < now() - make_interval(secs => ${jobDays * 86_400}::float8)
                  and j.id not in (select id from protected)
                  and not exists (select 1 from jobs c where c.parent_job_id = j.id)`;
      /** Jobs kept this run for their video's file. */
      const keptJobs = new Set<number>();
      await batches(async (tx) => {
        const locked = await queryRows<{ id: number }>(
          tx,
          sql`with ${PROTECTED} select j.id::float8 as id from jobs j where ${leaf} and j.id not in ${idSet([...keptJobs])}
              order by j.id limit ${PRUNE_BATCH_ROWS} for update of j skip locked`,
        );
        if (locked.length === 0) return 0;
        const doomed = await queryRows<{ id: number }>(tx, sql`with ${PROTECTED} select j.id::float8 as id from jobs j where j.id in ${idSet(locked.map((r) => r.id))} and ${leaf}`);
        const videos = await queryRows<{ id: number; job_id: number; path: string }>(
          tx,
          sql`select a.id::float8 as id, a.job_id::float8 as job_id, a.path from artifacts a where a.job_id in ${idSet(doomed.map((r) => r.id))} and a.path is not null`,
        );
        const keep = await removeFiles(videos);
        const keptBefore = keptJobs.size;
        for (const video of videos) if (keep.has(video.id)) keptJobs.add(video.job_id);
        const going = doomed.map((r) => r.id).filter((id) => !keptJobs.has(id));
        if (going.length === 0) return keptJobs.size - keptBefore;
        const [batch] = await queryRows<{ jobs: number; events: number; inputs: number; artifacts: Array<{ size_bytes: number }> }>(
          tx,
          sql`with doomed as (select id from jobs where id in ${idSet(going)}),
              gone as (delete from jobs where id in (select id from doomed) returning id)
              select (select count(*) from gone)::int as jobs,
                (select count(*) from job_events where job_id in (select id from doomed))::int as events,
                (select count(*) from job_inputs where job_id in (select id from doomed))::int as inputs,
                (select coalesce(jsonb_agg(jsonb_build_object('size_bytes', size_bytes)), '[]'::jsonb)
                   from artifacts where job_id in (select id from doomed)) as artifacts`,
        );
        report.jobs += batch.jobs;
        report.events += batch.events;
        report.artifactsByAge += gone(batch.artifacts);
        if (batch.inputs > 0) report.otherRows.job_inputs = (report.otherRows.job_inputs ?? 0) + batch.inputs;
        return batch.jobs + keptJobs.size - keptBefore;
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

  return report;
}

/** One line for logs and the CLI. */
export function describePrune(report: PruneReport): string {
  if (!report.ran) return 'Another process is pruning right now; nothing done.';
  const mb = (report.artifactBytes / 1_000_000).toFixed(1);
  const other = Object.entries(report.otherRows).map(([table, n]) => `, ${n} ${table} row(s)`).join('');
  const pictures = report.unrenderedInputs > 0 ? `, ${report.unrenderedInputs} picture(s) of unrendered jobs (${(report.unrenderedInputBytes / 1_000_000).toFixed(1)} MB)` : '';
  const gone = report.filesAlreadyGone > 0 ? `; ${report.filesAlreadyGone} video file(s) were gone already` : '';
  const kept =
    report.keptFiles > 0
      ? `; ${report.dryRun ? 'would keep' : 'kept'} ${report.keptFiles} video file(s) this process cannot reach (${report.keptFilesReason}): ` +
        'set BLENDFARM_ARTIFACT_DIR to the folder the workers keep videos in, or leave them to a process that has it'
      : '';
  const failed =
    report.filesFailed > 0
      ? `; could not remove ${report.filesFailed} file(s), so their videos stay and the next run tries again (check the folder's mount and permissions): ` +
        report.fileErrors.map((f) => `${f.file} (${f.error})`).join(', ') +
        (report.filesFailed > report.fileErrors.length ? `, and ${report.filesFailed - report.fileErrors.length} more` : '')
      : '';
  return `${report.dryRun ? 'Would delete' : 'Deleted'} ${report.artifactsByAge + report.artifactsBySize} video(s) (${mb} MB; ${report.artifactsBySize} for the size cap), ${report.jobs} job(s), ${report.events} event(s)${other}${pictures}` +
    (report.files > 0 ? `; removed ${report.files} file(s)` : '') + gone + kept + failed + '.';
}
