/**
 * How a payload reaches a job's Discord message, and what Discord's refusals mean for it: the
 * interaction webhook while its token lives, then the bot's own edit of the channel message, then a
 * new message mentioning the owner (recorded as the job's message). A thread archived since is
 * unarchived for the result (unarchiveThread). Refusals no retry can change (UNDELIVERABLE_CODES, a
 * locked thread) are Undeliverable, with the reason in words for the owner; bot/delivery.ts decides
 * what to do with each failure (retry, give up).
 */
import { DiscordAPIError, RESTJSONErrorCodes, Routes, type APIChannel, type Client } from 'discord.js';
import type { RawFile } from '@discordjs/rest';
import { loggableError, setJobMessage, type FarmContext, type Job } from '../farm/index.ts';
import type { cancelRow } from './components/rows.ts';
import { fitMessage } from './format.ts';
import { interactionReceipts, type InteractionReceipts } from './interaction-receipts.ts';
import { listOfNames, POSTING_PERMISSIONS } from './permissions.ts';

/** What editJobMessage needs of the bot: its Discord client, the farm (to record a new message), a log. */
export interface JobMessageContext {
  client: Client;
  farm: FarmContext;
  log: (message: string) => void;
  /** When this process received interactions (their tokens' age); default this process's interactionReceipts. */
  receipts?: InteractionReceipts;
}

/** An interaction token with less than this left is not used: an edit sent now might reach Discord after it expired. */
export const INTERACTION_TOKEN_MARGIN_MS = 10_000;

export interface MessagePayload {
  content: string;
  components: ReturnType<ReturnType<typeof cancelRow>['toJSON']>[];
  embeds?: Array<Record<string, unknown>>;
  files?: RawFile[];
}

/** Why a job cannot be posted, in words for its owner, and what they can do about it. */
export interface UndeliverableReason {
  why: string;
  advice: string;
}

/** A delivery that no retry can make succeed. */
export class Undeliverable extends Error {
  constructor(
    readonly reason: UndeliverableReason,
    cause?: unknown,
  ) {
    super(`undeliverable: ${reason.why}`, { cause });
  }
}

/** A thread a moderator locked: nobody but moderators posts there, and the bot does not reopen it. */
const THREAD_LOCKED: UndeliverableReason = { why: 'its thread was locked by a moderator', advice: 'Run the command again in an open channel or thread.' };
/** An archived thread the bot may not unarchive (Discord's refusal): a new message would be refused as well. */
const THREAD_NOT_REOPENED: UndeliverableReason = {
  why: 'its thread was archived and I may not reopen it',
  advice: 'Run the command again in an open channel or thread (or ask a moderator to reopen that one first).',
};

const PERMISSION_ADVICE = `A server admin can give me ${listOfNames(POSTING_PERMISSIONS.map((p) => p.name))} in that channel, or run the command in a channel where I have them.`;

/**
 * Discord errors no retry can fix, for the channel a job is posted in (RESTJSONErrorCodes): the
 * channel or the server is gone, or the bot may not see or post in it. What to tell the owner.
 */
export const UNDELIVERABLE_CODES: ReadonlyMap<number, UndeliverableReason> = new Map([
  [RESTJSONErrorCodes.UnknownChannel, { why: 'that channel no longer exists', advice: 'Run the command again in another channel.' }],
  [RESTJSONErrorCodes.UnknownGuild, { why: 'I am no longer in that server', advice: 'Run the command again in a server I am in.' }],
  [RESTJSONErrorCodes.MissingAccess, { why: 'I can no longer see that channel', advice: PERMISSION_ADVICE }],
  [RESTJSONErrorCodes.MissingPermissions, { why: 'I am missing a permission I need there', advice: PERMISSION_ADVICE }],
  [RESTJSONErrorCodes.CannotSendMessagesInNonTextChannel, { why: 'it is not a text channel', advice: 'Run the command again in a text channel.' }],
  // A new message unarchives an archived thread unless it is locked: refused, it is locked (archived or not).
  [RESTJSONErrorCodes.ThreadLocked, THREAD_LOCKED],
  [RESTJSONErrorCodes.InvalidActionOnArchivedThread, THREAD_LOCKED],
]);

/**
 * Ways to the job's message that no longer work, so the next one is tried (RESTJSONErrorCodes):
 * the interaction token expired, the message or webhook was deleted; and any 401, 403 or 404 (no
 * access to that message, e.g. its channel is gone: the fallback post then says why).
 */
const GONE_CODES: ReadonlySet<number> = new Set([RESTJSONErrorCodes.InvalidWebhookToken, RESTJSONErrorCodes.UnknownMessage, RESTJSONErrorCodes.UnknownWebhook]);

/** Discord's refusal of an edit (or any change but a new message) in an archived thread. */
export function isArchivedThread(err: unknown): boolean {
  return err instanceof DiscordAPIError && err.code === RESTJSONErrorCodes.InvalidActionOnArchivedThread;
}

function isGone(err: unknown): boolean {
  return err instanceof DiscordAPIError && (GONE_CODES.has(Number(err.code)) || err.status === 401 || err.status === 403 || err.status === 404);
}

/** Why the fallback post (the last way to the channel) can never succeed; undefined when a retry may. */
function undeliverableReason(err: unknown): UndeliverableReason | undefined {
  if (!(err instanceof DiscordAPIError)) return undefined;
  const known = UNDELIVERABLE_CODES.get(Number(err.code));
  if (known) return known;
  if (err.status === 404) return UNDELIVERABLE_CODES.get(RESTJSONErrorCodes.UnknownChannel);
  // Discord's own wording stays in the log (giveUp logs the error); the owner gets the gist.
  if (err.status === 403) return { why: 'Discord refused me access to it', advice: PERMISSION_ADVICE };
  return undefined;
}

/**
 * Edits the job's message: interaction webhook while the token is valid, then the bot's own
 * message edit, then a new message mentioning the owner. In a thread archived since (Discord
 * refuses edits there with 50083, and posting anew would unarchive it anyway) the thread is
 * unarchived first when `reopenThread` (unarchiveThread); a locked one is not (Undeliverable).
 */
export async function editJobMessage(ctx: JobMessageContext, job: Job, payload: MessagePayload, { reopenThread }: { reopenThread: boolean }): Promise<void> {
  // Whose job it is, before the text, within Discord's limit (the texts leave room for it: JOB_TEXT_LENGTH).
  const mentioned = (content: string) => (content.startsWith(`<@${job.userId}>`) ? content : fitMessage(`<@${job.userId}> ${content}`));
  const body = {
    // Messages not made by a command (🔍/🔁 reactions) say whose job they are; edits never re-ping.
    content: job.interactionToken ? fitMessage(payload.content) : mentioned(payload.content),
    components: payload.components,
    embeds: payload.embeds ?? [],
    // Replaces the message's attachments with exactly these files.
    attachments: (payload.files ?? []).map((f, i) => ({ id: i, filename: f.name })),
    allowed_mentions: { parse: [] as string[] },
  };
  const files = payload.files ?? [];
  const appId = ctx.client.application?.id ?? ctx.client.user?.id;
  // Its age from when this process received it (monotonic), not Discord's time against this machine's clock.
  const tokenAlive = ((ctx.receipts ?? interactionReceipts).tokenLeftMs(job) ?? 0) > INTERACTION_TOKEN_MARGIN_MS;
  // An edit refused because the thread is archived is made again once the thread is reopened.
  const inOpenThread = async (edit: () => Promise<unknown>): Promise<void> => {
    try {
      await edit();
    } catch (err) {
      if (!reopenThread || !isArchivedThread(err) || !job.channelId) throw err;
      await unarchiveThread(ctx, job, err);
      await edit();
    }
  };
  if (tokenAlive && appId) {
    try {
      await inOpenThread(() => ctx.client.rest.patch(Routes.webhookMessage(appId, job.interactionToken!, '@original'), { body, files, auth: false }));
      return;
    } catch (err) {
      if (!isGone(err)) throw err;
    }
  }
  if (job.channelId && job.messageId) {
    try {
      await inOpenThread(() => ctx.client.rest.patch(Routes.channelMessage(job.channelId!, job.messageId!), { body, files }));
      return;
    } catch (err) {
      if (!isGone(err)) throw err;
    }
  }
  if (!job.channelId) throw new Undeliverable({ why: 'it has no channel to post to', advice: 'Run the command again in a server channel.' });
  let posted: { id: string };
  try {
    posted = (await ctx.client.rest.post(Routes.channelMessages(job.channelId), {
      body: { ...body, content: mentioned(body.content), allowed_mentions: { users: [job.userId] } },
      files,
    })) as { id: string };
  } catch (err) {
    const reason = undeliverableReason(err);
    if (reason) throw new Undeliverable(reason, err);
    throw err;
  }
  try {
    // The job's message from now on: its buttons and reactions find the job, later edits land there.
    await setJobMessage(ctx.farm, job.id, { messageId: posted.id, channelId: job.channelId });
  } catch (err) {
    // Posted all the same: failing here would post it again. Later edits post anew, and 🔍/🔁 on it find no job.
    ctx.log(`[bot] job ${job.id} was posted as message ${posted.id}, but recording that failed: ${loggableError(err)}`);
  }
}

/**
 * Unarchives the job's thread (archived since the job was asked for: Discord refuses edits there
 * with 50083), so its message can be edited as a new message would have unarchived it. Not a
 * thread locked by a moderator, nor one the bot may not unarchive: those are Undeliverable (a new
 * message is refused there too), so the owner is told at once instead of a day of retries.
 */
async function unarchiveThread(ctx: JobMessageContext, job: Job, cause: unknown): Promise<void> {
  const threadId = job.channelId!;
  try {
    const thread = (await ctx.client.rest.get(Routes.channel(threadId))) as APIChannel;
    if ('thread_metadata' in thread && thread.thread_metadata?.locked) throw new Undeliverable(THREAD_LOCKED, cause);
    await ctx.client.rest.patch(Routes.channel(threadId), { body: { archived: false } });
  } catch (err) {
    if (err instanceof Undeliverable) throw err;
    if (err instanceof DiscordAPIError && err.code === RESTJSONErrorCodes.ThreadLocked) throw new Undeliverable(THREAD_LOCKED, err);
    // Not allowed to unarchive it (no Send Messages there, or locked meanwhile): a new message would be refused too.
    if (err instanceof DiscordAPIError && (err.status === 403 || isArchivedThread(err))) throw new Undeliverable(THREAD_NOT_REOPENED, err);
    const reason = undeliverableReason(err); // the thread is gone
    if (reason) throw new Undeliverable(reason, err);
    throw err;
  }
  ctx.log(`[bot] job ${job.id}: its thread ${threadId} had been archived; unarchived it to post the result`);
}
