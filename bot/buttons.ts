/** Buttons and forms on job messages, and the 🔍 / 🔁 reactions that do the same as the buttons. */
import {
  ActionRowBuilder,
  MessageFlags,
  ModalBuilder,
  PermissionFlagsBits,
  TextInputBuilder,
  TextInputStyle,
  type ButtonInteraction,
  type MessageReaction,
  type ModalSubmitInteraction,
  type PartialMessageReaction,
  type PartialUser,
  type User,
} from 'discord.js';
import { getJob, setJobMessage, submitJob } from '../farm/jobs.ts';
import { getJobByMessageId } from '../farm/lookup.ts';
import type { BotContext } from './context.ts';
import { extendModalId, parseButtonId, parseModalId } from './custom-id.ts';
import { cancelForUser } from './commands/cancel.ts';
import { submitMovieForm } from './commands/movie.ts';
import { userMessage } from './errors.ts';
import { followUpParams, type FollowUpKind } from '../farm/follow-up.ts';
import { mayActOn } from './permissions.ts';
import { refuse, submitFromInteraction, cancelRow } from './submit.ts';
import { splitPrompts, PROMPT_MAX_LENGTH } from './options.ts';
import { queuedText } from './format.ts';

export async function handleButton(interaction: ButtonInteraction, ctx: BotContext): Promise<void> {
  const parsed = parseButtonId(interaction.customId);
  if (!parsed) {
    await interaction.reply({ content: 'This button is not recognised any more; run the command again.', flags: MessageFlags.Ephemeral });
    return;
  }
  const { action, jobId } = parsed;
  if (action === 'extend') {
    // A form must be the first answer (no deferring first), so the job is checked when it comes back.
    const input = new TextInputBuilder()
      .setCustomId('prompts')
      .setLabel('Next prompt(s), one per line')
      .setStyle(TextInputStyle.Paragraph)
      .setRequired(true)
      .setMaxLength(PROMPT_MAX_LENGTH * 4)
      .setPlaceholder('a rainbow over calm water');
    await interaction.showModal(new ModalBuilder().setCustomId(extendModalId(jobId)).setTitle(`Extend #${jobId}`).addComponents(new ActionRowBuilder<TextInputBuilder>().addComponents(input)));
    return;
  }
  if (action === 'cancel') {
    await interaction.deferReply({ flags: MessageFlags.Ephemeral });
    await cancelForUser(interaction, ctx, jobId);
    return;
  }
  await interaction.deferReply();
  const parent = await getJob(ctx.farm, jobId);
  if (!parent) return refuse(interaction, `Job #${jobId} no longer exists.`);
  if (!mayActOn(parent, interaction.user.id, interaction.memberPermissions)) {
    return refuse(interaction, `That video belongs to <@${parent.userId}>; only they (or a moderator) can ${action === 'upscale' ? 'upscale' : 're-roll'} it. Make your own with /blend.`);
  }
  if (parent.status !== 'done') return refuse(interaction, `Job #${jobId} has not finished yet.`);
  await submitFromInteraction(interaction, ctx, action, followUpParams(action, parent.params), parent.id);
}

export async function handleModal(interaction: ModalSubmitInteraction, ctx: BotContext): Promise<void> {
  const route = parseModalId(interaction.customId);
  if (!route) {
    await interaction.reply({ content: 'This form is not recognised any more; run the command again.', flags: MessageFlags.Ephemeral });
    return;
  }
  if (route.kind === 'movie') return submitMovieForm(interaction, route.options, ctx);
  let prompts: string[];
  try {
    prompts = splitPrompts(interaction.fields.getTextInputValue('prompts'), 'line');
  } catch (err) {
    return refuse(interaction, userMessage(err, ctx.log));
  }
  await interaction.deferReply();
  const parent = await getJob(ctx.farm, route.jobId);
  if (!parent) return refuse(interaction, `Job #${route.jobId} no longer exists.`);
  if (!mayActOn(parent, interaction.user.id, interaction.memberPermissions)) {
    return refuse(interaction, `That movie belongs to <@${parent.userId}>; only they (or a moderator) can extend it.`);
  }
  if (parent.status !== 'done') return refuse(interaction, `Job #${route.jobId} has not finished yet.`);
  let params;
  try {
    params = followUpParams('extend', parent.params, { prompts });
  } catch (err) {
    return refuse(interaction, userMessage(err, ctx.log));
  }
  await submitFromInteraction(interaction, ctx, 'extend', params, parent.id);
}

const REACTIONS: Record<string, FollowUpKind> = { '🔍': 'upscale', '🔁': 'reroll' };

/** 🔍 or 🔁 on a finished video does what its Upscale or Re-roll button does. */
export async function handleReaction(reaction: MessageReaction | PartialMessageReaction, user: User | PartialUser, ctx: BotContext): Promise<void> {
  if (user.bot) return;
  const action = REACTIONS[reaction.emoji.name ?? ''];
  if (!action) return;
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
    const job = await submitJob(ctx.farm, { kind: action, params: followUpParams(action, parent.params), userId: user.id, guildId: message.guildId, channelId: message.channelId, parentJobId: parent.id, requireCapableWorker: true });
    const posted = await message.reply({ content: `<@${user.id}> ${queuedText(job, undefined)}`, components: [cancelRow(job.id)], allowedMentions: { users: [user.id] } });
    await setJobMessage(ctx.farm, job.id, { messageId: posted.id, channelId: posted.channelId });
  } catch (err) {
    await message.reply({ content: `<@${user.id}> ${userMessage(err, ctx.log)}`, allowedMentions: { users: [user.id] } });
  }
}
