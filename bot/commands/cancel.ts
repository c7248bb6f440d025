import { MessageFlags, SlashCommandBuilder, type ChatInputCommandInteraction, type RepliableInteraction } from 'discord.js';
import { cancelJob, getJob, listJobs } from '../../farm/index.ts';
import type { BotContext, Command } from '../context.ts';
import { userMessage } from '../errors.ts';
import { mayActOn } from '../permissions.ts';

/** Shared by /cancel and the Cancel button. */
export async function cancelForUser(interaction: RepliableInteraction, ctx: BotContext, jobId: number | undefined): Promise<void> {
  try {
    let id = jobId;
    if (id === undefined) {
      const mine = await listJobs(ctx.farm, { userId: interaction.user.id, statuses: ['running', 'queued'], order: 'newest', limit: 1 });
      if (mine.length === 0) {
        await interaction.editReply('You have no queued or running job to cancel.');
        return;
      }
      id = mine[0].id;
    }
    const job = await getJob(ctx.farm, id);
    if (!job) {
      await interaction.editReply(`There is no job #${id}.`);
      return;
    }
    if (!mayActOn(job, interaction.user.id, interaction.memberPermissions)) {
      await interaction.editReply(`Job #${id} belongs to someone else; only its owner or a moderator can cancel it.`);
      return;
    }
    const r = await cancelJob(ctx.farm, id, `cancelled by ${interaction.user.id}`);
    await interaction.editReply(
      r.cancelled ? `Cancelled job #${id}; ${r.refundedGpuSeconds.toFixed(1)} GPU-seconds went back to its owner's budget.` : `Job #${id} had already ${r.job.status === 'done' ? 'finished' : r.job.status}.`,
    );
  } catch (err) {
    await interaction.editReply(userMessage(err, ctx.log));
  }
}

export const cancel: Command = {
  data: new SlashCommandBuilder()
    .setName('cancel')
    .setDescription('Cancel your running or queued job (unused GPU-seconds are refunded)')
    .addIntegerOption((o) => o.setName('job').setDescription('Job number (default: your newest active job)').setMinValue(1)),
  async execute(interaction: ChatInputCommandInteraction, ctx: BotContext) {
    await interaction.deferReply({ flags: MessageFlags.Ephemeral });
    await cancelForUser(interaction, ctx, interaction.options.getInteger('job') ?? undefined);
  },
};
