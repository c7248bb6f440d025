/**
 * From an interaction to a queued job and its message. A new render (/blend, /movie, /vary, the
 * movie form) is checked before the interaction is answered, with only what needs no download: the
 * farm's parseJobParams on what the member typed, and the attached pictures' Discord metadata
 * (bot/pictures.ts, by the command), so a typo or a picture that is too large gets a private reply
 * at once. Then the interaction is deferred (Discord wants an answer within 3 s, whatever the CDN
 * or the database does). With pictures, the farm's checkSubmission refuses what submitJob would
 * refuse without them (no budget left, too many active jobs, no worker able to render it) before
 * any is downloaded; then they are downloaded and their headers checked with the farm's
 * checkJobInputs. Then the job is submitted (submitJob checks everything again and decides).
 * Follow-ups (buttons, the extend form) go through the farm's submitFollowUp, one at a time per
 * user, parent and kind (a double press makes one job).
 * Every render is refused first, privately, in a server channel where the bot lacks a permission it
 * needs to post the result (postingRefusal). Refusals after the deferral replace the public
 * "thinking…" with a message only the user sees (refuse). Once the job is submitted nothing refuses
 * it: if its queued message cannot be shown, that is logged and delivery posts the result anyway.
 */
import { setImmediate as nextTurn, setTimeout as delay } from 'node:timers/promises';
import { MessageFlags, type ChatInputCommandInteraction, type Guild, type GuildMember, type Interaction, type ModalSubmitInteraction, type RepliableInteraction } from 'discord.js';
import PQueue from 'p-queue';
import {
  LIMITS,
  checkJobInputs,
  checkSubmission,
  FOLLOW_UP_NOUNS,
  getJob,
  loggableError,
  parseJobParams,
  queuePosition,
  setJobMessage,
  submitFollowUp,
  submitJob,
  TERMINAL_STATUSES,
  type FollowUpKind,
  type FollowUpOptions,
  type Job,
  type JobParams,
  type JobParamsInput,
  type SubmitJobInput,
} from '../farm/index.ts';
import type { BotContext, FollowUpGuard, SubmissionGate } from './context.ts';
import { cancelRow } from './components/rows.ts';
import { DEFAULT_UPLOAD_LIMIT, UPLOAD_LIMIT_BY_PREMIUM_TIER } from './delivery.ts';
import { interactionRoleIds, postingRefusal } from './permissions.ts';
import { FarmTooSlowError, userMessage } from './errors.ts';
import { queuedText, withWholeMovie } from './format.ts';
import type { AttachedPictures } from './pictures.ts';
import { OPTION_NAMES, optionsWithServerDefaults, toJobParamsInput, type RenderOptions } from './render-options.ts';
import { within } from './within.ts';

/** Interaction tokens stop working 15 minutes after the interaction. */
export const INTERACTION_TOKEN_LIFETIME_MS = 15 * 60 * 1000;

/** How many deferred submissions do their database work at once (BotOptions.submitConcurrency). */
export const DEFAULT_SUBMIT_CONCURRENCY = 2;

/**
 * How long the lookups made before an interaction's first answer (the job and the rights on it, so
 * a refusal is private from the start) may take: Discord forgets an interaction unanswered after
 * 3 s, so past this the member is told the farm is slow instead (beforeAnswer).
 */
export const LOOKUP_BEFORE_ANSWER_MS = 2000;

/**
 * `lookup` (database reads before an interaction's first answer), or a FarmTooSlowError once it has
 * taken `ms`: a database that stops answering (its queries give up only after
 * BLENDFARM_DB_QUERY_TIMEOUT_MS) would otherwise leave the interaction unanswered ("This
 * interaction failed"). A lookup given up on still ends in the background; it changes nothing.
 */
export function beforeAnswer<T>(lookup: () => Promise<T>, ms = LOOKUP_BEFORE_ANSWER_MS): Promise<T> {
  return within(lookup(), ms, (): never => {
    throw new FarmTooSlowError();
  });
}

/** The longest a queued step waits for unanswered interactions before it runs anyway. */
const MAX_ACK_HOLD_MS = 500;

/** An interaction the bot has received; answered once discord.js has sent its first response. */
interface Unanswered {
  deferred: boolean;
  replied: boolean;
}

/**
 * Acknowledgements first: the database work after a deferral (admission, reservation, queue
 * position, the job's message) waits here, a few at a time; each step starts on a fresh turn of
 * the event loop and only while no received interaction is still unanswered (for at most
 * MAX_ACK_HOLD_MS). A burst of commands then cannot starve the acknowledgements of the ones still
 * arriving: with embedded PGlite every query runs on this thread, and a promise chain of queued
 * queries would otherwise hold the loop until the whole backlog is done.
 */
export class SubmissionQueue implements SubmissionGate {
  private readonly queue: PQueue;
  private readonly unanswered = new Set<Unanswered>();

  constructor(concurrency = DEFAULT_SUBMIT_CONCURRENCY) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`submitConcurrency must be a positive integer, got ${concurrency}`);
    this.queue = new PQueue({ concurrency });
  }

  /** An interaction arrived; steps wait until it is answered or `done` is called. */
  received(interaction: Unanswered): () => void {
    this.unanswered.add(interaction);
    return () => void this.unanswered.delete(interaction);
  }

  /** Runs `step` in its turn, after the event loop (gateway, REST) has had its chance. */
  run<T>(step: () => Promise<T>): Promise<T> {
    return this.queue.add(async () => {
      const since = performance.now();
      await nextTurn();
      while (this.waitingForAnswers() && performance.now() - since < MAX_ACK_HOLD_MS) await delay(5);
      return step();
    }) as Promise<T>;
  }

  private waitingForAnswers(): boolean {
    for (const i of this.unanswered) {
      if (i.deferred || i.replied) this.unanswered.delete(i);
      else return true;
    }
    return false;
  }

  /** Resolves when no step is waiting or running (the bot's stop waits for it). */
  onIdle(): Promise<void> {
    return this.queue.onIdle();
  }
}

/**
 * A refusal, seen only by the user. After a public deferral the first follow-up would take over the
 * public "thinking…" message, so the placeholder is resolved first, the details follow privately,
 * and then the placeholder is removed.
 */
export async function refuse(interaction: RepliableInteraction, text: string): Promise<void> {
  if (interaction.deferred && !interaction.ephemeral) {
    await interaction.editReply({ content: 'This render could not start; the reason was sent to you privately.', components: [] });
    await interaction.followUp({ content: text, flags: MessageFlags.Ephemeral });
    await interaction.deleteReply().catch(() => undefined);
  } else if (interaction.deferred || interaction.replied) {
    await interaction.editReply({ content: text, components: [] });
  } else {
    await interaction.reply({ content: text, flags: MessageFlags.Ephemeral });
  }
}

/** Render to fit what this server accepts as an upload (Discord sends the limit with the interaction). */
export function uploadLimit(interaction: Pick<RepliableInteraction, 'attachmentSizeLimit'>): Pick<JobParamsInput, 'maxBytes'> {
  return asMaxBytes(interaction.attachmentSizeLimit);
}

/**
 * The upload limit where Discord does not send one (a reaction): the server's by its Boost level
 * (UPLOAD_LIMIT_BY_PREMIUM_TIER), the default outside a server or at a level not known.
 */
export function guildUploadLimit(guild: Pick<Guild, 'premiumTier'> | null): Pick<JobParamsInput, 'maxBytes'> {
  return asMaxBytes((guild && UPLOAD_LIMIT_BY_PREMIUM_TIER[guild.premiumTier]) ?? DEFAULT_UPLOAD_LIMIT);
}

/** A limit in bytes as the job parameter takes it (within LIMITS.maxBytes); nothing for one that is not a size. */
function asMaxBytes(limit: number): Pick<JobParamsInput, 'maxBytes'> {
  if (!Number.isInteger(limit) || limit <= 0) return {};
  return { maxBytes: Math.min(Math.max(limit, LIMITS.maxBytes.min), LIMITS.maxBytes.max) };
}

/**
 * A new blend or movie from a member's options. `promptNames` names the prompt fields after the
 * command's options in refusals (e.g. "prompt 1" -> "from").
 */
export async function submitRender(
  interaction: ChatInputCommandInteraction | ModalSubmitInteraction,
  ctx: BotContext,
  kind: 'blend' | 'movie' | 'vary',
  prompts: string[],
  options: RenderOptions,
  promptNames: Readonly<Record<string, string>> = {},
  extra: RenderExtras = {},
): Promise<void> {
  const names = { ...OPTION_NAMES, ...promptNames };
  const cannotPost = postingRefusal(interaction);
  if (cannotPost) {
    await refuse(interaction, cannotPost);
    return;
  }
  const limit = uploadLimit(interaction);
  const pictures = extra.pictures?.inputs.length ? extra.pictures : undefined;
  let parsed: JobParams;
  try {
    // The farm's validator (pure and cheap) on what the member typed, before answering; submitJob
    // runs it again with the server's defaults filled in. Without pictures the inputs are checked
    // here too (none needed, none given); pictures are read only after the deferral.
    parsed = parseJobParams(kind, { ...toJobParamsInput(prompts, options, kind), ...extra.params, ...limit });
    if (!pictures) await checkJobInputs(kind, parsed);
  } catch (err) {
    await refuse(interaction, userMessage(err, ctx.log, names));
    return;
  }
  await interaction.deferReply();
  /** The job's parameters with the server's defaults filled in: read once, for the check before the download and the submission. */
  let built: Promise<JobParamsInput> | undefined;
  const params = () =>
    (built ??= (async () => ({ ...toJobParamsInput(prompts, await optionsWithServerDefaults(ctx.farm, interaction.guildId, options, kind, extra.params), kind), ...extra.params, ...limit }))());
  let inputs: Record<string, Uint8Array> | undefined;
  if (pictures) {
    try {
      // What submitJob would refuse without the pictures (no budget left, too many active jobs, no
      // worker able to render it) is refused before any is downloaded; submitJob decides in the end.
      await ctx.submissions.run(async () => checkSubmission(ctx.farm, { ...interactionRequester(interaction), kind, params: await params() }));
      // The download may take its time now; each picture is checked (format, size, pixels, that it decodes) with the farm's limits.
      inputs = await pictures.download();
      await checkJobInputs(kind, parsed, inputs);
    } catch (err) {
      await refuse(interaction, userMessage(err, ctx.log, names));
      return;
    }
  }
  await submitAndPost(interaction, ctx, names, async (fields) => submitJob(ctx.farm, { ...fields, kind, params: await params(), inputs }), extra.notice);
}

/**
 * What a command adds to the shared render options: picture parameters and the attached pictures,
 * checked from their metadata and downloaded after the deferral (bot/pictures.ts), and a notice.
 */
export interface RenderExtras {
  params?: Pick<JobParamsInput, 'images' | 'inpaint' | 'variation' | 'seeds'>;
  pictures?: AttachedPictures;
  /**
   * A word for the member about how their request was taken (e.g. /vary's frame count changed to
   * one that splits), sent privately once the job exists and its message is shown; nothing is
   * said when the render is refused (the refusal says nothing was rendered).
   */
  notice?: string;
}

/** A follow-up as a verb ("did not re-roll it", "only its owner can re-roll it"). */
export const FOLLOW_UP_VERBS: Readonly<Record<FollowUpKind, string>> = { upscale: 'upscale', reroll: 're-roll', extend: 'extend' };

/** The answer to a second request (a button press or a 🔍/🔁 reaction) while the same one of that member is being submitted. */
function alreadyOnItsWayText(kind: FollowUpKind, parentJobId: number): string {
  return `Your ${FOLLOW_UP_NOUNS[kind]} of #${parentJobId} is already on its way; its message will appear in a moment.`;
}

/**
 * Runs `submit` as the member's one follow-up of `kind` on `parentJobId` under way in this process
 * (ctx.followUps): a second request meanwhile (a double press, a press and a 🔍/🔁 reaction, two
 * reactions) makes no second job, and is answered with `alreadyOnItsWay` and the words for it. The
 * one rule for the buttons, the extend form and the reactions.
 */
export async function oneFollowUpAtATime(
  ctx: BotContext,
  request: { userId: string; parentJobId: number; kind: FollowUpKind },
  alreadyOnItsWay: (text: string) => Promise<void>,
  submit: () => Promise<void>,
): Promise<void> {
  const release = ctx.followUps.begin(request.userId, request.parentJobId, request.kind);
  if (!release) return alreadyOnItsWay(alreadyOnItsWayText(request.kind, request.parentJobId));
  try {
    await submit();
  } finally {
    release();
  }
}

/**
 * Who asks and where, as every submission from Discord carries it (an interaction's, a reaction's):
 * in a server the member's roles (cached, or as Discord sent them), whose role overrides set the
 * budget there; and a worker able to render it must be online (else the member is told at once
 * rather than queued for a job nothing would start).
 */
export function requesterFields(from: { userId: string; guildId: string | null; channelId: string | null; member: Interaction['member'] | GuildMember }): Pick<SubmitJobInput, 'userId' | 'guildId' | 'channelId' | 'roleIds' | 'requireCapableWorker'> {
  return { userId: from.userId, guildId: from.guildId, channelId: from.channelId, roleIds: interactionRoleIds(from), requireCapableWorker: true };
}

/** Who asks and where, for an interaction (requesterFields). */
function interactionRequester(interaction: RepliableInteraction): ReturnType<typeof requesterFields> {
  return requesterFields({ userId: interaction.user.id, guildId: interaction.guildId, channelId: interaction.channelId, member: interaction.member });
}

/**
 * One follow-up submission per (user, parent job, kind) at a time in this process: a second press
 * of the same button while the first is still being submitted gets a private answer instead of a
 * second job (each would be charged): it answers at once, without the database. Across bot
 * processes (a press reaching two), and once the first job is queued, the farm answers a repeated re-roll or
 * extension within its window (SAME_FOLLOW_UP_WINDOW_SECONDS) with that job, in any process.
 */
export class FollowUpsUnderWay implements FollowUpGuard {
  private readonly keys = new Set<string>();

  /** Reserves the submission; the returned function releases it, undefined when one is under way. */
  begin(userId: string, parentJobId: number, kind: FollowUpKind): (() => void) | undefined {
    const key = `${userId}:${parentJobId}:${kind}`;
    if (this.keys.has(key)) return undefined;
    this.keys.add(key);
    return () => void this.keys.delete(key);
  }
}

/**
 * A re-roll, upscale or extension of `parentJobId` (a button or the extend form, not yet answered):
 * refused privately where the bot could not post the result or while the same request of this user
 * is still being submitted, else deferred publicly and submitted.
 */
export async function submitFollowUpRender(interaction: RepliableInteraction, ctx: BotContext, kind: FollowUpKind, parentJobId: number, options?: FollowUpOptions): Promise<void> {
  const cannotPost = postingRefusal(interaction);
  if (cannotPost) {
    await refuse(interaction, cannotPost);
    return;
  }
  await oneFollowUpAtATime(
    ctx,
    { userId: interaction.user.id, parentJobId, kind },
    (text) => refuse(interaction, text),
    async () => {
      await interaction.deferReply();
      await submitAndPost(interaction, ctx, {}, (fields) => submitFollowUp(ctx.farm, { ...fields, kind, parentJobId, options, press: true }));
    },
  );
}

type InteractionFields = Omit<SubmitJobInput, 'kind' | 'params' | 'parentJobId'>;

/**
 * Submits the job and shows it as the interaction's reply; then `notice`, if any, as a private
 * follow-up (only once the reply shows something: the first follow-up to a deferral still
 * "thinking…" would take over that public message).
 */
async function submitAndPost(
  interaction: RepliableInteraction,
  ctx: BotContext,
  names: Readonly<Record<string, string>>,
  submit: (fields: InteractionFields) => Promise<Job>,
  notice?: string,
): Promise<void> {
  let job: Job;
  try {
    job = await ctx.submissions.run(() => submit({
      ...interactionRequester(interaction),
      interactionToken: interaction.token,
      interactionExpiresAt: new Date(interaction.createdTimestamp + INTERACTION_TOKEN_LIFETIME_MS),
    }));
  } catch (err) {
    await refuse(interaction, userMessage(err, ctx.log, names));
    return;
  }
  // From here the job exists, queued and paid for: nothing below may refuse it or delete its
  // message. Should showing it fail (Discord or the database), the job's message id stays unset and
  // delivery edits the interaction's reply while its token lives, else posts a new message.
  // Delivery waits for this reply (DELIVERY_REPLY_GRACE_MS) until told it is settled: a result
  // posted first would be overwritten by the "queued" text.
  let shown = false;
  try {
    const content = await ctx.submissions.run(async () => queuedText(await withWholeMovie(ctx.farm, job), await queuePosition(ctx.farm, job.id)));
    const message = await interaction.editReply({ content, components: [cancelRow(job.id)] });
    shown = true;
    await recordJobReply(ctx, job.id, message, () => interaction.deleteReply());
  } catch (err) {
    ctx.log(`[bot] job ${job.id} is queued, but its message could not be ${shown ? 'recorded' : 'shown'} (its result will still be posted): ${loggableError(err)}`);
    if (!shown) shown = await showQueuedPlainly(interaction, ctx, job);
  } finally {
    ctx.replySettled?.(job.id);
  }
  if (!notice) return;
  if (!shown) {
    ctx.log(`[bot] job ${job.id}: its notice was not sent (its reply shows nothing): ${notice}`);
    return;
  }
  await interaction.followUp({ content: notice, flags: MessageFlags.Ephemeral }).catch((err: unknown) => ctx.log(`[bot] job ${job.id}: its notice could not be sent (${notice}): ${loggableError(err)}`));
}

/**
 * Records `reply` (a job's "queued" message: an interaction's reply, or a reaction's reply) as job
 * `jobId`'s message, only if delivery has not posted the result as a message of its own meanwhile
 * (the reply was gone or not yet there when it tried): that one stays the job's (one statement, so
 * it is never overwritten), and this stale reply goes (`remove`, best effort). Throws if the
 * recording fails.
 */
export async function recordJobReply(ctx: BotContext, jobId: number, reply: { id: string; channelId: string }, remove: () => Promise<unknown>): Promise<void> {
  const recorded = await ctx.submissions.run(() => setJobMessage(ctx.farm, jobId, { messageId: reply.id, channelId: reply.channelId }, { onlyIfUnset: true }));
  if (recorded) return;
  ctx.log(`[bot] job ${jobId}: its reply was shown after its result was posted as a message of its own; the reply is deleted`);
  await remove().catch((err: unknown) => ctx.log(`[bot] job ${jobId}: deleting its late reply failed: ${loggableError(err)}`));
}

/**
 * Best effort after a failed queued message: "Job #N is queued" with its Cancel button, unless the
 * job has already finished (its delivery may have edited the video into this very message).
 * Whether it was shown.
 */
async function showQueuedPlainly(interaction: RepliableInteraction, ctx: BotContext, job: Job): Promise<boolean> {
  try {
    const now = await getJob(ctx.farm, job.id);
    if (!now || (TERMINAL_STATUSES as readonly string[]).includes(now.status)) return false;
    await interaction.editReply({ content: `Job #${job.id} is queued; its video will be posted in this channel when it is done.`, components: [cancelRow(job.id)] });
    return true;
  } catch (err) {
    ctx.log(`[bot] job ${job.id}: the plain queued message could not be shown either: ${loggableError(err)}`);
    return false;
  }
}
