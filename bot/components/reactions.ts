/** 🔍 or 🔁 on a finished video does what its Upscale or Re-roll button does. */
import { PermissionFlagsBits, type MessageReaction, type PartialMessageReaction, type PartialUser, type User } from 'discord.js';
import { getJobByMessageId, setJobMessage, submitFollowUp, type FollowUpKind } from '../../farm/index.ts';
import type { BotContext } from '../context.ts';
import { userMessage } from '../errors.ts';
import { queuedText } from '../format.ts';
import { cancelRow } from './rows.ts';

export const REACTIONS: Readonly<Record<string, FollowUpKind>> = { '🔍': 'upscale', '🔁': 'reroll' };

export async function handleReaction(reaction: MessageReaction | PartialMessageReaction, user: User | PartialUser, ctx: BotContext): Promise<void> {
  if (user.bot) return;
  const kind = REACTIONS[reaction.emoji.name ?? ''];
  if (!kind) return;
  const message = reaction.message.partial ? await reaction.message.fetch() : reaction.message;
  if (message.author?.id !== message.client.user.id) return;
  const parent = await getJobByMessageId(ctx.farm, message.id);
  if (!parent || parent.status !== 'done') return;
  let allowed = parent.userId === user.id;
  if (!allowed && message.guild) {
    const member = await message.guild.members.fetch(user.id).catch(() => undefined);
    allowed = Boolean(member && message.channel.isTextBased() && !message.channel.isDMBased() && member.permissionsIn(message.channel).has(PermissionFlagsBits.ManageMessages));
  }
  if (!allowed) {
    await reaction.users.remove(user.id).catch(() => undefined);
    return;
  }
  try {
    const job = await submitFollowUp(ctx.farm, { kind, parentJobId: parent.id, userId: user.id, guildId: message.guildId, channelId: message.channelId, requireCapableWorker: true });
    const posted = await message.reply({ content: `<@${user.id}> ${queuedText(job, undefined)}`, components: [cancelRow(job.id)], allowedMentions: { users: [user.id] } });
    await setJobMessage(ctx.farm, job.id, { messageId: posted.id, channelId: posted.channelId });
  } catch (err) {
    await message.reply({ content: `<@${user.id}> ${userMessage(err, ctx.log)}`, allowedMentions: { users: [user.id] } });
  }
}
