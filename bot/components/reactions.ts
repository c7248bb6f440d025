/**
 * 🔍 or 🔁 on a finished video does what its Upscale or Re-roll button does, with the same rights
 * and the same budget limits: a reaction carries neither permissions nor roles, so in a server the
 * member is fetched from Discord and their roles go with the request, as a button's do (without
 * them a server's role overrides would not count: a lower job limit, and no refill).
 */
import {
  DiscordAPIError,
  type GuildMember,
  type Message,
  type MessageReaction,
  type PartialMessageReaction,
  type PartialUser,
  RESTJSONErrorCodes,
  type User,
} from 'discord.js';
import { getJobByMessageId, setJobMessage, submitFollowUp, type FollowUpKind } from '../../farm/index.ts';
import type { BotContext } from '../context.ts';
import { userMessage } from '../errors.ts';
import { queuedText } from '../format.ts';
import { rightsOn } from '../permissions.ts';
import { cancelRow } from './rows.ts';

export const REACTIONS: Readonly<Record<string, FollowUpKind>> = { '🔍': 'upscale', '🔁': 'reroll' };
const VERBS: Readonly<Record<string, string>> = { upscale: 'upscale', reroll: 're-roll' };

type MemberLookup = { member: GuildMember } | { member: null; gone: boolean };

/**
 * The reacting member as Discord has them now (not the copy the reaction event put in the cache),
 * so current roles count and a member who has left since is seen as gone (10007 Unknown Member).
 */
async function currentMember(message: Message<true>, userId: string): Promise<MemberLookup> {
  try {
    const guild = message.guild ?? (await message.client.guilds.fetch(message.guildId));
    return { member: await guild.members.fetch({ user: userId, force: true }) };
  } catch (err) {
    const gone = err instanceof DiscordAPIError && (err.code === RESTJSONErrorCodes.UnknownMember || err.code === RESTJSONErrorCodes.UnknownUser);
    return { member: null, gone };
  }
}

export async function handleReaction(reaction: MessageReaction | PartialMessageReaction, user: User | PartialUser, ctx: BotContext): Promise<void> {
  if (user.bot) return;
  const kind = REACTIONS[reaction.emoji.name ?? ''];
  if (!kind) return;
  const message = reaction.message.partial ? await reaction.message.fetch() : reaction.message;
  if (message.author?.id !== message.client.user.id) return;
  const parent = await getJobByMessageId(ctx.farm, message.id);
  if (!parent || parent.status !== 'done') return;
  let member: GuildMember | null = null;
  if (message.inGuild()) {
    const lookup = await currentMember(message, user.id);
    if (!lookup.member) {
      await reaction.users.remove(user.id).catch(() => undefined);
      // Only the owner is told: anyone else may act on the job only as a member (a moderator).
      if (parent.userId === user.id) {
        const why = lookup.gone
          ? `You're no longer a member of this server, so your ${reaction.emoji.name} did not ${VERBS[kind]} job #${parent.id}.`
          : `I couldn't check your roles in this server just now (they set your budget here), so your ${reaction.emoji.name} did not ${VERBS[kind]} job #${parent.id}; react again in a moment.`;
        await message.reply({ content: `<@${user.id}> ${why}`, allowedMentions: { users: [user.id] } });
      }
      return;
    }
    member = lookup.member;
  }
  // Their rights in the job's channel: the fetched member's roles and the cached server's channel overwrites.
  const permissions = member && parent.userId !== user.id && message.inGuild() ? member.permissionsIn(message.channel) : null;
  const rights = rightsOn(parent, { userId: user.id, guildId: message.guildId, channelId: message.channelId, permissionsInJobChannel: permissions });
  const allowed = rights === 'owner' || rights === 'moderator';
  if (!allowed) {
    await reaction.users.remove(user.id).catch(() => undefined);
    return;
  }
  try {
    // The member's roles, as the buttons pass them: a server's role overrides set the budget (outside a server: none).
    const roleIds = member ? [...member.roles.cache.keys()] : [];
    const job = await submitFollowUp(ctx.farm, { kind, parentJobId: parent.id, userId: user.id, guildId: message.guildId, channelId: message.channelId, roleIds, requireCapableWorker: true });
    const posted = await message.reply({ content: `<@${user.id}> ${queuedText(job, undefined)}`, components: [cancelRow(job.id)], allowedMentions: { users: [user.id] } });
    await setJobMessage(ctx.farm, job.id, { messageId: posted.id, channelId: posted.channelId });
  } catch (err) {
    await message.reply({ content: `<@${user.id}> ${userMessage(err, ctx.log)}`, allowedMentions: { users: [user.id] } });
  }
}
