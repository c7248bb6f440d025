import { MessageFlags, SlashCommandBuilder, type ChatInputCommandInteraction, type RepliableInteraction } from 'discord.js';
import { cancelJob, cancelReason, endedText, getJob, listJobs, type Job } from '../../farm/index.ts';
import type { BotContext, Command } from '../context.ts';
import { userMessage } from '../errors.ts';
import { gpuSeconds } from '../format.ts';
import { mayActOn, noJobOfYoursText } from '../permissions.ts';

/** Cancels `job` for a deferred interaction whose user may act on it (checked by the caller). */
export async function cancelJobFor(interaction: RepliableInteraction, ctx: BotContext, job: Job): Promise<void> {
  try {
    // Who cancelled it, kept as the job's error: its message says so when it was not its owner (failedText).
    const r = await cancelJob(ctx.farm, job.id, cancelReason(interaction.user.id));
    const whose = r.job.userId === interaction.user.id ? 'your' : "its owner's";
    await interaction.editReply(
      r.cancelled ? `Cancelled job #${job.id}; ${gpuSeconds(r.refundedGpuSeconds)} went back to ${whose} budget.` : `Job #${job.id} had already ${endedText(r.job.status)}.`,
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
    // The answer is private whatever it is; deferring first keeps Discord's 3 s whatever the database does.
    await interaction.deferReply({ flags: MessageFlags.Ephemeral });
    try {
      const id = interaction.options.getInteger('job') ?? undefined;
      let job: Job | undefined;
      if (id === undefined) {
        [job] = await listJobs(ctx.farm, { userId: interaction.user.id, statuses: ['running', 'queued'], order: 'newest', limit: 1 });
        if (!job) {
          await interaction.editReply('You have no queued or running job to cancel.');
          return;
        }
      } else {
        job = await getJob(ctx.farm, id);
        // One answer for a job that does not exist and one they may not act on (noJobOfYoursText).
        if (!job || !(await mayActOn(job, interaction))) {
          await interaction.editReply(noJobOfYoursText(id, 'cancel'));
          return;
        }
      }
      await cancelJobFor(interaction, ctx, job);
    } catch (err) {
      await interaction.editReply(userMessage(err, ctx.log));
    }
  },
};
