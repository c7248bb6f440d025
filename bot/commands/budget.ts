import { MessageFlags, SlashCommandBuilder, type ChatInputCommandInteraction } from 'discord.js';
import { ACTIVE_STATUSES, getBudget, listJobs } from '../../farm/index.ts';
import type { BotContext, Command } from '../context.ts';
import { discordWhen, duration, gpuSeconds, listInMessage, title, withWholeMovie } from '../format.ts';
import { userMessage } from '../errors.ts';
import { interactionRoleIds } from '../permissions.ts';

export const budget: Command = {
  data: new SlashCommandBuilder().setName('budget').setDescription('Your GPU-seconds: balance, next refill, your queued and running jobs'),
  async execute(interaction: ChatInputCommandInteraction, ctx: BotContext) {
    await interaction.deferReply({ flags: MessageFlags.Ephemeral });
    try {
      // A read: it never applies a due refill (that would start a new period with this place's
      // allowance); the next request does, with the limits of the server it is made in. In a server
      // the member's roles as the buttons pass them (undefined when Discord sent none: not known,
      // so getBudget applies no role override); outside one there are no roles to know.
      const inServer = interaction.guildId !== null;
      const b = await getBudget(ctx.farm, interaction.user.id, { guildId: interaction.guildId, roleIds: inServer ? interactionRoleIds(interaction) : [] }, 0);
      const active = await listJobs(ctx.farm, { userId: interaction.user.id, statuses: ACTIVE_STATUSES });
      const every = `every ${duration(b.refillPeriodSeconds)}`;
      // A refill within a period of one to a smaller allowance adds only the difference (budget.ts).
      const refill = b.refillDue
        ? inServer
          ? b.refilledWithinPeriodGpuSeconds !== null && b.refillAddsGpuSeconds !== null
            ? `A refill is due: your next request here adds ${gpuSeconds(b.refillAddsGpuSeconds)} (you were refilled to ${gpuSeconds(b.refilledWithinPeriodGpuSeconds)} within this period; a larger allowance adds only the difference).`
            : `A refill to ${gpuSeconds(b.refillGpuSeconds)} is due: your next request here applies it (then one ${every}).`
          : `A refill is due: your next request applies it, with the allowance of the server you make it in (${gpuSeconds(b.refillGpuSeconds)} outside servers).`
        : `Tops up to ${gpuSeconds(b.refillGpuSeconds)} ${every}; next refill ${discordWhen(b.nextRefillAt)}.`;
      const head = [
        `**${gpuSeconds(b.balanceGpuSeconds)}** available (${Number(b.heldGpuSeconds.toFixed(1))} held by your active jobs).`,
        refill,
        `Active jobs: ${b.activeJobs} of ${b.maxActiveJobs}.`,
        ...(inServer ? [] : ["Outside a server the farm's own limits apply; run /budget in a server to see its limits for you."]),
      ];
      const jobs = await Promise.all(active.map(async (j) => `• ${title(await withWholeMovie(ctx.farm, j))} (${j.status})`));
      await interaction.editReply(listInMessage({ head, items: jobs }));
    } catch (err) {
      await interaction.editReply(userMessage(err, ctx.log));
    }
  },
};
