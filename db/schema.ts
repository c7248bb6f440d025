// The farm's durable state. Every entry point (bot, CLI, workers on other machines) shares
// these tables; migrations are generated from this file with `npm run db:generate`.
//
// Units: GPU time is stored as integer milli-GPU-seconds (`*_ms` columns) so that a balance is
// always exactly the sum of its ledger entries (no floating-point drift). The TypeScript API
// outside db/ speaks GPU-seconds.
import { sql } from 'drizzle-orm';
import {
  type AnyPgColumn,
  bigint,
  check,
  customType,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

export const JOB_KINDS = ['blend', 'movie', 'upscale', 'reroll', 'extend', 'vary'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

export const JOB_STATUSES = ['queued', 'running', 'done', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export const LEDGER_KINDS = ['grant', 'refill', 'reserve', 'settle', 'refund'] as const;
export type LedgerKind = (typeof LEDGER_KINDS)[number];

/** Per-role override of a guild's limits (values in whole GPU-seconds / counts). */
export interface RoleOverride {
  refillGpuSeconds?: number;
  maxActiveJobs?: number;
}

/** A refill clock: the latest refill to at least `allowanceMs` was `beforeMs` before users.last_refill_at. */
export interface RefillLevel {
  allowanceMs: number;
  beforeMs: number;
}

/** node-postgres hands back Buffer, PGlite Uint8Array; callers always get a Buffer. */
const bytea = customType<{ data: Buffer; driverData: Buffer | Uint8Array }>({
  dataType: () => 'bytea',
  toDriver: (value) => value,
  fromDriver: (value) => (Buffer.isBuffer(value) ? value : Buffer.from(value)),
});

const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow();

export const users = pgTable(
  'users',
  {
    id: text('id').primaryKey(),
    /** Cached balance; always equals sum(budget_ledger.amount_ms) for the user (same transaction). */
    balanceMs: bigint('balance_ms', { mode: 'number' }).notNull().default(0),
    lastRefillAt: timestamp('last_refill_at', { withTimezone: true }),
    /**
     * One refill clock per allowance (farm/policy/budget.ts): for each allowance refilled to, how
     * long before last_refill_at the latest refill to at least it was. null: one refill, at
     * last_refill_at, counting for every allowance (rows from before this column).
     */
    refillLevels: jsonb('refill_levels').$type<RefillLevel[]>(),
    /** Exponentially decayed GPU usage used to order claims fairly (see farm/README.md). */
    usageMs: doublePrecision('usage_ms').notNull().default(0),
    usageAt: timestamp('usage_at', { withTimezone: true }),
    createdAt: createdAt(),
  },
  (t) => [check('users_balance_non_negative', sql`${t.balanceMs} >= 0`)],
);

export const guilds = pgTable('guilds', {
  id: text('id').primaryKey(),
  /** null: use the farm-wide default from FarmConfig. */
  refillGpuSeconds: integer('refill_gpu_seconds'),
  refillPeriodSeconds: integer('refill_period_seconds'),
  maxActiveJobs: integer('max_active_jobs'),
  roleOverrides: jsonb('role_overrides').$type<Record<string, RoleOverride>>().notNull().default({}),
  /** Front-end defaults (bot's /settings: default size, quality, ...); the farm does not read them. */
  settings: jsonb('settings').$type<Record<string, unknown>>().notNull().default({}),
  createdAt: createdAt(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

export const jobs = pgTable(
  'jobs',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    kind: text('kind').$type<JobKind>().notNull(),
    userId: text('user_id')
      .notNull()
      .references(() => users.id),
    guildId: text('guild_id'),
    channelId: text('channel_id'),
    messageId: text('message_id'),
    interactionToken: text('interaction_token'),
    interactionExpiresAt: timestamp('interaction_expires_at', { withTimezone: true }),
    params: jsonb('params').$type<Record<string, unknown>>().notNull(),
    /** Denormalised from params so the claim query can match worker capabilities with an index-friendly filter. */
    model: text('model').notNull(),
    pixels: integer('pixels').notNull(),
    status: text('status').$type<JobStatus>().notNull().default('queued'),
    attempts: integer('attempts').notNull().default(0),
    maxAttempts: integer('max_attempts').notNull().default(3),
    /** Not claimable before this time (retry back-off). */
    runAfter: timestamp('run_after', { withTimezone: true }).notNull().defaultNow(),
    /** New random token per claim: completion and heartbeats must present it. */
    leaseToken: uuid('lease_token'),
    leaseExpiresAt: timestamp('lease_expires_at', { withTimezone: true }),
    workerId: text('worker_id'),
    progress: jsonb('progress').$type<Record<string, unknown>>(),
    /** Why the job (or its last attempt) failed, in full: for operators (farm status, events, logs). */
    error: text('error'),
    /**
     * The failure as the job's owner is told it (the bot, a public status page), when it is theirs
     * to act on: a setting the render could not do, its time limit, a picture gone. Null when the
     * failure is not about their request (a crash, a model or driver fault): they get a generic
     * line, and `error` stays for the operator.
     */
    userError: text('user_error'),
    /**
     * The job this one continues from (re-roll, upscale, extend). `no action`, on purpose: a job
     * another job points to cannot be deleted while that child exists (an extension's movie and an
     * upscale's video are read along this link), so retention deletes a chain child first (or
     * together, in one statement); neither cascade (it would delete kept children) nor set null
     * (it would cut a kept extension off from the start of its movie).
     */
    parentJobId: bigint('parent_job_id', { mode: 'number' }).references((): AnyPgColumn => jobs.id, { onDelete: 'no action' }),
    reservedMs: bigint('reserved_ms', { mode: 'number' }).notNull().default(0),
    /** Measured GPU time of the successful attempt. */
    spentMs: bigint('spent_ms', { mode: 'number' }),
    /** What the user was finally charged (<= reserved). */
    chargedMs: bigint('charged_ms', { mode: 'number' }),
    createdAt: createdAt(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
    deliveredAt: timestamp('delivered_at', { withTimezone: true }),
    deliveryClaimedBy: text('delivery_claimed_by'),
    deliveryClaimExpiresAt: timestamp('delivery_claim_expires_at', { withTimezone: true }),
  },
  (t) => [
    check('jobs_kind_valid', sql`${t.kind} in ('blend', 'movie', 'upscale', 'reroll', 'extend', 'vary')`),
    check('jobs_status_valid', sql`${t.status} in ('queued', 'running', 'done', 'failed', 'cancelled')`),
    check('jobs_reserved_non_negative', sql`${t.reservedMs} >= 0`),
    index('jobs_queued_idx').on(t.id).where(sql`${t.status} = 'queued'`),
    index('jobs_running_lease_idx').on(t.leaseExpiresAt).where(sql`${t.status} = 'running'`),
    index('jobs_user_status_idx').on(t.userId, t.status),
    index('jobs_parent_idx').on(t.parentJobId),
    // The status page's last hour, failures and recent jobs, and retention, read by these.
    index('jobs_finished_at_idx').on(t.finishedAt),
    index('jobs_started_at_idx').on(t.startedAt),
    index('jobs_undelivered_idx')
      .on(t.finishedAt)
      .where(sql`${t.deliveredAt} is null and ${t.status} in ('done', 'failed', 'cancelled')`),
  ],
);

export const budgetLedger = pgTable(
  'budget_ledger',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    userId: text('user_id')
      .notNull()
      .references(() => users.id),
    /**
     * Cleared when the job is deleted (retention): the entry stays, so every balance still equals
     * the sum of its ledger; the note still names the job.
     */
    jobId: bigint('job_id', { mode: 'number' }).references(() => jobs.id, { onDelete: 'set null' }),
    kind: text('kind').$type<LedgerKind>().notNull(),
    /** Signed effect on the balance. */
    amountMs: bigint('amount_ms', { mode: 'number' }).notNull(),
    balanceAfterMs: bigint('balance_after_ms', { mode: 'number' }).notNull(),
    note: text('note'),
    createdAt: createdAt(),
  },
  (t) => [
    check('budget_ledger_kind_valid', sql`${t.kind} in ('grant', 'refill', 'reserve', 'settle', 'refund')`),
    index('budget_ledger_user_idx').on(t.userId, t.id),
    index('budget_ledger_job_idx').on(t.jobId),
  ],
);

export const jobEvents = pgTable(
  'job_events',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    jobId: bigint('job_id', { mode: 'number' })
      .notNull()
      .references(() => jobs.id, { onDelete: 'cascade' }),
    type: text('type').notNull(),
    data: jsonb('data').$type<Record<string, unknown>>().notNull().default({}),
    createdAt: createdAt(),
  },
  (t) => [index('job_events_job_idx').on(t.jobId, t.id)],
);

export const workers = pgTable('workers', {
  id: text('id').primaryKey(),
  host: text('host').notNull(),
  pid: integer('pid').notNull(),
  /**
   * The process holding the id (a random uuid per start): only it heartbeats the row or marks it
   * stopped, so a second process started with the same BLENDFARM_WORKER_ID is noticed instead of
   * silently sharing the row (farm/worker-registry.ts). Null: registered before the column existed.
   */
  instance: uuid('instance'),
  /**
   * The holder's pid namespace on its host (Linux: /proc/self/ns/pid), so `pid` is checked on this
   * machine only where it means the same process (containers sharing a host name have their own).
   * Null: unknown (not Linux, or registered before the column existed).
   */
  pidNamespace: text('pid_namespace'),
  /** WorkerCapabilities (models, maxPixels, executionProvider, ...). */
  capabilities: jsonb('capabilities').$type<Record<string, unknown>>().notNull(),
  concurrency: integer('concurrency').notNull(),
  /**
   * The worker's own lease (BLENDFARM_LEASE_SECONDS on its machine): it counts as online while it
   * heartbeated within this many seconds, whatever the reader's setting (farm/worker-registry.ts
   * workerOnline). Null: registered before the column existed (the reader's lease is used).
   */
  leaseSeconds: doublePrecision('lease_seconds'),
  startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
  heartbeatAt: timestamp('heartbeat_at', { withTimezone: true }).notNull().defaultNow(),
  stoppedAt: timestamp('stopped_at', { withTimezone: true }),
});

export const artifacts = pgTable(
  'artifacts',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    jobId: bigint('job_id', { mode: 'number' })
      .notNull()
      .references(() => jobs.id, { onDelete: 'cascade' }),
    format: text('format').notNull(),
    mime: text('mime').notNull(),
    sizeBytes: integer('size_bytes').notNull(),
    /** Either the bytes themselves or a path inside the configured artifact directory. */
    data: bytea('data'),
    path: text('path'),
    meta: jsonb('meta').$type<Record<string, unknown>>().notNull().default({}),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex('artifacts_job_idx').on(t.jobId),
    check('artifacts_has_content', sql`${t.data} is not null or ${t.path} is not null`),
  ],
);

/**
 * Pictures a job was submitted with (a blend's start/end picture, an inpainting picture and mask, a
 * variation's start picture), stored with the job so re-rolls (which copy them) and restarts still
 * have them. Job parameters name them (`name`); the bytes are the file as uploaded.
 */
export const jobInputs = pgTable(
  'job_inputs',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    jobId: bigint('job_id', { mode: 'number' })
      .notNull()
      .references(() => jobs.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    mime: text('mime').notNull(),
    bytes: bytea('bytes').notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('job_inputs_job_name_idx').on(t.jobId, t.name)],
);

/**
 * The latest re-roll or extension each member asked of each job (farm/follow-up.ts): one row per
 * member, job and kind, so a second request within SAME_FOLLOW_UP_WINDOW_SECONDS
 * (farm/follow-up-rule.ts) — a double press, or the same press reaching two bot processes — finds
 * the first (its key is taken atomically) and is answered with its job instead of making another.
 * `job_id`: the job the request made; null while it is being submitted.
 */
export const followUpRequests = pgTable(
  'follow_up_requests',
  {
    userId: text('user_id').notNull(),
    parentJobId: bigint('parent_job_id', { mode: 'number' })
      .notNull()
      .references(() => jobs.id, { onDelete: 'cascade' }),
    kind: text('kind').$type<JobKind>().notNull(),
    /** Which request holds the row (a new one within the window leaves it alone). */
    token: uuid('token').notNull(),
    requestedAt: timestamp('requested_at', { withTimezone: true }).notNull().defaultNow(),
    jobId: bigint('job_id', { mode: 'number' }).references(() => jobs.id, { onDelete: 'cascade' }),
  },
  (t) => [primaryKey({ columns: [t.userId, t.parentJobId, t.kind] }), index('follow_up_requests_job_idx').on(t.jobId)],
);

export const schema = { users, guilds, jobs, budgetLedger, jobEvents, workers, artifacts, jobInputs, followUpRequests };
