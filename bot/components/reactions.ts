/** 🔍 or 🔁 on a finished video does what its Upscale or Re-roll button does. */
import { type MessageReaction, type PartialMessageReaction, type PartialUser, type User } from 'discord.js';
import { getJobByMessageId, setJobMessage, submitFollowUp, type FollowUpKind } from '../../farm/index.ts';
import type { BotContext } from '../context.ts';
import { userMessage } from '../errors.ts';
import { queuedText } from '../format.ts';
import { rightsOn } from '../permissions.ts';
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
  // Reactions carry no permissions: the member's rights in the job's channel come from the cached server.
  let permissions = null;
  if (parent.userId !== user.id && message.guild && message.channel.isTextBased() && !message.channel.isDMBased()) {
    const member = await message.guild.members.fetch(user.id).catch(() => undefined);
    permissions = member ? member.permissionsIn(message.channel) : null;
  }
  const rights = rightsOn(parent, { userId: user.id, guildId: message.guildId, channelId: message.channelId, permissionsInJobChannel: permissions });
  const allowed = rights === 'owner' || rights === 'moderator';
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
