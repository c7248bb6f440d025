// Job life cycle as seen from front ends (bot, CLI): submit (admitted and priced by the policy),
// look up, cancel with a refund, retry, and record delivery exactly once. Workers' side is in
// queue.ts; the budget, cost and fairness rules are in policy/.
import fs from 'node:fs/promises';
import path from 'node:path';
import { and, asc, desc, eq, inArray, isNull, ne, sql, type SQL } from 'drizzle-orm';
import { type Queryable, queryRows, type Transaction } from '../db/client.ts';
import { artifacts, jobInputs, jobs, type JobKind, type JobStatus } from '../db/schema.ts';
import { type FarmContext, queueHorizonSeconds } from './config.ts';
import { PROTECTED_JOBS, unrenderedInputsDue } from './retention.ts';
import { DuplicateUpscaleError, FarmError, InvalidJobStateError, JobNotFoundError, NoCapableWorkerError, PictureAllowanceError } from './errors.ts';
import { recordEvent } from './events.ts';
import { cancelledByText } from './failure.ts';
import { checkFollowUpParent, isFollowUpKind } from './follow-up-rule.ts';
import { storableText } from './text.ts';
import { checkRequestIds, isJobId } from './ids.ts';
import { checkJobInputs, inputNames, type JobInput, JobParamsError, type JobParams, outputPixels, parseJobParams, recheckStoredParams, withFamilyPresetSteps } from './job-params.ts';
import { DEFAULT_UPSCALE_FACTOR } from './limits.ts';
import { checkExtension, type Movie, movieOf } from './movie.ts';
import { type AdmissionRequest, type BudgetContext, policyOf } from './policy/index.ts';
import { ACTIVE_STATUSES, type Artifact, type Job, jobFromRow, sqlStatuses, TERMINAL_STATUSES } from './types.ts';
import { familyOf, findKnownWorkers, findCapableWorkers, jobNeeds, sizeMultipleIssues, type WorkerInfo } from './worker-registry.ts';

export interface SubmitJobInput {
  kind: JobKind;
  userId: string;
  /** Validated with parseJobParams; a JobParamsError explains what is wrong. */
  params: unknown;
  guildId?: string | null;
  channelId?: string | null;
  messageId?: string | null;
  /** Discord interaction token and when it stops working (15 minutes after the interaction). */
  interactionToken?: string | null;
  interactionExpiresAt?: Date | null;
  /** The member's roles in guildId, for role-based budget overrides. */
  roleIds?: readonly string[];
  parentJobId?: number | null;
  /**
   * The pictures the parameters refer to, by name (job-params.ts INPUT_NAMES: image-1, inpaint-image,
   * inpaint-mask, start-image), as uploaded; checked by checkJobInputs and stored with the job.
   */
  inputs?: Readonly<Record<string, Uint8Array>>;
  /** Refuse (NoCapableWorkerError) unless an online worker can run this model (upscale: this upscaler and factor) at this size. */
  requireCapableWorker?: boolean;
}

/**
 * Validates, prices and queues a job. The policy admits it (FarmPolicy.admit) and reserves its
 * price from the user's budget in the same transaction that inserts the job; a job that does not
 * fit is refused with the numbers.
 */
export async function submitJob(farm: FarmContext, input: SubmitJobInput): Promise<Job> {
  const { params, pictures, parentJobId, pixels, admission } = await checkRequest(farm, input, { pictures: true });
  const policy = policyOf(farm);

  return farm.db.db.transaction(async (tx) => {
    // The parent (and its video, which an upscale or extension starts from) stays until this commits.
    if (parentJobId !== null) await checkFollowUpParent(tx, input.kind, parentJobId, { lock: true });
    if (input.kind === 'upscale' && parentJobId !== null) await refuseDuplicateUpscale(tx, input.userId, parentJobId, params);
    const row = await policy.admit(tx, { ...admission, note: (id: number) => `${input.kind} job ${id}` }, async (reservedMs) => {
      const [inserted] = await tx
        .insert(jobs)
        .values({
          kind: input.kind,
          userId: input.userId,
          guildId: input.guildId ?? null,
          channelId: input.channelId ?? null,
          messageId: input.messageId ?? null,
          interactionToken: input.interactionToken ?? null,
          interactionExpiresAt: input.interactionExpiresAt ?? null,
          params: params as unknown as Record<string, unknown>,
          model: params.model,
          pixels,
          maxAttempts: farm.config.maxAttempts,
          parentJobId,
          reservedMs,
        })
        .returning();
      return inserted;
    });
    const stored = Object.entries(pictures).map(([name, { bytes, mime }]) => ({ jobId: row.id, name, mime, bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) }));
    if (stored.length) {
      // Under the user's row lock (the admission's): two submissions at once are counted in turn.
      await refuseOverPictureAllowance(farm, tx, input.userId, stored.reduce((sum, s) => sum + s.bytes.byteLength, 0));
      await tx.insert(jobInputs).values(stored);
    }
    await recordEvent(tx, 'queued', { jobId: row.id, userId: row.userId, status: 'queued', attempt: 0 });
    return jobFromRow(row);
  });
}

/**
 * Refuses pictures that would take what the user's jobs hold past the farm's maxHeldPictureBytes:
 * the pictures of their jobs waiting or running, and of those that ended without a video for as
 * long as retention keeps them (unrenderedInputsDue, farm/retention.ts: one rule for both; with
 * unrenderedInputHours 0 they stay until the job goes). Pictures of done jobs are not counted: they
 * made a video and were paid for.
 */
async function refuseOverPictureAllowance(farm: FarmContext, tx: Transaction, userId: string, newBytes: number): Promise<void> {
  const due = unrenderedInputsDue(farm.config);
  const kept = due ? sql`(j.status in ('failed', 'cancelled') and not ${due})` : sql`j.status in ('failed', 'cancelled')`;
  const [row] = await queryRows<{ held: string | number }>(
    tx,
    sql`${due ? sql`with ${PROTECTED_JOBS} ` : sql.empty()}select coalesce(sum(octet_length(i.bytes)), 0)::bigint as held from job_inputs i join jobs j on j.id = i.job_id
        where j.user_id = ${userId} and (j.status in ${sqlStatuses(ACTIVE_STATUSES)} or ${kept})`,
  );
  const held = Number(row?.held ?? 0);
  const max = farm.config.maxHeldPictureBytes;
  if (held + newBytes > max) throw new PictureAllowanceError(held, newBytes, max, farm.config.retention.unrenderedInputHours);
}

/**
 * Would submitJob refuse this job now, its pictures aside? Throws the refusal submitJob would make
 * before queueing it (the same error and words): its ids and parameters, the parent of a
 * follow-up, no worker able to run it (with `requireCapableWorker`, none online), and the policy's
 * admission (FarmPolicy.check: too many active jobs, a budget that does not cover the price); the
 * pictures the parameters refer to are not looked at. Reads only. For a front end that would
 * otherwise do costly work first (the bot downloads a command's pictures after this); a forecast:
 * submitJob checks everything again and decides.
 */
export async function checkSubmission(farm: FarmContext, input: Omit<SubmitJobInput, 'inputs'>): Promise<void> {
  const { admission } = await checkRequest(farm, input, { pictures: false });
  await policyOf(farm).check?.(farm.db.db, admission);
}

/**
 * submitJob's checks before its transaction, in its order: the request's ids, its parameters, its
 * pictures (unless `pictures` is false: checkSubmission), the parent of a follow-up (checked again
 * under lock by submitJob), a worker able to run it. Returns what queueing it takes, the admission
 * request (price included) but for its ledger note.
 */
async function checkRequest(
  farm: FarmContext,
  input: SubmitJobInput,
  check: { pictures: boolean },
): Promise<{ params: JobParams; pictures: Record<string, JobInput>; parentJobId: number | null; pixels: number; admission: Omit<AdmissionRequest, 'note'> }> {
  checkRequestIds(input);
  let params = parseJobParams(input.kind, input.params);
  const pictures = check.pictures ? await checkJobInputs(input.kind, params, input.inputs) : {};
  const parentJobId = input.parentJobId ?? null;
  if (parentJobId !== null && !isJobId(parentJobId)) throw new JobNotFoundError(parentJobId);
  if (isFollowUpKind(input.kind) && parentJobId === null) {
    throw new FarmError('invalid_params', `A ${input.kind} job continues from an earlier job: give its id as the parent.`);
  }
  let moviePrompts = params.prompts.length;
  if (parentJobId !== null) {
    // Refused before anything else is looked up (submitJob checks again under lock).
    const parent = await checkFollowUpParent(farm.db.db, input.kind, parentJobId);
    if (input.kind === 'extend') {
      // The whole movie decides the price and, when it has pictures, what the worker's model must do.
      const movie = await movieOf(farm.db.db, parent);
      params = extensionRules(params, movie);
      moviePrompts += movie.prompts.length;
    }
  }
  const pixels = outputPixels(params);
  const capable = await refuseIfNoWorkerCan(farm, input.kind, params, input.requireCapableWorker ?? false);
  // A quality preset on a model its workers say is a turbo one: the family's steps, stored in the
  // params (the worker renders them, the price below counts them, follow-ups copy them).
  params = withFamilyPresetSteps(input.kind, input.params, params, capable.map((w) => familyOf(w.capabilities, params.model)));
  const admission = { userId: input.userId, guildId: input.guildId, roleIds: input.roleIds, gpuSeconds: policyOf(farm).price(params, moviePrompts) };
  return { params, pictures, parentJobId, pixels, admission };
}

/**
 * Submission's rules for an extension's parameters that read the movie it continues (`continued`:
 * that whole movie, without the extension's own prompts), for submitJob (checkRequest) and
 * retryJob (retriedParams) alike: the whole movie within LIMITS.prompts.max (checkExtension), and
 * movieHasPictures set when that movie has pictures (its model must take them: modelAbilityFor).
 */
function extensionRules(params: JobParams, continued: Pick<Movie, 'prompts' | 'images'>): JobParams {
  checkExtension(continued, params.prompts.length);
  return continued.images?.length && !params.movieHasPictures ? { ...params, movieHasPictures: true } : params;
}

/**
 * Refuses (NoCapableWorkerError) a job to be queued (submitted or retried) that no worker can run:
 * with `requireCapableWorker`, none online; always, none the farm knows when it knows any (a model
 * none has, a size none fits: it would only wait and expire). A frame size that only the side
 * multiple of the workers' model stops (520 px on a model that needs multiples of 64) is refused as
 * the parameters' fault instead (JobParamsError naming the nearest sizes: sizeMultipleIssues).
 * With no worker known at all the job waits for the first one (and expires after
 * queueTimeoutSeconds if none comes). `q`: where to read the workers (retryJob's transaction);
 * default the database. Returns the workers able to run it: online ones with
 * `requireCapableWorker`, else those the farm knows (none: none known).
 */
async function refuseIfNoWorkerCan(farm: FarmContext, kind: JobKind, params: JobParams, requireCapableWorker: boolean, q: Queryable = farm.db.db): Promise<WorkerInfo[]> {
  const need = jobNeeds(kind, params);
  const refuse = (checked: WorkerInfo[]): never => {
    const sizeIssues = sizeMultipleIssues(need, checked);
    throw sizeIssues.length > 0 ? new JobParamsError(sizeIssues) : new NoCapableWorkerError(need, checked);
  };
  if (requireCapableWorker) {
    const { capable, online } = await findCapableWorkers(farm, need, q);
    if (capable.length === 0) refuse(online);
    return capable;
  }
  const { capable, known } = await findKnownWorkers(farm, need, queueHorizonSeconds(farm.config), q);
  if (known.length > 0 && capable.length === 0) refuse(known);
  return capable;
}

/** Advisory lock class (with a hash of user and parent) under which duplicate upscales are looked for. */
const UPSCALE_LOCK_CLASS = 0x75707363; // 'upsc'

/**
 * Refuses (DuplicateUpscaleError) an upscale of `parentJobId` by `userId` while they have the same
 * one (factor and upscaler) queued or running: a second press of Upscale or 🔍 would render and
 * charge the same video twice. Inside the transaction that queues the job: a transaction-scoped
 * advisory lock on (user, parent) makes two submissions take turns, and the second, reading after
 * the first has committed (read committed: each statement sees what was committed before it),
 * finds its job. `exceptJobId`: the job being retried.
 */
async function refuseDuplicateUpscale(tx: Transaction, userId: string, parentJobId: number, params: Pick<JobParams, 'upscaleFactor' | 'upscaler'>, exceptJobId?: number): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(${UPSCALE_LOCK_CLASS}::int, hashtext(${`${userId}:${parentJobId}`}))`);
  const factor = params.upscaleFactor ?? DEFAULT_UPSCALE_FACTOR;
  const [existing] = await tx
    .select({ id: jobs.id, status: jobs.status })
    .from(jobs)
    .where(
      and(
        eq(jobs.parentJobId, parentJobId),
        eq(jobs.userId, userId),
        eq(jobs.kind, 'upscale'),
        inArray(jobs.status, [...ACTIVE_STATUSES]),
        sql`coalesce((${jobs.params}->>'upscaleFactor')::int, ${DEFAULT_UPSCALE_FACTOR}::int) = ${factor}::int`,
        sql`(${jobs.params}->>'upscaler') is not distinct from ${params.upscaler ?? null}::text`,
        exceptJobId === undefined ? undefined : ne(jobs.id, exceptJobId),
      ),
    )
    .orderBy(asc(jobs.id))
    .limit(1);
  if (existing) throw new DuplicateUpscaleError(existing.id, parentJobId, existing.status as 'queued' | 'running', factor, params.upscaler);
}

/** The pictures stored with a job (its start/end pictures, inpainting picture and mask, variation start picture), by name. */
export async function getJobInputs(farm: FarmContext, jobId: number): Promise<Record<string, JobInput>> {
  if (!isJobId(jobId)) return {};
  const rows = await farm.db.db.select({ name: jobInputs.name, mime: jobInputs.mime, bytes: jobInputs.bytes }).from(jobInputs).where(eq(jobInputs.jobId, jobId)).orderBy(asc(jobInputs.name));
  return Object.fromEntries(rows.map((r) => [r.name, { bytes: new Uint8Array(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength), mime: r.mime }]));
}

export async function getJob(farm: FarmContext, jobId: number): Promise<Job | undefined> {
  if (!isJobId(jobId)) return undefined;
  const [row] = await farm.db.db.select().from(jobs).where(eq(jobs.id, jobId));
  return row ? jobFromRow(row) : undefined;
}

export interface ListJobsFilter {
  userId?: string;
  guildId?: string;
  statuses?: readonly JobStatus[];
  limit?: number;
  order?: 'oldest' | 'newest';
}

export async function listJobs(farm: FarmContext, filter: ListJobsFilter = {}): Promise<Job[]> {
  const conditions: SQL[] = [];
  if (filter.userId) conditions.push(eq(jobs.userId, filter.userId));
  if (filter.guildId) conditions.push(eq(jobs.guildId, filter.guildId));
  if (filter.statuses) conditions.push(inArray(jobs.status, [...filter.statuses]));
  const rows = await farm.db.db
    .select()
    .from(jobs)
    .where(and(...conditions))
    .orderBy(filter.order === 'newest' ? desc(jobs.id) : asc(jobs.id))
    .limit(filter.limit ?? 100);
  return rows.map(jobFromRow);
}

export interface CancelResult {
  /** false when the job had already finished (nothing changed). */
  cancelled: boolean;
  job: Job;
  refundedGpuSeconds: number;
}

/**
 * Cancels a queued or running job; the policy settles it (FarmPolicy.settle): queued, the whole
 * reservation is refunded; running, the wall-clock time of the current attempt until now, or until
 * its lease ran out if that was earlier (a dead worker), is charged (capped at the reservation) and
 * the rest refunded. The worker sees the cancel through its event
 * subscription or its next heartbeat and stops, and its result could not be stored anyway (the
 * lease token is cleared).
 */
export async function cancelJob(farm: FarmContext, jobId: number, reason = 'cancelled'): Promise<CancelResult> {
  if (!isJobId(jobId)) throw new JobNotFoundError(jobId);
  reason = storableText(reason);
  return farm.db.db.transaction(async (tx) => {
    const [current] = await tx.select().from(jobs).where(eq(jobs.id, jobId)).for('update');
    if (!current) throw new JobNotFoundError(jobId);
    if ((TERMINAL_STATUSES as readonly string[]).includes(current.status)) {
      return { cancelled: false, job: jobFromRow(current), refundedGpuSeconds: 0 };
    }
    let ranMs: number | null = null;
    if (current.status === 'running') {
      // Until now, or until its lease ran out when that was earlier (its worker died or lost the
      // database, and nobody has reaped it yet): time nobody rendered is not charged.
      const [ran] = await queryRows<{ ms: number }>(
        tx,
        sql`select greatest(0, extract(epoch from (least(now(), coalesce(lease_expires_at, now())) - started_at)) * 1000)::float8 as ms from jobs where id = ${jobId}`,
      );
      ranMs = ran.ms;
    }
    // The operator's error names who cancelled (a user id); what its owner and a public status page
    // read (userError) says only owner, moderator or operator.
    const userError = cancelledByText({ userId: current.userId, error: reason });
    await tx
      .update(jobs)
      .set({ status: 'cancelled', finishedAt: sql`now()`, leaseToken: null, leaseExpiresAt: null, error: reason, userError })
      .where(eq(jobs.id, jobId));
    const { returnedMs } = await policyOf(farm).settle(tx, current, { kind: 'cancelled', ranMs });
    const [row] = await tx.select().from(jobs).where(eq(jobs.id, jobId));
    await recordEvent(tx, 'cancelled', { jobId: row.id, userId: row.userId, status: 'cancelled', attempt: row.attempts, workerId: current.workerId, error: reason });
    return { cancelled: true, job: jobFromRow(row), refundedGpuSeconds: returnedMs / 1000 };
  });
}

/**
 * Puts a failed or cancelled job back in the queue with fresh attempts. Its stored parameters
 * pass submission's rules again (retriedParams: one stored before a rule existed is refused in
 * submission's words), and the policy admits and prices it again, under the same rules as a new
 * submission. Everything it reads — the job, its
 * parent and movie, the workers — it reads once, in its transaction, with the job row locked: the
 * job it checks is the job it queues (one failed while the retry was asked for is checked as
 * failed). The workers are not locked: one that leaves right after the commit is no different from
 * one that leaves later, and the queue's expiry (queueTimeoutSeconds) covers both.
 */
export async function retryJob(farm: FarmContext, jobId: number, context: Omit<BudgetContext, 'guildId'> = {}): Promise<Job> {
  if (!isJobId(jobId)) throw new JobNotFoundError(jobId);
  const policy = policyOf(farm);
  return farm.db.db.transaction(async (tx) => {
    const [current] = await tx.select().from(jobs).where(eq(jobs.id, jobId)).for('update');
    if (!current) throw new JobNotFoundError(jobId);
    if (current.status !== 'failed' && current.status !== 'cancelled') {
      const instead = current.status === 'done' ? 're-roll it for a new render' : 'wait for it to finish, or cancel it and then retry it';
      throw new InvalidJobStateError(`Job ${jobId} is ${current.status}; only failed or cancelled jobs can be retried: ${instead}.`);
    }
    // A follow-up is retried only while its parent can still have it (an upscale or extension: its video still stored).
    if (current.parentJobId !== null) await checkFollowUpParent(tx, current.kind, current.parentJobId, { lock: true });
    const { params, movie } = await retriedParams(tx, current);
    await refuseIfPicturesGone(farm, tx, current.id, current.kind, params);
    // As for a submission: a job no known worker can run (its model gone from every worker since)
    // would only wait and expire.
    await refuseIfNoWorkerCan(farm, current.kind, params, false, tx);
    if (current.kind === 'upscale' && current.parentJobId !== null) await refuseDuplicateUpscale(tx, current.userId, current.parentJobId, params, current.id);
    const request = { userId: current.userId, guildId: current.guildId, roleIds: context.roleIds, gpuSeconds: policy.price(params, movie.prompts.length), note: (id: number) => `retry of job ${id}` };
    const row = await policy.admit(tx, request, async (reservedMs) => {
      const [updated] = await tx
        .update(jobs)
        .set({
          status: 'queued',
          params: params as unknown as Record<string, unknown>,
          attempts: 0,
          maxAttempts: farm.config.maxAttempts,
          runAfter: sql`now()`,
          leaseToken: null,
          leaseExpiresAt: null,
          workerId: null,
          progress: null,
          error: null,
          userError: null,
          reservedMs,
          spentMs: null,
          chargedMs: null,
          startedAt: null,
          finishedAt: null,
          deliveredAt: null,
          deliveryClaimedBy: null,
          deliveryClaimExpiresAt: null,
        })
        .where(eq(jobs.id, jobId))
        .returning();
      return updated;
    });
    await recordEvent(tx, 'queued', { jobId: row.id, userId: row.userId, status: 'queued', attempt: 0 }, { retry: true });
    return jobFromRow(row);
  });
}

/**
 * Refuses the retry of a job whose own pictures (job_inputs) are no longer stored: retention
 * deletes those of a job that ended without a video unrenderedInputHours after it ended
 * (retention.ts). The worker would otherwise fail it only after it was queued and reserved.
 */
async function refuseIfPicturesGone(farm: FarmContext, tx: Transaction, jobId: number, kind: JobKind, params: JobParams): Promise<void> {
  const needed = inputNames(kind, params);
  if (needed.length === 0) return;
  const stored = new Set((await tx.select({ name: jobInputs.name }).from(jobInputs).where(eq(jobInputs.jobId, jobId))).map((r) => r.name));
  if (needed.every((name) => stored.has(name))) return;
  const hours = farm.config.retention.unrenderedInputHours;
  throw new InvalidJobStateError(
    `The pictures of job ${jobId} are no longer stored (those of a job that ended without a video are deleted ${hours > 0 ? `${hours} hours after it ended` : 'after a while'}), so it can't be retried; run the command again with the pictures.`,
  );
}

/**
 * A retried job's parameters and whole movie, under the rules a submission passes now, in
 * submission's words: its stored parameters checked again by parseJobParams (recheckStoredParams:
 * a row stored before a rule existed is refused with the JobParamsError a submission would get;
 * one that passed comes back unchanged), and an extension by extensionRules, from the movie it
 * continues (an extension stored before submitJob recorded movieHasPictures learns it here).
 */
async function retriedParams(q: Queryable, job: typeof jobs.$inferSelect): Promise<{ params: JobParams; movie: Movie }> {
  let params = recheckStoredParams(job.kind, job.params);
  const movie = await movieOf(q, { ...job, params });
  if (job.kind === 'extend') params = extensionRules(params, { prompts: movie.prompts.slice(0, movie.prompts.length - params.prompts.length), images: movie.images });
  return { params, movie };
}

/**
 * Records that a finished job's result was posted. Returns true exactly once per job, however
 * many bot processes race to deliver it; callers that get false must not post again. `status`:
 * the status that was posted; false, changing nothing, when the job has another one now (a job
 * failed when its lease ran out whose spooled render was stored meanwhile is done now: its video
 * is still to be delivered). `undeliverable`: the front end gave up posting it, and why (for
 * operators); the job leaves listUndelivered all the same, but its event is `undeliverable`, with
 * the reason in its stored data, instead of `delivered`, so the results nobody got can be found.
 */
export async function markDelivered(farm: FarmContext, jobId: number, opts: { status?: JobStatus; undeliverable?: string } = {}): Promise<boolean> {
  if (!isJobId(jobId)) return false;
  return farm.db.db.transaction(async (tx) => {
    const [row] = await tx
      .update(jobs)
      .set({ deliveredAt: sql`now()`, deliveryClaimExpiresAt: null })
      .where(and(eq(jobs.id, jobId), isNull(jobs.deliveredAt), inArray(jobs.status, [...TERMINAL_STATUSES]), opts.status === undefined ? undefined : eq(jobs.status, opts.status)))
      .returning({ id: jobs.id, userId: jobs.userId, status: jobs.status, attempts: jobs.attempts });
    if (!row) return false;
    const fields = { jobId: row.id, userId: row.userId, status: row.status, attempt: row.attempts };
    if (opts.undeliverable === undefined) await recordEvent(tx, 'delivered', fields);
    else await recordEvent(tx, 'undeliverable', fields, { reason: storableText(opts.undeliverable) });
    return true;
  });
}

/**
 * Reserves the right to deliver a finished job for `ttlSeconds` (so two bot shards do not both
 * upload it); follow with markDelivered after posting. A crashed claimant's claim expires.
 */
export async function claimDelivery(farm: FarmContext, jobId: number, claimant: string, ttlSeconds = 120): Promise<boolean> {
  if (!isJobId(jobId)) return false;
  const rows = await farm.db.db
    .update(jobs)
    .set({ deliveryClaimedBy: claimant, deliveryClaimExpiresAt: sql`now() + make_interval(secs => ${ttlSeconds})` })
    .where(
      and(
        eq(jobs.id, jobId),
        isNull(jobs.deliveredAt),
        inArray(jobs.status, [...TERMINAL_STATUSES]),
        sql`(${jobs.deliveryClaimExpiresAt} is null or ${jobs.deliveryClaimExpiresAt} < now() or ${jobs.deliveryClaimedBy} = ${claimant})`,
      ),
    )
    .returning({ id: jobs.id });
  return rows.length === 1;
}

/**
 * Gives up a delivery claim this claimant holds on a job not yet delivered (a bot stopping in the
 * middle of a delivery), so another process may deliver it at once instead of when the claim runs
 * out. Returns whether a claim was released.
 */
export async function releaseDelivery(farm: FarmContext, jobId: number, claimant: string): Promise<boolean> {
  if (!isJobId(jobId)) return false;
  const rows = await farm.db.db
    .update(jobs)
    .set({ deliveryClaimedBy: null, deliveryClaimExpiresAt: null })
    .where(and(eq(jobs.id, jobId), isNull(jobs.deliveredAt), eq(jobs.deliveryClaimedBy, claimant)))
    .returning({ id: jobs.id });
  return rows.length === 1;
}

/** Finished jobs whose result nobody has posted yet, oldest first (a restarted bot catches up). */
export async function listUndelivered(farm: FarmContext, limit = 50): Promise<Job[]> {
  const rows = await farm.db.db
    .select()
    .from(jobs)
    .where(and(isNull(jobs.deliveredAt), inArray(jobs.status, [...TERMINAL_STATUSES])))
    .orderBy(asc(jobs.finishedAt))
    .limit(limit);
  return rows.map(jobFromRow);
}

export interface JobMessageFields {
  channelId?: string | null;
  messageId?: string | null;
  interactionToken?: string | null;
  interactionExpiresAt?: Date | null;
}

/**
 * Remembers where the job's Discord message lives (set once the bot has posted it). With
 * `onlyIfUnset`, only while the job has no message recorded (a reply racing the delivery that
 * posted the result as a message of its own and recorded that): returns whether it was recorded.
 */
export async function setJobMessage(farm: FarmContext, jobId: number, fields: JobMessageFields, opts: { onlyIfUnset?: boolean } = {}): Promise<boolean> {
  checkRequestIds({ channelId: fields.channelId, messageId: fields.messageId });
  if (!isJobId(jobId)) throw new JobNotFoundError(jobId);
  const where = opts.onlyIfUnset ? and(eq(jobs.id, jobId), isNull(jobs.messageId)) : eq(jobs.id, jobId);
  const rows = await farm.db.db.update(jobs).set(fields).where(where).returning({ id: jobs.id });
  if (rows.length === 1) return true;
  if (opts.onlyIfUnset && (await farm.db.db.select({ id: jobs.id }).from(jobs).where(eq(jobs.id, jobId))).length === 1) return false;
  throw new JobNotFoundError(jobId);
}

/** The finished video of a job (from the database or the artifact directory). */
export async function getArtifact(farm: FarmContext, jobId: number): Promise<Artifact | undefined> {
  if (!isJobId(jobId)) return undefined;
  const [row] = await farm.db.db.select().from(artifacts).where(eq(artifacts.jobId, jobId));
  if (!row) return undefined;
  // Paths are stored relative to the artifact directory, which may be mounted elsewhere on
  // the machine that reads them.
  let bytes = row.data;
  if (!bytes && row.path) {
    const file = path.resolve(farm.config.artifactDir ?? '.', row.path);
    try {
      bytes = await fs.readFile(file);
    } catch (error) {
      throw new Error(
        `The video of job ${jobId} should be at ${file} but cannot be read (${(error as NodeJS.ErrnoException).code}); ` +
          'set BLENDFARM_ARTIFACT_DIR to the directory the workers write to.',
        { cause: error },
      );
    }
  }
  if (!bytes) return undefined;
  return { jobId, format: row.format, mime: row.mime, sizeBytes: row.sizeBytes, meta: row.meta, bytes };
}
