/**
 * Keeps each job's Discord message in step with the job: queued -> progress (at most one edit every
 * few seconds per job, for rate limits) -> the finished video with buttons, or the failure.
 *
 * Driven by the farm's job events (LISTEN/NOTIFY), so there is no polling loop. Delivery goes through
 * the interaction webhook while its token lives (15 minutes), then through the bot's own
 * channel-message edit, and if the message is gone, a new message that mentions the user. Each
 * finished job is claimed and marked delivered in the database, so it is posted once even with
 * several bot processes, and a restarted bot posts what finished while it was down.
 */
import { DiscordAPIError, Routes, type Client } from 'discord.js';
import type { RawFile } from '@discordjs/rest';
import {
  claimDelivery,
  getArtifact,
  getJob,
  listUndelivered,
  loggableError,
  markDelivered,
  onJobEvent,
  queuePosition,
  TERMINAL_STATUSES,
  type Artifact,
  type FarmContext,
  type Job,
  type JobEvent,
  setJobMessage,
} from '../farm/index.ts';
import { cancelRow, finishedRow } from './components/rows.ts';
import { doneText, failedText, progressText, queuedText, withWholeMovie } from './format.ts';
import { shrinkVideo } from './shrink.ts';

/** Discord's upload limit for a server without boosts; used when a job carries no limit of its own. */
export const DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024;
const TERMINAL = new Set<string>(TERMINAL_STATUSES);

export interface MessengerOptions {
  /** Minimum time between two progress edits of one message. */
  editIntervalMs?: number;
  /** Name of this bot process in delivery claims. */
  claimant?: string;
  log?: (message: string) => void;
  /** Wait before a failed delivery is tried again, times the attempt number (five attempts at most). */
  retryDelayMs?: number;
}

interface MessagePayload {
  content: string;
  components: ReturnType<ReturnType<typeof cancelRow>['toJSON']>[];
  embeds?: Array<Record<string, unknown>>;
  files?: RawFile[];
}

export class JobMessenger {
  private readonly lastEdit = new Map<number, number>();
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private readonly delivering = new Set<number>();
  private unlisten?: () => Promise<void>;
  private stopped = false;
  private readonly editIntervalMs: number;
  private readonly claimant: string;
  private readonly log: (m: string) => void;
  private readonly retryDelayMs: number;

  constructor(
    private readonly client: Client,
    private readonly farm: FarmContext,
    opts: MessengerOptions = {},
  ) {
    this.editIntervalMs = opts.editIntervalMs ?? 3000;
    this.claimant = opts.claimant ?? `bot-${process.pid}`;
    this.log = opts.log ?? ((m) => console.log(m));
    this.retryDelayMs = opts.retryDelayMs ?? 30_000;
  }

  async start(): Promise<void> {
    this.unlisten = await onJobEvent(this.farm.db, (e) => this.onEvent(e));
    // Catch up on results that finished while no bot was listening.
    for (const job of await listUndelivered(this.farm)) void this.deliver(job.id);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await this.unlisten?.();
  }

  private onEvent(e: JobEvent): void {
    if (this.stopped) return;
    if (TERMINAL.has(e.type)) void this.deliver(e.jobId);
    else if (e.type !== 'delivered') this.scheduleEdit(e.jobId);
  }

  private scheduleEdit(jobId: number): void {
    if (this.timers.has(jobId)) return; // an edit is already due; it will read the latest state
    const wait = Math.max(0, (this.lastEdit.get(jobId) ?? 0) + this.editIntervalMs - Date.now());
    this.timers.set(
      jobId,
      setTimeout(() => {
        this.timers.delete(jobId);
        void this.editProgress(jobId).catch((err) => this.log(`[bot] progress edit for job ${jobId} failed: ${loggableError(err)}`));
      }, wait),
    );
  }

  private async editProgress(jobId: number): Promise<void> {
    const stored = await getJob(this.farm, jobId);
    if (!stored || TERMINAL.has(stored.status) || !stored.messageId || this.stopped) return;
    this.lastEdit.set(jobId, Date.now());
    const job = await withWholeMovie(this.farm, stored);
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
    await this.editJobMessage(job, payload);
  }

  /** Posts a finished job's result (or its failure) exactly once. */
  async deliver(jobId: number, attempt = 1): Promise<void> {
    if (this.delivering.has(jobId) || this.stopped) return;
    this.delivering.add(jobId);
    const timer = this.timers.get(jobId);
    if (timer) clearTimeout(timer);
    this.timers.delete(jobId);
    try {
      const stored = await getJob(this.farm, jobId);
      if (!stored || !TERMINAL.has(stored.status) || stored.deliveredAt) return;
      if (!(await claimDelivery(this.farm, jobId, this.claimant))) return;
      if (stored.messageId || stored.channelId) {
        const job = await withWholeMovie(this.farm, stored);
        if (job.status === 'done') {
          const artifact = await getArtifact(this.farm, jobId);
          if (!artifact) throw new Error(`job ${jobId} is done but has no stored video`);
          await this.postVideo(job, artifact);
        } else {
          await this.editJobMessage(job, { content: failedText(job), components: [] });
        }
      }
      await markDelivered(this.farm, jobId);
    } catch (err) {
      this.log(`[bot] delivering job ${jobId} failed (attempt ${attempt}): ${loggableError(err)}`);
      if (attempt < 5 && !this.stopped) setTimeout(() => void this.deliver(jobId, attempt + 1), this.retryDelayMs * attempt).unref();
    } finally {
      this.delivering.delete(jobId);
    }
  }

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
      let note: string | undefined = artifact.meta.shrunk ? '(Encoded at a lower quality to fit this server’s upload limit.)' : undefined;
      const limit = job.params.maxBytes ?? DEFAULT_UPLOAD_LIMIT;
      if (bytes.length > limit) ({ bytes, note } = await this.shrink(artifact, limit));
      // The server's real limit can be lower than we were told (413 / code 40005). Discord does
      // not say what it is: halve and retry, five times at most.
      for (let attempt = 0; ; attempt++) {
        try {
          await this.editJobMessage(job, payload(note, bytes));
          return;
        } catch (err) {
          if (!(err instanceof DiscordAPIError && (err.status === 413 || err.code === 40005))) throw err;
          if (attempt >= 5) throw new TooLargeForServer(bytes.length, bytes.length);
          ({ bytes, note } = await this.shrink(artifact, Math.floor(bytes.length * 0.5)));
        }
      }
    } catch (err) {
      // Say so in the message (seeds and buttons stay) rather than leave it at "rendering".
      if (!(err instanceof TooLargeForServer)) throw err;
      await this.editJobMessage(job, payload(err.message));
    }
  }

  private async shrink(artifact: Artifact, limit: number): Promise<{ bytes: Buffer; note: string }> {
    const result = await shrinkVideo(artifact.bytes, artifact.format, limit);
    if (!result) throw new TooLargeForServer(artifact.sizeBytes, limit);
    return { bytes: result, note: `(Re-encoded to ${(result.length / 1048576).toFixed(1)} MiB to fit this server's upload limit.)` };
  }

  /**
   * Edits the job's message: interaction webhook while the token is valid, then the bot's own
   * message edit, then a new message mentioning the owner.
   */
  private async editJobMessage(job: Job, payload: MessagePayload): Promise<void> {
    const body = {
      // Messages not made by a command (🔍/🔁 reactions) say whose job they are; edits never re-ping.
      content: job.interactionToken ? payload.content : `<@${job.userId}> ${payload.content}`,
      components: payload.components,
      embeds: payload.embeds ?? [],
      // Replaces the message's attachments with exactly these files.
      attachments: (payload.files ?? []).map((f, i) => ({ id: i, filename: f.name })),
      allowed_mentions: { parse: [] as string[] },
    };
    const files = payload.files ?? [];
    const appId = this.client.application?.id ?? this.client.user?.id;
    const tokenAlive = job.interactionToken && job.interactionExpiresAt && job.interactionExpiresAt.getTime() - Date.now() > 10_000;
    if (tokenAlive && appId) {
      try {
        await this.client.rest.patch(Routes.webhookMessage(appId, job.interactionToken!, '@original'), { body, files, auth: false });
        return;
      } catch (err) {
        if (!isGone(err)) throw err;
      }
    }
    if (job.channelId && job.messageId) {
      try {
        await this.client.rest.patch(Routes.channelMessage(job.channelId, job.messageId), { body, files });
        return;
      } catch (err) {
        if (!isGone(err)) throw err;
      }
    }
    if (!job.channelId) throw new Error(`job ${job.id} has no channel to post to`);
    const posted = (await this.client.rest.post(Routes.channelMessages(job.channelId), {
      body: { ...body, content: body.content.startsWith(`<@${job.userId}>`) ? body.content : `<@${job.userId}> ${body.content}`, allowed_mentions: { users: [job.userId] } },
      files,
    })) as { id: string };
    // The job's message from now on: its buttons and reactions find the job, later edits land there.
    await setJobMessage(this.farm, job.id, { messageId: posted.id, channelId: job.channelId });
  }
}

class TooLargeForServer extends Error {
  constructor(size: number, limit: number) {
    const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
    super(`The video (${mib(size)}) could not be made to fit this server's upload limit (${mib(limit)}), even re-encoded smaller. Try a shorter duration or a smaller size.`);
  }
}

/** The route cannot be used any more: expired interaction token (50027), deleted message, no access. */
function isGone(err: unknown): boolean {
  return err instanceof DiscordAPIError && (err.code === 50027 || err.code === 10008 || err.code === 10015 || err.status === 401 || err.status === 404 || err.status === 403);
}
