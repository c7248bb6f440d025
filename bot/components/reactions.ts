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
 *   so a reaction and a button press together make one job;
 * - once the job is submitted nothing refuses it: a failed reply or a failed recording of its
 *   message is logged, and delivery posts the result in the job's channel anyway.
 * A refusal is private, as a button's is: the member gets it by DM (budget and job numbers are
 * theirs alone) and their reaction is removed; only if the DM fails does the channel see a short
 * note without any details, pointing at the button (whose refusal only they see).
 */
import {
  DiscordAPIError,
  type Guild,
  type GuildMember,
  type Message,
  type MessageReaction,
  type PartialMessage,
  type PartialMessageReaction,
  type PartialUser,
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

  /** Takes their reaction off, so reacting again asks again. Best effort: without Manage Messages only their own stays. */
  async removeReaction(): Promise<void> {
    await this.reaction.users.remove(this.user.id).catch(() => undefined);
  }

  /**
   * A refusal only they see: by DM, with the whole reason. Should the DM fail (they accept no DMs
   * from server members), the channel gets a short note with no details, unless `noteIfNoDm` is
   * false (nothing went wrong that they need to know about).
   */
  async refuse(why: string, noteIfNoDm = true): Promise<void> {
    await this.removeReaction();
    const where = this.message.inGuild() ? ` in <#${this.message.channelId}>` : '';
    const on = this.parent ? `job #${this.parent.id}` : 'a video';
    try {
      await this.user.send({ content: `Your ${this.emoji} on ${on}${where} did not ${FOLLOW_UP_VERBS[this.kind]} it. ${why}`, allowedMentions: { parse: [] } });
      return;
    } catch (err) {
      this.ctx.log(`[bot] a refusal of user ${this.user.id}'s ${this.emoji} on ${this.subject} could not be sent by DM: ${loggableError(err)}`);
    }
    if (!noteIfNoDm) return;
    // The reason stays private (budgets, job counts); the button tells it privately.
    const button = this.parent && followUpsFor(this.parent).includes(this.kind) ? ` — use the **${FOLLOW_UP_BUTTONS[this.kind].label}** button to see the reason` : '';
    try {
      await this.message.reply({ content: `<@${this.user.id}> your ${this.emoji} could not start; I could not DM you why${button}.`, allowedMentions: { users: [this.user.id] } });
    } catch (err) {
      this.ctx.log(`[bot] the note that user ${this.user.id}'s ${this.emoji} on ${this.subject} could not start could not be posted either: ${loggableError(err)}`);
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
  let member: GuildMember | null = null;
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
  // DM whose it is, as any refusal is; a DM that fails is only logged (nothing went wrong for them
  // to be told in the channel). Anyone the job's channel is hidden from ('elsewhere') is told nothing.
  if (rights === 'none') return request.refuse(onlyItsOwnerText(FOLLOW_UP_VERBS[kind]), false);
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
      job = await ctx.submissions.run(() => submitFollowUp(ctx.farm, { ...fields, kind, parentJobId: parent.id, options }));
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
