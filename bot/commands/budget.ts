import { MessageFlags, SlashCommandBuilder, type ChatInputCommandInteraction, GuildMember } from 'discord.js';
import { getBudget, listJobs } from '../../farm/index.ts';
import type { BotContext, Command } from '../context.ts';
import { duration, title, withWholeMovie } from '../format.ts';
import { userMessage } from '../errors.ts';

export const budget: Command = {
  data: new SlashCommandBuilder().setName('budget').setDescription('Your GPU-seconds: balance, next refill, your queued and running jobs'),
  async execute(interaction: ChatInputCommandInteraction, ctx: BotContext) {
    await interaction.deferReply({ flags: MessageFlags.Ephemeral });
    try {
      const member = interaction.member instanceof GuildMember ? interaction.member : undefined;
      const b = await getBudget(ctx.farm, interaction.user.id, { guildId: interaction.guildId, roleIds: member ? [...member.roles.cache.keys()] : [] }, 0);
      const active = await listJobs(ctx.farm, { userId: interaction.user.id, statuses: ['queued', 'running'] });
      const refillIn = (b.nextRefillAt.getTime() - Date.now()) / 1000;
      const lines = [
        `**${b.balanceGpuSeconds.toFixed(1)} GPU-seconds** available (${b.heldGpuSeconds.toFixed(1)} held by your active jobs).`,
        `Refills to ${b.refillGpuSeconds} every ${duration(b.refillPeriodSeconds)}; next refill <t:${Math.floor(b.nextRefillAt.getTime() / 1000)}:R>${refillIn <= 0 ? ' (on your next request)' : ''}.`,
        `Active jobs: ${b.activeJobs} of ${b.maxActiveJobs}.`,
        ...(await Promise.all(active.map(async (j) => `• ${title(await withWholeMovie(ctx.farm, j))} (${j.status})`))),
      ];
      await interaction.editReply(lines.join('\n'));
    } catch (err) {
      await interaction.editReply(userMessage(err, ctx.log));
    }
  },
};
