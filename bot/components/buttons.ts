/** The buttons on job messages (built in rows.ts): Upscale, Re-roll, Extend and Cancel. */
import { MessageFlags, type ButtonInteraction } from 'discord.js';
import { getJob } from '../../farm/index.ts';
import type { BotContext } from '../context.ts';
import { cancelForUser } from '../commands/cancel.ts';
import { mayActOn } from '../permissions.ts';
import { refuse, submitFollowUpRender } from '../submit.ts';
import { parseButtonId } from './custom-id.ts';
import { extendForm } from './forms.ts';

export async function handleButton(interaction: ButtonInteraction, ctx: BotContext): Promise<void> {
  const parsed = parseButtonId(interaction.customId);
  if (!parsed) {
    await interaction.reply({ content: 'This button is not recognised any more; run the command again.', flags: MessageFlags.Ephemeral });
    return;
  }
  const { action, jobId } = parsed;
  if (action === 'extend') {
    // A form must be the first answer (no deferring first), so the job is checked when it comes back.
    await interaction.showModal(extendForm(jobId));
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
  await submitFollowUpRender(interaction, ctx, action, parent.id);
}
