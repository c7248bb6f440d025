/**
 * Keeps each job's Discord message in step with the job: queued -> progress (at most one edit every
 * few seconds per job, for rate limits) -> the finished video with buttons, or the failure.
 *
 * Driven by the farm's job events (LISTEN/NOTIFY). Delivery goes through the interaction webhook
 * while its token lives (15 minutes), then through the bot's own channel-message edit, and if the
 * message is gone (or was never recorded), a new message that mentions the user (bot/job-message.ts). Each finished job
 * is claimed and marked delivered in the database, so it is posted once even with several bot
 * processes: the claim lasts DELIVERY_CLAIM_SECONDS and is renewed while a delivery takes longer
 * (re-encoding a large video can take minutes), and checked again right before each post, so a
 * delivery whose claim another process has taken over since posts nothing.
 *
 * Events are hints (a reconnecting LISTEN connection misses some), so a sweep every
 * DELIVERY_SWEEP_INTERVAL_MS (and one at start) re-reads the finished jobs nobody has posted and
 * delivers those not already under way: what finished while no bot was listening, notifications
 * lost, and failed deliveries, each retried after a wait that doubles from retryDelayMs up to
 * DELIVERY_MAX_RETRY_DELAY_MS (kept in memory), so a Discord outage is ridden out. A job is given
 * up (marked undeliverable with the reason, logged, its owner told by DM) when Discord says the place cannot be posted
 * to whatever we do (UNDELIVERABLE_CODES in bot/job-message.ts: channel or server gone, no access, missing permissions,
 * a thread locked by a moderator) or its video is no longer stored, or once its delivery has failed
 * for DELIVERY_GIVE_UP_AFTER_MS (a video stored as a file this process cannot read is retried too,
 * logged with the file, and given up as storage's fault, not Discord's). A thread archived since (Discord refuses edits there) is unarchived
 * for the result when it is not locked and the bot may (reopenThread), as a new message would.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { DiscordAPIError, GuildPremiumTier, RESTJSONErrorCodes, Routes, type Client } from 'discord.js';
import {
  claimDelivery,
  getArtifact,
  getJob,
  listUndelivered,
  loggableError,
  markDelivered,
  onJobEvent,
  queuePosition,
  releaseDelivery,
  TERMINAL_STATUSES,
  type Artifact,
  type FarmContext,
  type Job,
  type JobEvent,
} from '../farm/index.ts';
import { cancelRow, finishedRow } from './components/rows.ts';
import { doneText, escapeMarkdown, failedText, fileSize, fitMessage, progressText, queuedText, title, withWholeMovie } from './format.ts';
import { interactionReceipts, type InteractionReceipts } from './interaction-receipts.ts';
import { editJobMessage, isArchivedThread, Undeliverable, type JobMessageContext, type MessagePayload, type UndeliverableReason } from './job-message.ts';
import { shrinkVideo, type ShrinkOptions } from './shrink.ts';
import { within } from './within.ts';

/** Discord's upload limit for a server without boosts; used when a job carries no limit of its own. */
export const DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024;

/**
 * Discord's per-file upload limit by a server's Boost level (Guild.premiumTier): level 1 keeps the
 * default, level 2 has 50 MiB, level 3 100 MiB. For where Discord does not say the limit (a
 * reaction carries none; an interaction's attachmentSizeLimit does).
 */
export const UPLOAD_LIMIT_BY_PREMIUM_TIER: Readonly<Record<GuildPremiumTier, number>> = {
  [GuildPremiumTier.None]: DEFAULT_UPLOAD_LIMIT,
  [GuildPremiumTier.Tier1]: DEFAULT_UPLOAD_LIMIT,
  [GuildPremiumTier.Tier2]: 50 * 1024 * 1024,
  [GuildPremiumTier.Tier3]: 100 * 1024 * 1024,
};
const TERMINAL = new Set<string>(TERMINAL_STATUSES);

/** How often the finished jobs nobody has posted are read again (MessengerOptions.sweepIntervalMs). */
export const DELIVERY_SWEEP_INTERVAL_MS = 30_000;
/** The first wait before a failed delivery is tried again; it doubles with each failure (retryDelayMs). */
export const DELIVERY_RETRY_DELAY_MS = 30_000;
/** The longest wait between two tries of one delivery (maxRetryDelayMs). */
export const DELIVERY_MAX_RETRY_DELAY_MS = 15 * 60_000;
/** A delivery failing this long (since its first failure in this process) is given up (giveUpAfterMs). */
export const DELIVERY_GIVE_UP_AFTER_MS = 24 * 60 * 60_000;
/**
 * How long a delivery claim keeps other bot processes (shards) off a job. Renewed every third of it
 * while the delivery lasts, and checked before each post (MessengerOptions.claimSeconds).
 */
export const DELIVERY_CLAIM_SECONDS = 120;
/**
 * How long after its submission a job asked for on Discord waits for its reply (the "queued"
 * message, which becomes its message once shown and recorded) before its result is posted anyway
 * (MessengerOptions.replyGraceMs): a command's or a button's (the interaction's reply) and a 🔍/🔁
 * reaction's (a reply to the video). Without the wait a quick render was posted and then
 * overwritten by the late "queued" text (a command's), or posted twice, as a new message and into
 * the reply recorded just after (a reaction's). The process showing the reply says when it is
 * settled (JobMessenger.replySettled), so a failed reply does not wait this long there. Measured
 * on the database's clock (the job's createdAt is its now()), not this machine's (DatabaseClock).
 */
export const DELIVERY_REPLY_GRACE_MS = 15_000;
/**
 * How long stop() waits for the deliveries under way to end (a shrink is stopped at once; a post
 * already sent to Discord is waited for), so those it aborted release their claims and the next
 * bot delivers them at once. One that takes longer keeps its claim until it runs out.
 */
export const DELIVERY_STOP_WAIT_MS = 5_000;
/** Undelivered jobs a sweep reads beyond those waiting for a retry here, so these never crowd out newer ones. */
const SWEEP_BATCH = 50;
const SWEEP_MAX_ROWS = 1000;

export interface MessengerOptions {
  /** Minimum time between two progress edits of one message. */
  editIntervalMs?: number;
  /** Name of this bot process in delivery claims (default defaultClaimant(): bot-HOSTNAME-PID-RANDOM). */
  claimant?: string;
  /** How long a delivery claim lasts before it is renewed (default DELIVERY_CLAIM_SECONDS). */
  claimSeconds?: number;
  log?: (message: string) => void;
  /** Wait before a failed delivery is tried again, doubling with each failure (default DELIVERY_RETRY_DELAY_MS). */
  retryDelayMs?: number;
  /** The longest wait between two tries (default DELIVERY_MAX_RETRY_DELAY_MS). */
  maxRetryDelayMs?: number;
  /** How often undelivered jobs are read again (default DELIVERY_SWEEP_INTERVAL_MS). */
  sweepIntervalMs?: number;
  /** How long a delivery may keep failing before it is given up and its owner told (default DELIVERY_GIVE_UP_AFTER_MS). */
  giveUpAfterMs?: number;
  /** How long a job asked for on Discord waits for its reply to be recorded before its result is posted anyway (default DELIVERY_REPLY_GRACE_MS, on the database's clock: DatabaseClock). */
  replyGraceMs?: number;
  /**
   * This process's monotonic clock in milliseconds (default performance.now): what DatabaseClock carries the database's time forward on,
   * and what local waits are measured on (retry back-off, giving up, progress edit spacing, a settled reply), so a step of the wall clock
   * (NTP) neither freezes nor hurries them. Tests bring their own.
   */
  monotonicNow?: () => number;
  /** Bounds on re-encoding a video too large for its channel in this process (SHRINK_* in bot/shrink.ts). */
  shrink?: ShrinkOptions;
  /** When this process received interactions, so a job's token's age is measured from its receipt (default interactionReceipts, which the messenger fills from its client). */
  receipts?: InteractionReceipts;
}

/**
 * This bot process's name in delivery claims: bot-HOSTNAME-PID-RANDOM. Host name and pid alone are
 * not unique: two containers sharing the host's network (one host name) both run node as pid 1,
 * and would share a claim (both claim a job and both post it). The random part (as the farm's
 * defaultWorkerId) is new for each JobMessenger.
 */
export function defaultClaimant(): string {
  return `bot-${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * How fast this process's monotonic clock may run ahead of the database's, as a fraction (1 ms a
 * second): DatabaseClock lets what it has seen age by this much, so it stays behind the database's
 * real time even on a machine whose clock drifts.
 */
const DATABASE_CLOCK_DRIFT = 0.001;

/**
 * The database's clock as this process can know it without asking: the latest database time it
 * has seen (a job event's time, a job's creation or finish), carried forward on this process's
 * monotonic clock. Every time seen was in the database's past when it was read, so this is never
 * ahead of the database's real time, whatever this machine's own clock says (a bot 15 s fast once
 * thought a job submitted a moment ago was past DELIVERY_REPLY_GRACE_MS, and a slow one waited too
 * long). A job's age measured on it (now() - its createdAt, both the database's) is at most its real
 * age, and at least the time since this process first read the job (less DATABASE_CLOCK_DRIFT).
 */
class DatabaseClock {
  /** Database time minus monotonic time, from the best (latest) time seen; undefined until one is. */
  private offset: number | undefined;
  private seenAt = 0;

  constructor(private readonly monotonicNow: () => number) {}

  /** A time the database wrote (now() of some past transaction). */
  saw(...times: Array<Date | string | null | undefined>): void {
    for (const time of times) {
      const ms = time instanceof Date ? time.getTime() : typeof time === 'string' ? Date.parse(time) : NaN;
      if (!Number.isFinite(ms)) continue;
      const at = this.monotonicNow();
      const offset = ms - at;
      if (this.offset === undefined || offset > this.currentOffset(at)) {
        this.offset = offset;
        this.seenAt = at;
      }
    }
  }

  /** The database's time now, at most: undefined until a time has been seen. */
  now(): number | undefined {
    const at = this.monotonicNow();
    return this.offset === undefined ? undefined : at + this.currentOffset(at);
  }

  private currentOffset(at: number): number {
    return this.offset! - Math.max(0, at - this.seenAt) * DATABASE_CLOCK_DRIFT;
  }
}

/**
 * A finished job's video is stored as a file (BLENDFARM_ARTIFACT_DIR) this process cannot read:
 * the folder is not on this machine, or the setting differs from the workers'. Not Discord's fault:
 * the operator is told the file and its error, the owner only that storage failed.
 */
class VideoUnreadable extends Error {
  constructor(
    readonly jobId: number,
    readonly file: string,
    readonly code: string,
    cause: unknown,
  ) {
    super(`the video of job ${jobId} cannot be read from storage: ${file} (${code})`, { cause });
  }

  /** getArtifact's failure to read the file (the file system's error is its cause), or undefined for any other. */
  static from(jobId: number, error: unknown): VideoUnreadable | undefined {
    const cause = error instanceof Error ? (error.cause as NodeJS.ErrnoException | undefined) : undefined;
    return cause && typeof cause.path === 'string' && typeof cause.code === 'string' ? new VideoUnreadable(jobId, cause.path, cause.code, error) : undefined;
  }
}

/** What the owner is told when a delivery is given up because its video could not be read (VideoUnreadable). */
const VIDEO_UNREADABLE_REASON: UndeliverableReason = {
  why: "its video could not be read from the farm's storage",
  advice: "That is a fault on the bot's side, not in your request: tell the bot's operators, or run the command again to render it anew.",
};

/** A failed delivery waiting for its next try; times on the messenger's monotonic clock (MessengerOptions.monotonicNow). */
interface RetryState {
  failures: number;
  firstFailedAt: number;
  nextAt: number;
}

/**
 * Everything this process holds for one job, in one record (JobMessenger.jobs). A record exists
 * only while one of its fields is set: every change goes through JobMessenger.hold, which drops the
 * record once the last field is cleared, so a job nobody is editing, delivering or retrying here
 * costs nothing. Each field says who sets it and what clears it.
 */
interface JobState {
  /**
   * When this process last edited the job's progress: the next edit waits editIntervalMs after it.
   * Set by editProgress; cleared when a delivery finds the job finished, or by a delivered or
   * undeliverable event (whoever delivered it).
   */
  lastEditAt?: number;
  /** The progress edit due (scheduleEdit): cleared when it fires, by the job's delivery, or by stop(). */
  editTimer?: NodeJS.Timeout;
  /** The progress edit under way: its delivery waits for it, so the result is the message's last edit. Cleared when it ends. */
  progressEdit?: Promise<void>;
  /**
   * The job's message is in a thread archived since: no more progress edits (each would be refused);
   * the result reopens it. Cleared with lastEditAt.
   */
  inArchivedThread?: true;
  /** The delivery under way (deliver): one at a time per job, and stop() waits for it. Cleared when it ends. */
  delivery?: Promise<boolean>;
  /** The renewal of the delivery's claim while it lasts: cleared when the delivery ends, or by stop(). */
  claimRenewal?: NodeJS.Timeout;
  /**
   * A failed delivery waiting for its next try (failed). Cleared once the job is delivered or given
   * up (here or, as the sweep finds, elsewhere) or another process has taken it over.
   */
  retry?: RetryState;
  /**
   * When this process showed and recorded the job's reply, or failed to (replySettled): no need to
   * wait for it. Cleared once the job is delivered, or by the sweep past replyGraceMs.
   */
  replySettledAt?: number;
}

/** What JobMessenger.heldFor names: the parts of a job's state held in this process. */
export type JobStatePart = keyof JobState;

export class JobMessenger {
  /** Each job's state in this process, by job id: see JobState for what each part is and what ends it. Changed only through hold(). */
  private readonly jobs = new Map<number, JobState>();
  /** Aborted by stop(): a shrink under way ends, and what it was for is left to the next bot. */
  private readonly stopping = new AbortController();
  private unlisten?: () => Promise<void>;
  private sweepTimer?: NodeJS.Timeout;
  private sweeping = false;
  private readonly editIntervalMs: number;
  private readonly claimant: string;
  private readonly claimSeconds: number;
  private readonly log: (m: string) => void;
  private readonly retryDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly sweepIntervalMs: number;
  private readonly giveUpAfterMs: number;
  private readonly replyGraceMs: number;
  /** The database's time as seen here, for the reply's grace (awaitingReply). */
  private readonly dbClock: DatabaseClock;
  /** Stops recording the client's interaction receipts (stop). */
  private readonly untrackReceipts: (() => void) | undefined;
  /** MessengerOptions.monotonicNow: local waits are measured on it, never on Date.now(). */
  private readonly monotonicNow: () => number;
  private readonly shrinkOptions: ShrinkOptions;
  /** What posting to a job's message needs (bot/job-message.ts). */
  private readonly discord: JobMessageContext;
  /** Shrinks run one at a time, so their memory (SHRINK_MAX_RAW_BYTES) is held once. */
  private shrinking: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly client: Client,
    private readonly farm: FarmContext,
    opts: MessengerOptions = {},
  ) {
    this.editIntervalMs = opts.editIntervalMs ?? 3000;
    this.claimant = opts.claimant ?? defaultClaimant();
    this.claimSeconds = opts.claimSeconds ?? DELIVERY_CLAIM_SECONDS;
    this.log = opts.log ?? ((m) => console.log(m));
    this.retryDelayMs = opts.retryDelayMs ?? DELIVERY_RETRY_DELAY_MS;
    this.maxRetryDelayMs = Math.max(this.retryDelayMs, opts.maxRetryDelayMs ?? DELIVERY_MAX_RETRY_DELAY_MS);
    this.sweepIntervalMs = opts.sweepIntervalMs ?? DELIVERY_SWEEP_INTERVAL_MS;
    this.giveUpAfterMs = opts.giveUpAfterMs ?? DELIVERY_GIVE_UP_AFTER_MS;
    this.replyGraceMs = opts.replyGraceMs ?? DELIVERY_REPLY_GRACE_MS;
    this.monotonicNow = opts.monotonicNow ?? (() => performance.now());
    this.dbClock = new DatabaseClock(this.monotonicNow);
    this.shrinkOptions = { ...opts.shrink, signal: this.stopping.signal };
    const receipts = opts.receipts ?? interactionReceipts;
    this.discord = { client, farm, log: this.log, receipts };
    // Each interaction's receipt, recorded as it arrives (before any handler of it runs); a stand-in client without events has none.
    this.untrackReceipts = typeof client.on === 'function' ? receipts.track(client) : undefined;
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  async start(): Promise<void> {
    const unlisten = await onJobEvent(this.farm.db, (e) => this.onEvent(e));
    this.unlisten = unlisten;
    if (this.stopped) return unlisten(); // stopped while this was listening: stop() had nothing to end yet
    // Catch up on results that finished while no bot was listening, then keep sweeping.
    await this.sweep();
    if (this.stopped) return; // stopped during that first sweep: no timer to leave behind
    this.sweepTimer = setInterval(() => void this.sweep(), this.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  /**
   * No more sweeps, edits or claim renewals; a shrink under way is stopped. A delivery under way
   * posts nothing more and is not given up: it releases its claim (waited for up to
   * DELIVERY_STOP_WAIT_MS), so the next bot delivers it at once.
   */
  async stop(): Promise<void> {
    this.stopping.abort();
    clearInterval(this.sweepTimer);
    for (const [jobId, state] of this.jobs) {
      clearTimeout(state.editTimer);
      clearInterval(state.claimRenewal);
      this.hold(jobId, { editTimer: undefined, claimRenewal: undefined });
    }
    await this.unlisten?.();
    this.untrackReceipts?.();
    const deliveries = [...this.jobs.values()].flatMap((state) => (state.delivery ? [state.delivery] : []));
    if (deliveries.length > 0) await within(Promise.allSettled(deliveries), DELIVERY_STOP_WAIT_MS, () => undefined);
    // Nothing more happens here: what this process knew of its jobs (retries, edit times) goes with it.
    this.jobs.clear();
  }

  /**
   * Changes the job's state: a field given undefined is cleared. The record is made by the first
   * field set and dropped with the last one cleared, here only.
   */
  private hold(jobId: number, change: Partial<JobState>): void {
    const state: JobState = this.jobs.get(jobId) ?? {};
    Object.assign(state, change);
    for (const part of Object.keys(state) as JobStatePart[]) if (state[part] === undefined) delete state[part];
    if (Object.keys(state).length > 0) this.jobs.set(jobId, state);
    else this.jobs.delete(jobId);
  }

  /** What this process holds for the job ([] when nothing): for diagnostics and tests. */
  heldFor(jobId: number): JobStatePart[] {
    return Object.keys(this.jobs.get(jobId) ?? {}) as JobStatePart[];
  }

  /** How many jobs this process holds any state for: for diagnostics and tests. */
  get heldJobCount(): number {
    return this.jobs.size;
  }

  /**
   * Reads the finished jobs nobody has posted (oldest first; as many more than those waiting for a
   * retry here as SWEEP_BATCH, so they cannot crowd newer ones out) and delivers each one that is
   * neither under way nor waiting for its retry.
   */
  async sweep(): Promise<void> {
    if (this.sweeping || this.stopped) return;
    this.sweeping = true;
    try {
      let held = 0;
      for (const state of this.jobs.values()) held += (state.retry ? 1 : 0) + (state.delivery ? 1 : 0);
      const limit = Math.min(SWEEP_MAX_ROWS, SWEEP_BATCH + held);
      const jobs = await listUndelivered(this.farm, limit);
      for (const job of jobs) this.dbClock.saw(job.finishedAt);
      const now = this.monotonicNow();
      // The whole list: retries of jobs not on it were delivered by another process.
      const listed = jobs.length < limit ? new Set(jobs.map((j) => j.id)) : undefined;
      for (const [id, state] of this.jobs) {
        // Past the wait a settled reply would have cut short, whoever delivered the job.
        if (state.replySettledAt !== undefined && now - state.replySettledAt > this.replyGraceMs) this.hold(id, { replySettledAt: undefined });
        if (state.retry && listed && !listed.has(id)) this.hold(id, { retry: undefined });
      }
      for (const job of jobs) {
        if (this.stopped) break;
        const state = this.jobs.get(job.id);
        if (state?.delivery || (state?.retry?.nextAt ?? 0) > now) continue;
        void this.deliver(job.id);
      }
    } catch (err) {
      this.log(`[bot] reading the undelivered jobs failed (tried again in ${Math.round(this.sweepIntervalMs / 1000)} s): ${loggableError(err)}`);
    } finally {
      this.sweeping = false;
    }
  }

  private onEvent(e: JobEvent): void {
    if (this.stopped) return;
    this.dbClock.saw(e.at);
    if (TERMINAL.has(e.type)) void this.deliver(e.jobId);
    // Delivered (here or by another process): its progress is over, so its edit times go.
    else if (e.type === 'delivered' || e.type === 'undeliverable') this.endProgressEdits(e.jobId);
    else this.scheduleEdit(e.jobId);
  }

  /** No more progress edits for the job: what they needed (last edit time, archived thread) is let go. */
  private endProgressEdits(jobId: number): void {
    this.hold(jobId, { lastEditAt: undefined, inArchivedThread: undefined });
  }

  private scheduleEdit(jobId: number): void {
    const state = this.jobs.get(jobId);
    if (state?.editTimer) return; // an edit is already due; it will read the latest state
    if (state?.inArchivedThread) return;
    const wait = Math.max(0, (state?.lastEditAt ?? -Infinity) + this.editIntervalMs - this.monotonicNow());
    const editTimer = setTimeout(() => {
      const progressEdit = this.editProgress(jobId)
        .catch((err) => {
          if (!isArchivedThread(err)) return this.log(`[bot] progress edit for job ${jobId} failed: ${loggableError(err)}`);
          // Said once, not for every progress event of a long render.
          if (!this.stopped) this.hold(jobId, { inArchivedThread: true });
          this.log(`[bot] job ${jobId}: its thread has been archived; no more progress edits (the result will reopen it)`);
        })
        .finally(() => this.hold(jobId, { progressEdit: undefined }));
      this.hold(jobId, { editTimer: undefined, progressEdit });
    }, wait);
    this.hold(jobId, { editTimer });
  }

  private async editProgress(jobId: number): Promise<void> {
    const stored = await getJob(this.farm, jobId);
    if (!stored || TERMINAL.has(stored.status) || !stored.messageId || this.stopped || !this.editsProgressOf(stored)) return;
    this.hold(jobId, { lastEditAt: this.monotonicNow() });
    const job = await withWholeMovie(this.farm, stored);
    // Its delivery has begun meanwhile (and waits for this edit): the result is the last word.
    if (this.jobs.get(jobId)?.delivery) return;
    let payload: MessagePayload;
    if (job.status === 'queued') {
      payload = { content: queuedText(job, await queuePosition(this.farm, job.id)), components: [cancelRow(job.id).toJSON()] };
    } else {
      payload = { content: progressText(job, job.progress), components: [cancelRow(job.id).toJSON()] };
      const preview = job.progress?.preview;
      if (preview) {
        const name = `preview.${preview.format === 'jpeg' ? 'jpg' : preview.format}`;
        payload.files = [{ name, data: Buffer.from(preview.base64, 'base64'), contentType: `image/${preview.format}` }];
        payload.embeds = [{ image: { url: `attachment://${name}` } }];
      }
    }
    // A progress edit leaves an archived thread as it is (the edit fails, scheduleEdit logs it once and
    // stops the job's progress edits); the result reopens it.
    await editJobMessage(this.discord, job, payload, { reopenThread: false });
  }

  /**
   * Whether this process edits the job's progress: every bot process (shard) hears every job event,
   * and each editing the same message would multiply its edits (and their rate limits), a late one
   * landing after another process posted the result. The process whose gateway shard serves the
   * job's server does it; for a job outside any server, the one with shard 0 (which gets DMs), or a
   * process that is not a ShardingManager child.
   */
  private editsProgressOf(job: Job): boolean {
    if (job.guildId) return this.client.guilds.cache.has(job.guildId);
    const shards = this.client.shard?.ids;
    return !shards || shards.includes(0);
  }

  /**
   * Posts a finished job's result (or its failure) exactly once. A failure waits for its retry
   * (the sweep tries it again) unless it can never succeed, or has failed for giveUpAfterMs: then
   * the job is given up.
   */
  async deliver(jobId: number): Promise<void> {
    if (this.jobs.get(jobId)?.delivery || this.stopped) return;
    const run = this.deliverNow(jobId).finally(() => this.hold(jobId, { delivery: undefined }));
    this.hold(jobId, { delivery: run });
    // The job ended otherwise while its post was under way (a failure whose spooled render was
    // stored meanwhile is done now): delivered again, as it is now.
    if (await run) await this.deliver(jobId);
  }

  /** Returns true when the job's status changed while it was being posted, so it must be delivered again. */
  private async deliverNow(jobId: number): Promise<boolean> {
    clearTimeout(this.jobs.get(jobId)?.editTimer);
    this.hold(jobId, { editTimer: undefined });
    // A progress edit already sent would otherwise land after the result and replace it.
    await this.jobs.get(jobId)?.progressEdit;
    let job: Job | undefined;
    let claimed = false;
    try {
      const stored = await getJob(this.farm, jobId);
      if (stored && TERMINAL.has(stored.status)) this.endProgressEdits(jobId);
      if (!stored || !TERMINAL.has(stored.status) || stored.deliveredAt) {
        this.hold(jobId, { retry: undefined, ...(stored?.deliveredAt ? { replySettledAt: undefined } : {}) });
        return false;
      }
      // Its reply still on its way: it is the job's message once recorded (replySettled or the
      // sweep after DELIVERY_REPLY_GRACE_MS deliver it then), and a result posted now would be
      // overwritten by it.
      if (this.awaitingReply(stored)) return false;
      if (!(await claimDelivery(this.farm, jobId, this.claimant, this.claimSeconds))) return false;
      claimed = true;
      this.renewClaimWhileDelivering(jobId);
      job = stored;
      if (stored.messageId || stored.channelId) {
        const whole = await withWholeMovie(this.farm, stored);
        job = whole;
        if (whole.status === 'done') {
          const artifact = await getArtifact(this.farm, jobId).catch((err: unknown) => {
            throw VideoUnreadable.from(jobId, err) ?? err;
          });
          if (!artifact) throw new Undeliverable({ why: 'its video is no longer stored', advice: 'Run the command again to render it anew.' });
          await this.postVideo(whole, artifact);
        } else {
          await this.post(whole, { content: failedText(whole), components: [] });
        }
      }
      const marked = await markDelivered(this.farm, jobId, { status: job.status });
      this.hold(jobId, { retry: undefined, replySettledAt: undefined });
      if (!marked && (await getJob(this.farm, jobId))?.status !== job.status) {
        await releaseDelivery(this.farm, jobId, this.claimant);
        return true;
      }
    } catch (err) {
      if (err instanceof ClaimLost) {
        // Another bot process took the job over (this claim had run out): it posts it, not this one.
        this.hold(jobId, { retry: undefined });
        this.log(`[bot] job ${jobId}: another bot process is delivering it now; nothing posted here`);
      } else if (this.stopped) {
        this.log(`[bot] delivering job ${jobId} stopped with the bot; the next one delivers it${err instanceof Stopping ? '' : `: ${loggableError(err)}`}`);
        // Nothing is being posted now: the next bot need not wait for the claim to run out.
        if (claimed) await releaseDelivery(this.farm, jobId, this.claimant).catch((releaseErr) => this.log(`[bot] releasing the delivery claim on job ${jobId} failed (it runs out instead): ${loggableError(releaseErr)}`));
      } else {
        // Another bot process may read the file: it need not wait for this claim to run out.
        if (claimed && err instanceof VideoUnreadable) await releaseDelivery(this.farm, jobId, this.claimant).catch(() => {});
        await this.failed(jobId, job, err);
      }
    } finally {
      clearInterval(this.jobs.get(jobId)?.claimRenewal);
      this.hold(jobId, { claimRenewal: undefined });
    }
    return false;
  }

  /**
   * The reply that is a job's message (a command's or button's "queued" reply, bot/submit.ts; a
   * 🔍/🔁 reaction's, bot/components/reactions.ts) has been shown and recorded, or could not be:
   * deliver the job without waiting any longer for it.
   */
  replySettled(jobId: number): void {
    if (this.stopped) return;
    this.hold(jobId, { replySettledAt: this.monotonicNow() });
    void this.deliver(jobId);
  }

  /**
   * A job whose reply is still being shown, within DELIVERY_REPLY_GRACE_MS of its submission: no
   * message recorded yet, not settled here, and asked for on Discord, by an interaction (a command
   * or a button: its token) or a reaction (a follow-up). An operator's new job posted into a
   * channel has neither, and is posted at once.
   */
  private awaitingReply(job: Job): boolean {
    if (job.channelId === null || job.messageId !== null || this.jobs.get(job.id)?.replySettledAt !== undefined) return false;
    if (job.interactionToken === null && job.parentJobId === null) return false;
    // Its age on the database's clock (createdAt is the database's now() at submission), never this
    // machine's: another bot process's clock may be seconds off.
    this.dbClock.saw(job.createdAt, job.finishedAt);
    return this.dbClock.now()! - job.createdAt.getTime() < this.replyGraceMs;
  }

  /** Renews the job's delivery claim every third of its length until the delivery ends (deliver's finally) or the bot stops. */
  private renewClaimWhileDelivering(jobId: number): void {
    if (this.stopped) return;
    const renew = () => void claimDelivery(this.farm, jobId, this.claimant, this.claimSeconds).catch((err) => this.log(`[bot] renewing the delivery claim on job ${jobId} failed: ${loggableError(err)}`));
    const claimRenewal = setInterval(renew, Math.max(10, (this.claimSeconds * 1000) / 3));
    claimRenewal.unref();
    this.hold(jobId, { claimRenewal });
  }

  /**
   * Edits the job's message, after checking this process still holds the job's delivery claim (it
   * may have run out while a shrink or a rate limit held the delivery up, and another process taken
   * it: then ClaimLost, and nothing is posted twice) and the bot is not stopping (Stopping).
   */
  private async post(job: Job, payload: MessagePayload): Promise<void> {
    if (this.stopped) throw new Stopping();
    if (!(await claimDelivery(this.farm, job.id, this.claimant, this.claimSeconds))) throw new ClaimLost();
    await editJobMessage(this.discord, job, payload, { reopenThread: true });
  }

  /** A failed delivery: given up when it cannot succeed or has failed too long, else tried again later. */
  private async failed(jobId: number, job: Job | undefined, err: unknown): Promise<void> {
    const now = this.monotonicNow();
    const previous = this.jobs.get(jobId)?.retry;
    const state: RetryState = { failures: (previous?.failures ?? 0) + 1, firstFailedAt: previous?.firstFailedAt ?? now, nextAt: 0 };
    const wait = Math.min(this.maxRetryDelayMs, this.retryDelayMs * 2 ** Math.min(state.failures - 1, 30));
    state.nextAt = now + wait;
    this.hold(jobId, { retry: state });
    if (job && err instanceof Undeliverable) return this.giveUp(job, err.reason, err);
    if (job && now - state.firstFailedAt >= this.giveUpAfterMs) {
      const hours = Math.max(1, Math.round(this.giveUpAfterMs / 3_600_000));
      // Said by the latest failure: storage that cannot be read is not Discord failing.
      if (err instanceof VideoUnreadable) return this.giveUp(job, VIDEO_UNREADABLE_REASON, err);
      return this.giveUp(job, { why: `Discord kept failing for ${hours === 1 ? 'an hour' : `${hours} hours`} when I tried to post it`, advice: 'Run the command again once Discord works normally.' }, err);
    }
    if (err instanceof VideoUnreadable) {
      this.log(
        `[bot] delivering job ${jobId} failed (attempt ${state.failures}, next try in ${Math.round(wait / 1000)} s): its video cannot be read from storage: ${err.file} (${err.code}). ` +
          `Set BLENDFARM_ARTIFACT_DIR on this bot process to the folder the workers keep videos in (${this.farm.config.artifactDir ? `it is ${this.farm.config.artifactDir} here` : 'it is unset here'}), one folder every machine reads`,
      );
      return;
    }
    this.log(`[bot] delivering job ${jobId} failed (attempt ${state.failures}, next try in ${Math.round(wait / 1000)} s): ${loggableError(err)}`);
  }

  /**
   * Stops trying: the job is marked undeliverable (markDelivered with the reason: it leaves the
   * undelivered list, and its event says why), the reason is logged and the owner is told by DM. Marked first, so the owner is told once however many
   * processes get here.
   */
  private async giveUp(job: Job, reason: UndeliverableReason, err: unknown): Promise<void> {
    const why = `cannot be posted in channel ${job.channelId ?? '(none)'} of server ${job.guildId ?? '(none)'}: ${reason.why} (${loggableError(err)})`;
    try {
      // Recorded as undeliverable, with why, so operators can find the results nobody got.
      if (!(await markDelivered(this.farm, job.id, { status: job.status, undeliverable: why }))) {
        this.hold(job.id, { retry: undefined });
        return;
      }
    } catch (markErr) {
      this.log(`[bot] job ${job.id} cannot be posted (${reason.why}), and marking it undeliverable failed too (tried again later): ${loggableError(markErr)}`);
      return;
    }
    this.hold(job.id, { retry: undefined });
    this.log(`[bot] job ${job.id} given up: ${why}; marked undeliverable, telling user ${job.userId} by DM`);
    if (job.status === 'cancelled') return; // they cancelled it themselves; nothing to tell
    try {
      await this.sendDirectMessage(job.userId, this.givenUpText(job, reason, await this.serverName(job.guildId)));
    } catch (dmErr) {
      this.log(`[bot] job ${job.id}: the DM telling user ${job.userId} it could not be posted failed too: ${loggableError(dmErr)}`);
    }
  }

  /**
   * The server's name for a DM: from this process's cache, else asked of Discord (another shard
   * serves it; any process may give a delivery up), waiting at most SERVER_NAME_WAIT_MS; undefined
   * when it cannot be had (the DM then names the channel only).
   */
  private async serverName(guildId: string | null): Promise<string | undefined> {
    if (!guildId) return undefined;
    const cached = this.client.guilds.cache.get(guildId)?.name;
    if (cached) return cached;
    try {
      const guild = await within(this.client.rest.get(Routes.guild(guildId)) as Promise<{ name?: unknown }>, SERVER_NAME_WAIT_MS, () => undefined);
      return typeof guild?.name === 'string' ? guild.name : undefined;
    } catch {
      return undefined;
    }
  }

  private givenUpText(job: Job, reason: UndeliverableReason, guild: string | undefined): string {
    const where = job.channelId ? `<#${job.channelId}>${guild ? ` in **${escapeMarkdown(guild)}**` : ''}` : 'its channel';
    const what = job.status === 'done' ? `Your video is finished, but I could not post it in ${where}` : `Your job ended (${job.status}), but I could not post that in ${where}`;
    return fitMessage(`${title(job)}\n${what}: ${reason.why}. ${reason.advice} I won't try to post job #${job.id} again.`);
  }

  private async sendDirectMessage(userId: string, content: string): Promise<void> {
    const channel = (await this.client.rest.post(Routes.userChannels(), { body: { recipient_id: userId } })) as { id: string };
    await this.client.rest.post(Routes.channelMessages(channel.id), { body: { content, allowed_mentions: { parse: [] } } });
  }

  /**
   * Posts the finished video in the job's message. A video larger than the channel takes is
   * re-encoded smaller here (bot/shrink.ts); when that cannot be done (TooLargeForServer: too large
   * to re-encode in this process, or not small enough even then, or Discord refusing every smaller
   * copy), the message says so without the file (seeds and buttons stay) and the job counts as
   * delivered: no retry would change the outcome.
   */
  private async postVideo(job: Job, artifact: Artifact): Promise<void> {
    const name = `blendfarm-${job.id}.${artifact.format}`;
    const payload = (note: string | undefined, data?: Buffer): MessagePayload => ({
      content: doneText(job, artifact.meta, note),
      components: [finishedRow(job)?.toJSON()].filter((row) => row !== undefined),
      embeds: [],
      files: data ? [{ name, data, contentType: artifact.mime }] : [],
    });
    try {
      let bytes = artifact.bytes;
      let note: string | undefined = artifact.meta.shrunk ? "(Encoded at a lower quality to fit this server's upload limit.)" : undefined;
      const limit = job.params.maxBytes ?? DEFAULT_UPLOAD_LIMIT;
      if (bytes.length > limit) ({ bytes, note } = await this.shrink(artifact, limit, limit));
      // The server's real limit can be lower than we were told (413 / code 40005). Discord does
      // not say what it is: halve and retry, five times at most.
      for (let attempt = 0; ; attempt++) {
        try {
          await this.post(job, payload(note, bytes));
          return;
        } catch (err) {
          if (!(err instanceof DiscordAPIError && (err.status === 413 || err.code === RESTJSONErrorCodes.RequestEntityTooLarge))) throw err;
          if (attempt >= 5) throw new TooLargeForServer(artifact, undefined, `Discord refused it even re-encoded to ${fileSize(bytes.length)}`);
          ({ bytes, note } = await this.shrink(artifact, Math.floor(bytes.length * 0.5), undefined));
        }
      }
    } catch (err) {
      // Say so in the message (seeds and buttons stay) rather than leave it at "rendering".
      if (!(err instanceof TooLargeForServer)) throw err;
      await this.post(job, payload(err.message));
      this.log(`[bot] job ${job.id}: its ${fileSize(artifact.sizeBytes)} video is not attached (${err.why})${err.cause ? `: ${loggableError(err.cause)}` : ''}`);
    }
  }

  /**
   * The video re-encoded under `limit`, one shrink at a time in this process; TooLargeForServer
   * when it cannot be, naming the server's limit when it is known (`serverLimit`).
   */
  private async shrink(artifact: Artifact, limit: number, serverLimit: number | undefined): Promise<{ bytes: Buffer; note: string }> {
    const turn = this.shrinking.then(() => shrinkVideo(artifact.bytes, artifact.format, limit, this.shrinkOptions));
    this.shrinking = turn.catch(() => undefined);
    const result = await turn;
    if (this.stopped) throw new Stopping(); // not final: the next bot shrinks it again
    if (!result.bytes) throw new TooLargeForServer(artifact, serverLimit, result.why, result.cause);
    return { bytes: result.bytes, note: `(Re-encoded to ${fileSize(result.bytes.length)} to fit this server's upload limit.)` };
  }
}

/** This process's delivery claim on the job ran out and another process holds it now (JobMessenger.post). */
class ClaimLost extends Error {
  constructor() {
    super('the delivery claim was taken over by another bot process');
  }
}

/** The bot is stopping: a delivery under way posts nothing more, and is not given up. */
class Stopping extends Error {
  constructor() {
    super('the bot is stopping');
  }
}

/**
 * A finished video that cannot be attached in its channel, whatever we try again: larger than the
 * channel's upload limit and not re-encodable under it (`why`). The message says what happened and
 * what the owner can do.
 */
export class TooLargeForServer extends Error {
  constructor(
    artifact: Pick<Artifact, 'sizeBytes' | 'format'>,
    limit: number | undefined,
    readonly why: string,
    cause?: unknown,
  ) {
    const allows = limit === undefined ? 'more than this server accepts for an upload' : `more than the ${fileSize(limit)} this server accepts for an upload`;
    const smaller = artifact.format === 'webm' ? 'shorter or at a smaller size' : 'shorter, at a smaller size, or as webm (smaller files for the same quality)';
    super(
      `The video is ${fileSize(artifact.sizeBytes)}, ${allows}, and ${why}, so it is not attached. ` +
        `To get it here, render it again ${smaller}; or a server admin can raise the upload limit with a higher Boost level.`,
      { cause },
    );
  }
}

/** How long a give-up DM waits for the server's name from Discord when this process does not serve that server. */
const SERVER_NAME_WAIT_MS = 2000;
