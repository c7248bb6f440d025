/**
 * 🔍 or 🔁 on a finished video does what its Upscale or Re-roll button does, under the same rules
 * (bot/submit.ts submitFollowUpRender):
 * - the same rights and budget limits: a reaction carries neither permissions nor roles, so in a
 *   server the member is fetched from Discord and their roles go with the request, as a button's do
 *   (without them a server's role overrides would not count: a lower job limit, and no refill);
 * - refused before anything is queued where the bot could not post the result: a reaction carries
 *   no app permissions either, so the bot's own permissions in that channel are read from the cached
 *   server (REACTION_PERMISSIONS: those a button needs, and Read Message History for the reply);
 * - rendered for the server's upload limit now, not the parent's: a button press carries the limit
 *   (uploadLimit), a reaction does not, so it is the server's by its Boost level (guildUploadLimit);
 * - one submission per user, parent job and kind at a time, shared with the buttons (ctx.followUps),
 *   so a reaction and a button press together make one job; and one 🔁 within the farm's
 *   SAME_FOLLOW_UP_WINDOW_SECONDS of the same re-roll (a press, or a reaction taken off and added
 *   again) is told by DM which job it already is (submitFollowUp: in the database, so two bot
 *   processes agree);
 * - once the job is submitted nothing refuses it: a failed reply or a failed recording of its
 *   message is logged, and delivery posts the result in the job's channel anyway.
 * A refusal is private, as a button's is: the member gets it by DM (budget and job numbers are
 * theirs alone); only if the DM fails does the channel see a short note without any details,
 * pointing at the button (whose refusal only they see).
 * Reactions cost nothing to add and take off, so nothing a member can repeat by toggling one makes
 * the bot repeat a failing or public request (ReactionNotices; Cloudflare bans an IP for an hour
 * after 10,000 401/403/429 answers in 10 minutes):
 * - who may act is read from the cache first (the reaction event brings the member with their
 *   roles); only the job's owner and a moderator by those roles are fetched from Discord;
 * - a refused reaction is taken off only where the bot has Manage Messages in that channel (which
 *   its invite does not ask for: INVITE_PERMISSIONS); elsewhere it stays, as reacting again then
 *   means taking it off first;
 * - a member who may not act on the job is told whose it is once per job and emoji within
 *   REACTION_NOTICE_WINDOW_MS; a member whose DM
 *   was refused (403) is not DM'd again about a reaction for DMS_CLOSED_MEMORY_MS (a DM waits for
 *   the one still on its way to them); the channel's note that a reaction could not start is posted
 *   once per member and job within REACTION_NOTICE_WINDOW_MS.
 */
import {
  type Client,
  DiscordAPIError,
  type Guild,
  type GuildMember,
  type Message,
  type MessageReaction,
  type PartialMessage,
  type PartialMessageReaction,
  type PartialUser,
  PermissionFlagsBits,
  RESTJSONErrorCodes,
  type User,
} from 'discord.js';
import { followUpsFor, getJobByMessageId, loggableError, submitFollowUp, type FollowUpKind, type Job } from '../../farm/index.ts';
import type { BotContext } from '../context.ts';
import { userMessage } from '../errors.ts';
import { queuedText } from '../format.ts';
import { missingPermissionsRefusal, onlyItsOwnerText, permissionsIn, REACTION_PERMISSIONS, rightsOn } from '../permissions.ts';
import { FOLLOW_UP_VERBS, guildUploadLimit, oneFollowUpAtATime, recordJobReply, requesterFields } from '../submit.ts';
import { cancelRow, FOLLOW_UP_BUTTONS } from './rows.ts';

/** The follow-ups a reaction asks for, by their button's emoji (an extension needs its form: no reaction). */
export const REACTIONS: Readonly<Record<string, FollowUpKind>> = Object.fromEntries((['upscale', 'reroll'] as const).map((kind) => [FOLLOW_UP_BUTTONS[kind].emoji, kind]));

/**
 * The message reacted to, as the reaction event has it: often a partial (a message this process
 * never received, such as every command reply, has only its ids), which is all the bot needs.
 */
type ReactedMessage = Message | PartialMessage;
type ReactedServerMessage = ReactedMessage & Message<true>;

/** How long a member is not told again the same refusal of a reaction on the same job, nor the channel shown another note about their reactions on it. */
export const REACTION_NOTICE_WINDOW_MS = 10 * 60 * 1000;
/** How long a member whose DM the bot was refused (403: DMs closed, or the bot blocked) is not DM'd about a reaction. */
export const DMS_CLOSED_MEMORY_MS = 10 * 60 * 1000;
/** The most entries each of those memories keeps; past it the oldest are forgotten first (a bound on memory, whatever is reacted). */
export const REACTION_MEMORY_MAX_ENTRIES = 10_000;

/** Keys remembered for `ttlMs` from when they were last added, at most `maxEntries` of them (the oldest go first). */
class RecentKeys {
  /** When each key was added; in insertion order, so the oldest come first. */
  private readonly added = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = REACTION_MEMORY_MAX_ENTRIES,
  ) {}

  has(key: string, now = Date.now()): boolean {
    const at = this.added.get(key);
    if (at === undefined) return false;
    if (now - at < this.ttlMs) return true;
    this.added.delete(key);
    return false;
  }

  add(key: string, now = Date.now()): void {
    this.added.delete(key);
    this.added.set(key, now);
    for (const [oldest, at] of this.added) {
      if (this.added.size <= this.maxEntries && now - at < this.ttlMs) break;
      this.added.delete(oldest);
    }
  }

  /** True, and remembered, unless the key already is (then false). */
  claim(key: string, now = Date.now()): boolean {
    if (this.has(key, now)) return false;
    this.add(key, now);
    return true;
  }

  /** Forgets every key starting with `prefix`. */
  forget(prefix: string): void {
    for (const key of [...this.added.keys()]) if (key.startsWith(prefix)) this.added.delete(key);
  }

  get size(): number {
    return this.added.size;
  }
}

/**
 * What one bot remembers about answering reactions, so toggling one repeats nothing that fails or
 * shows in the channel: the refusals of members who may not act on a job (by member, job and
 * kind), the members whose DMs are closed, and the channel notes (by member and job). In memory, per
 * client (a restart forgets it: at most one more of each).
 */
export class ReactionNotices {
  readonly refusals = new RecentKeys(REACTION_NOTICE_WINDOW_MS);
  readonly closedDms = new RecentKeys(DMS_CLOSED_MEMORY_MS);
  readonly notes = new RecentKeys(REACTION_NOTICE_WINDOW_MS);
  /** The DM on its way to each member, if any: the next waits for it, so a refused one (403) is not followed by another. */
  readonly dmsUnderway = new Map<string, Promise<unknown>>();

  /** Forgets all of it about `userId`, as the windows running out would (tests: a member who has opened their DMs). */
  forget(userId: string): void {
    this.refusals.forget(`${userId}:`);
    this.closedDms.forget(`${userId}:`);
    this.notes.forget(`${userId}:`);
  }
}

const noticesByClient = new WeakMap<Client, ReactionNotices>();

/** The ReactionNotices of the bot behind `client`. */
export function reactionNotices(client: Client): ReactionNotices {
  let notices = noticesByClient.get(client);
  if (!notices) noticesByClient.set(client, (notices = new ReactionNotices()));
  return notices;
}

/** Whether the bot may take a member's reaction off `message`: Manage Messages in its server channel (never in a DM). */
function mayRemoveReactions(message: ReactedMessage): boolean {
  if (!message.inGuild()) return false;
  return message.channel?.permissionsFor(message.client.user)?.has(PermissionFlagsBits.ManageMessages) ?? false;
}

/** The message's server: cached (the Guilds intent), else fetched. */
async function serverOf(message: ReactedServerMessage): Promise<Guild> {
  return message.guild ?? (await message.client.guilds.fetch(message.guildId));
}

type MemberLookup = { member: GuildMember } | { member: null; gone: boolean };

/**
 * The reacting member as Discord has them now (not the copy the reaction event put in the cache),
 * so current roles count and a member who has left since is seen as gone (10007 Unknown Member).
 */
async function currentMember(message: ReactedServerMessage, userId: string): Promise<MemberLookup> {
  try {
    const guild = await serverOf(message);
    return { member: await guild.members.fetch({ user: userId, force: true }) };
  } catch (err) {
    const gone = err instanceof DiscordAPIError && (err.code === RESTJSONErrorCodes.UnknownMember || err.code === RESTJSONErrorCodes.UnknownUser);
    return { member: null, gone };
  }
}

/**
 * Why the bot could not post the result in the message's channel (its own permissions there, from
 * the server and its channel overwrites; in a thread Send Messages in Threads for Send Messages);
 * undefined when it can. Unknown permissions (the bot's own member not fetchable) refuse nothing:
 * delivery still gives up plainly if it cannot post.
 */
async function cannotPostRefusal(guild: Guild, message: ReactedServerMessage): Promise<string | undefined> {
  let granted;
  try {
    const me = guild.members.me ?? (await guild.members.fetchMe());
    granted = me.permissionsIn(message.channel);
  } catch {
    return undefined;
  }
  const required = permissionsIn(message.channel, REACTION_PERMISSIONS);
  return missingPermissionsRefusal(granted, required, { in: `in <#${message.channelId}>`, here: 'there', instead: 'or use a channel where I have them' });
}

/**
 * Whether `message` is this bot's (only its messages can be a job's). A partial message (one this
 * process never received) is fetched for its author; undefined when that fails.
 */
async function isOwnMessage(message: ReactedMessage): Promise<boolean | undefined> {
  try {
    const full = message.partial ? await message.fetch() : message;
    return full.author.id === message.client.user.id;
  } catch {
    return undefined;
  }
}

/** One reaction being answered: who, on which job (undefined: the farm could not be asked which), and how they are told. */
class ReactionRequest {
  constructor(
    readonly reaction: MessageReaction | PartialMessageReaction,
    readonly user: User | PartialUser,
    readonly message: ReactedMessage,
    readonly parent: Job | undefined,
    readonly kind: FollowUpKind,
    readonly ctx: BotContext,
  ) {}

  get emoji(): string {
    return this.reaction.emoji.name ?? '';
  }

  /** "job 12", or "message <id>" when the job is not known, for the log. */
  private get subject(): string {
    return this.parent ? `job ${this.parent.id}` : `message ${this.message.id}`;
  }

  private get notices(): ReactionNotices {
    return reactionNotices(this.message.client);
  }

  /**
   * Takes their reaction off, so reacting again asks again; only where the bot has Manage Messages
   * in that channel (Discord refuses it otherwise, 403): elsewhere the reaction stays.
   */
  async removeReaction(): Promise<void> {
    if (!mayRemoveReactions(this.message)) return;
    await this.reaction.users.remove(this.user.id).catch((err: unknown) => this.ctx.log(`[bot] user ${this.user.id}'s ${this.emoji} on ${this.subject} could not be taken off: ${loggableError(err)}`));
  }

  /**
   * A refusal only they see: by DM, with the whole reason. Should the DM fail (they accept no DMs
   * from server members), the channel gets a short note with no details, unless `noteIfNoDm` is
   * false (nothing went wrong that they need to know about); at most one such note per member and
   * job within REACTION_NOTICE_WINDOW_MS. A member whose DM was refused is not DM'd again for
   * DMS_CLOSED_MEMORY_MS (the note, if any, stands for it). `once`: told at most once per member,
   * job and kind within REACTION_NOTICE_WINDOW_MS (the same answer to a toggled reaction).
   */
  async refuse(why: string, noteIfNoDm = true, once = false): Promise<void> {
    await this.removeReaction();
    if (once && this.parent && !this.notices.refusals.claim(`${this.user.id}:${this.parent.id}:${this.kind}`)) return;
    if (await this.sendDm(why)) return;
    if (!noteIfNoDm) return;
    if (this.parent && !this.notices.notes.claim(`${this.user.id}:${this.parent.id}`)) return;
    // The reason stays private (budgets, job counts); the button tells it privately.
    const button = this.parent && followUpsFor(this.parent).includes(this.kind) ? ` — use the **${FOLLOW_UP_BUTTONS[this.kind].label}** button to see the reason` : '';
    try {
      await this.message.reply({ content: `<@${this.user.id}> your ${this.emoji} could not start; I could not DM you why${button}.`, allowedMentions: { users: [this.user.id] } });
    } catch (err) {
      this.ctx.log(`[bot] the note that user ${this.user.id}'s ${this.emoji} on ${this.subject} could not start could not be posted either: ${loggableError(err)}`);
    }
  }

  /** The refusal by DM; false when it was not sent (it failed, or their DMs were found closed lately: not tried). */
  private async sendDm(why: string): Promise<boolean> {
    // Reactions toggled quickly refuse concurrently (a busy re-roll, then the budget): the second
    // DM waits for the first, and is not tried once that one found their DMs closed.
    // Chained before any await: each DM waits for the one before it, however many arrive at once.
    const before = this.notices.dmsUnderway.get(this.user.id);
    const attempt = (async () => {
      if (before) await before;
      if (this.notices.closedDms.has(`${this.user.id}:`)) return false;
      return this.tryDm(why);
    })();
    this.notices.dmsUnderway.set(this.user.id, attempt);
    try {
      return await attempt;
    } finally {
      if (this.notices.dmsUnderway.get(this.user.id) === attempt) this.notices.dmsUnderway.delete(this.user.id);
    }
  }

  private async tryDm(why: string): Promise<boolean> {
    const where = this.message.inGuild() ? ` in <#${this.message.channelId}>` : '';
    const on = this.parent ? `job #${this.parent.id}` : 'a video';
    try {
      await this.user.send({ content: `Your ${this.emoji} on ${on}${where} did not ${FOLLOW_UP_VERBS[this.kind]} it. ${why}`, allowedMentions: { parse: [] } });
      return true;
    } catch (err) {
      // 403 (50007: DMs closed to server members, or the bot blocked): not tried again for a while.
      if (err instanceof DiscordAPIError && err.status === 403) this.notices.closedDms.add(`${this.user.id}:`);
      this.ctx.log(`[bot] a refusal of user ${this.user.id}'s ${this.emoji} on ${this.subject} could not be sent by DM: ${loggableError(err)}`);
      return false;
    }
  }
}

export async function handleReaction(reaction: MessageReaction | PartialMessageReaction, user: User | PartialUser, ctx: BotContext): Promise<void> {
  if (user.bot) return;
  const kind = REACTIONS[reaction.emoji.name ?? ''];
  if (!kind) return;
  // The job whose message it is, by the message's id: a job's message is always the bot's, so the
  // message itself (a partial unless this process saw it posted) is not fetched. Fetching it needs
  // Read Message History, whose absence would end here unexplained instead of being refused below.
  const message = reaction.message;
  let parent: Job | undefined;
  try {
    parent = await getJobByMessageId(ctx.farm, message.id);
  } catch (err) {
    // The farm's database is not answering (or failed): the member is told privately that nothing
    // was done, in the words a command's answer has (userMessage), if the message is the bot's
    // (only those can be a job's); a 🔍 on anyone else's message is none of the bot's business.
    // By DM only: whose job it is cannot be read now, so a note in the channel would be posted for
    // anyone's reaction (a member who may only react could make the bot post one per reaction).
    if ((await isOwnMessage(message)) !== true) {
      ctx.log(`[bot] user ${user.id}'s ${reaction.emoji.name ?? ''} on message ${message.id} was not looked up (the farm did not answer): ${loggableError(err)}`);
      return;
    }
    return new ReactionRequest(reaction, user, message, undefined, kind, ctx).refuse(userMessage(err, ctx.log), false);
  }
  if (!parent || parent.status !== 'done') return;
  const request = new ReactionRequest(reaction, user, message, parent, kind, ctx);
  const refuseNotTheirs = () => request.refuse(onlyItsOwnerText(FOLLOW_UP_VERBS[kind]), false, true);
  let member: GuildMember | null = null;
  if (message.inGuild() && parent.userId !== user.id) {
    // Anyone but the owner is judged from the cache first, with no call to Discord: the reaction
    // event brought the member with their roles (and the server's channels and roles are cached).
    // Only a moderator by those is fetched below (their current roles, and the budget's).
    const cached = message.guild?.members.cache.get(user.id);
    if (cached) {
      const cachedRights = rightsOn(parent, { userId: user.id, guildId: message.guildId, channelId: message.channelId, permissionsInJobChannel: cached.permissionsIn(message.channel) });
      if (cachedRights === 'none') return refuseNotTheirs();
      if (cachedRights === 'elsewhere') return request.removeReaction();
    }
  }
  if (message.inGuild()) {
    const lookup = await currentMember(message, user.id);
    if (!lookup.member) {
      // Only the owner is told: anyone else may act on the job only as a member (a moderator).
      if (parent.userId !== user.id) return request.removeReaction();
      return request.refuse(
        lookup.gone ? `You're no longer a member of that server.` : `I couldn't check your roles in that server just now (they set your budget there); react again in a moment.`,
      );
    }
    member = lookup.member;
  }
  // Their rights in the job's channel: the fetched member's roles and the cached server's channel overwrites.
  const permissions = member && parent.userId !== user.id && message.inGuild() ? member.permissionsIn(message.channel) : null;
  const rights = rightsOn(parent, { userId: user.id, guildId: message.guildId, channelId: message.channelId, permissionsInJobChannel: permissions });
  // A member who may not act on it reacted to the video itself (so it is in front of them): told by
  // DM whose it is, as any refusal is, once per job and emoji within REACTION_NOTICE_WINDOW_MS; a
  // DM that fails is only logged (nothing went wrong for them to be told in the channel). Anyone the
  // job's channel is hidden from ('elsewhere') is told nothing.
  if (rights === 'none') return refuseNotTheirs();
  if (rights !== 'owner' && rights !== 'moderator') return request.removeReaction();
  // Nothing is queued or charged for a video the bot could not post here.
  // In a server `member` is set (else it returned above), and its guild is the one currentMember resolved.
  const cannotPost = member && message.inGuild() ? await cannotPostRefusal(member.guild, message) : undefined;
  if (cannotPost) return request.refuse(cannotPost);
  // Rendered for the upload limit the server has now, as a button press is (which Discord sends it
  // with); a reaction carries none, so it is the server's by its Boost level.
  const options = guildUploadLimit(member?.guild ?? null);
  // Shared with the buttons: a press and a reaction (or two reactions) make one job.
  await oneFollowUpAtATime(ctx, { userId: user.id, parentJobId: parent.id, kind }, (text) => request.refuse(text, false), async () => {
    let job: Job;
    try {
      // Who and where, as a button's submission carries it (the member's roles set the budget; outside a server: none).
      const fields = requesterFields({ userId: user.id, guildId: message.guildId, channelId: message.channelId, member });
      job = await ctx.submissions.run(() => submitFollowUp(ctx.farm, { ...fields, kind, parentJobId: parent.id, options, press: true }));
    } catch (err) {
      return await request.refuse(userMessage(err, ctx.log));
    }
    // The job is queued and paid for: nothing below refuses it. Its message id stays unset if the
    // reply fails, and delivery posts the result in the channel (mentioning the owner) anyway.
    // Delivery waits for the reply (DELIVERY_REPLY_GRACE_MS) until told it is settled.
    let posted: Message | undefined;
    try {
      posted = await message.reply({ content: `<@${user.id}> ${queuedText(job, undefined)}`, components: [cancelRow(job.id)], allowedMentions: { users: [user.id] } });
      const reply = posted;
      // A reply slower than delivery's wait: the result has a message of its own, which stays the job's.
      await recordJobReply(ctx, job.id, reply, () => reply.delete());
    } catch (err) {
      ctx.log(`[bot] job ${job.id} is queued, but its message could not be ${posted ? 'recorded' : 'posted'} (its result will still be posted): ${loggableError(err)}`);
    } finally {
      ctx.replySettled?.(job.id);
    }
  });
}
