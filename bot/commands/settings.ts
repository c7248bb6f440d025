import { MessageFlags, PermissionFlagsBits, SlashCommandBuilder, type ChatInputCommandInteraction } from 'discord.js';
import { getGuildSettings, updateGuildSettings } from '../../farm/index.ts';
import type { BotContext, Command } from '../context.ts';
import { duration } from '../format.ts';
import { userMessage } from '../errors.ts';
import { describeDefaults, durationOption, FARM_DEFAULTS_TEXT, formatOption, qualityOption, sizeOption } from '../render-options.ts';

export const settings: Command = {
  data: new SlashCommandBuilder()
    .setName('settings')
    .setDescription("This server's render limits (Manage Server)")
    .setDefaultMemberPermissions(PermissionFlagsBits.ManageGuild)
    .setDMPermission(false)
    .addSubcommand((s) => s.setName('show').setDescription('Show the current limits'))
    .addSubcommand((s) =>
      s
        .setName('set')
        .setDescription('Change the server-wide limits')
        .addIntegerOption((o) => o.setName('refill').setDescription('GPU-seconds each member gets per period').setMinValue(0).setMaxValue(10_000_000))
        .addIntegerOption((o) => o.setName('period-hours').setDescription('Refill period in hours').setMinValue(1).setMaxValue(8760))
        .addIntegerOption((o) => o.setName('max-jobs').setDescription('Queued + running jobs per member').setMinValue(1).setMaxValue(1000)),
    )
    .addSubcommand((s) =>
      s
        .setName('defaults')
        .setDescription('What /blend and /movie use when a member leaves an option out')
        .addStringOption((o) => qualityOption(o, 'Default quality'))
        .addStringOption((o) => sizeOption(o, 'Default frame size'))
        .addNumberOption((o) => durationOption(o, 'Default seconds per transition'))
        .addStringOption((o) => formatOption(o, 'Default video format'))
        .addBooleanOption((o) => o.setName('reset').setDescription('Forget all server defaults')),
    )
    .addSubcommand((s) =>
      s
        .setName('role')
        .setDescription('Override the limits for members with a role')
        .addRoleOption((o) => o.setName('role').setDescription('The role').setRequired(true))
        .addIntegerOption((o) => o.setName('refill').setDescription('GPU-seconds per period for this role').setMinValue(0))
        .addIntegerOption((o) => o.setName('max-jobs').setDescription('Queued + running jobs for this role').setMinValue(1))
        .addBooleanOption((o) => o.setName('remove').setDescription('Remove this role’s override')),
    ),
  async execute(interaction: ChatInputCommandInteraction, ctx: BotContext) {
    await interaction.deferReply({ flags: MessageFlags.Ephemeral });
    if (!interaction.guildId) {
      await interaction.editReply('Settings belong to a server; use this command in one.');
      return;
    }
    // Discord hides the command from others, but permissions can be changed per server: check again.
    if (!interaction.memberPermissions?.has(PermissionFlagsBits.ManageGuild)) {
      await interaction.editReply('Changing or viewing the render limits needs the Manage Server permission.');
      return;
    }
    try {
      const sub = interaction.options.getSubcommand();
      let s = await getGuildSettings(ctx.farm, interaction.guildId);
      if (sub === 'set') {
        const hours = interaction.options.getInteger('period-hours');
        s = await updateGuildSettings(ctx.farm, interaction.guildId, {
          refillGpuSeconds: interaction.options.getInteger('refill') ?? undefined,
          refillPeriodSeconds: hours === null ? undefined : hours * 3600,
          maxActiveJobs: interaction.options.getInteger('max-jobs') ?? undefined,
        });
      } else if (sub === 'defaults') {
        const reset = interaction.options.getBoolean('reset') ?? false;
        s = await updateGuildSettings(ctx.farm, interaction.guildId, {
          defaults: reset
            ? null
            : {
                quality: interaction.options.getString('quality') ?? undefined,
                size: interaction.options.getString('size') ?? undefined,
                duration: interaction.options.getNumber('duration') ?? undefined,
                format: interaction.options.getString('format') ?? undefined,
              },
        });
      } else if (sub === 'role') {
        const role = interaction.options.getRole('role', true);
        const remove = interaction.options.getBoolean('remove') ?? false;
        const refill = interaction.options.getInteger('refill');
        const maxJobs = interaction.options.getInteger('max-jobs');
        s = await updateGuildSettings(ctx.farm, interaction.guildId, {
          role: { roleId: role.id, override: remove ? null : { ...(refill !== null ? { refillGpuSeconds: refill } : {}), ...(maxJobs !== null ? { maxActiveJobs: maxJobs } : {}) } },
        });
      }
      const d = ctx.farm.config.budget;
      const defaults = describeDefaults(s.defaults);
      const lines = [
        `Render defaults: ${defaults || `none (${FARM_DEFAULTS_TEXT})`}.`,
        `Refill: **${s.refillGpuSeconds ?? d.refillGpuSeconds}** GPU-seconds every **${duration(s.refillPeriodSeconds ?? d.refillPeriodSeconds)}**${s.refillGpuSeconds === null ? ' (farm default)' : ''}.`,
        `Max queued + running jobs per member: **${s.maxActiveJobs ?? d.maxActiveJobs}**${s.maxActiveJobs === null ? ' (farm default)' : ''}.`,
        ...Object.entries(s.roleOverrides).map(([roleId, o]) => `• <@&${roleId}>: ${o.refillGpuSeconds !== undefined ? `${o.refillGpuSeconds} GPU-s` : 'default refill'}, ${o.maxActiveJobs !== undefined ? `${o.maxActiveJobs} jobs` : 'default job limit'}`),
      ];
      await interaction.editReply({ content: lines.join('\n'), allowedMentions: { parse: [] } });
    } catch (err) {
      await interaction.editReply(err instanceof RangeError ? `That value is out of range: ${err.message}.` : userMessage(err, ctx.log));
    }
  },
};
