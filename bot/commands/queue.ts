import { MessageFlags, SlashCommandBuilder, type ChatInputCommandInteraction } from 'discord.js';
import { listJobs, listWorkers, queuePosition } from '../../farm/index.ts';
import type { BotContext, Command } from '../context.ts';
import { userMessage } from '../errors.ts';
import { listInMessage } from '../format.ts';

export const queue: Command = {
  data: new SlashCommandBuilder().setName('queue').setDescription('The render farm right now: jobs waiting and running, workers online, your place'),
  async execute(interaction: ChatInputCommandInteraction, ctx: BotContext) {
    await interaction.deferReply({ flags: MessageFlags.Ephemeral });
    try {
      const [queued, running, workers] = await Promise.all([
        listJobs(ctx.farm, { statuses: ['queued'], limit: 1000 }),
        listJobs(ctx.farm, { statuses: ['running'], limit: 1000 }),
        listWorkers(ctx.farm, { onlineOnly: true }),
      ]);
      const mineJob = queued.find((j) => j.userId === interaction.user.id);
      const mine = mineJob ? ((await queuePosition(ctx.farm, mineJob.id)) ?? 0) - 1 : -1;
      const tail = [mine >= 0 ? `Your next job is number ${mine + 1} in line (the order is fair across users, so it can move).` : 'You have nothing waiting.'];
      if (workers.length === 0) tail.push('No worker is online, so nothing is rendering; server admins can start one with `npm run worker`.');
      await interaction.editReply(
        listInMessage({
          head: [`**${queued.length}** waiting, **${running.length}** rendering, **${workers.length}** worker${workers.length === 1 ? '' : 's'} online.`],
          items: workers.map((w) => `• ${w.id}: ${w.capabilities.executionProvider}${w.capabilities.device ? ` (${w.capabilities.device})` : ''}, ${w.runningJobs}/${w.concurrency} busy`),
          tail,
        }),
      );
    } catch (err) {
      await interaction.editReply(userMessage(err, ctx.log));
    }
  },
};
