import { MessageFlags, PermissionFlagsBits, SlashCommandBuilder, type ChatInputCommandInteraction, type SlashCommandIntegerOption } from 'discord.js';
import { DEFAULT_MODELS, getGuildSettings, GUILD_LIMITS, JobParamsError, loggableError, offeredModels, updateGuildSettings, type ClampedSetting } from '../../farm/index.ts';
import { autocompleteModel } from '../autocomplete.ts';
import type { BotContext, Command } from '../context.ts';
import { duration, gpuSeconds } from '../format.ts';
import { userMessage } from '../errors.ts';
import { describeDefaults, durationOption, FARM_DEFAULTS_TEXT, formatOption, modelOption, qualityOption, sizeOption } from '../render-options.ts';

const HOUR = 3600;

function refillOption(o: SlashCommandIntegerOption, description: string): SlashCommandIntegerOption {
  return o.setName('refill').setDescription(description).setMinValue(GUILD_LIMITS.refillGpuSeconds.min).setMaxValue(GUILD_LIMITS.refillGpuSeconds.max);
}

function maxJobsOption(o: SlashCommandIntegerOption, description: string): SlashCommandIntegerOption {
  return o.setName('max-jobs').setDescription(description).setMinValue(GUILD_LIMITS.maxActiveJobs.min).setMaxValue(GUILD_LIMITS.maxActiveJobs.max);
}

/** "You asked for …; clamped to the farm's ceiling of …": the operator's ceilings (farm/guilds.ts) are not the server's to raise. */
function clampedText(c: ClampedSetting): string {
  const who = c.roleId ? ` for <@&${c.roleId}>` : '';
  switch (c.setting) {
    case 'refillGpuSeconds':
      return `⚠️ Refill${who}: you asked for ${gpuSeconds(c.asked)}; clamped to the farm's ceiling of **${gpuSeconds(c.applied)}**. The farm's operator sets the ceiling.`;
    case 'refillPeriodSeconds':
      return `⚠️ Refill period: you asked for ${duration(c.asked)}; clamped to the farm's shortest period of **${duration(c.applied)}**. The farm's operator sets it.`;
    case 'maxActiveJobs':
      return `⚠️ Job limit${who}: you asked for ${c.asked}; clamped to the farm's ceiling of **${c.applied}**. The farm's operator sets the ceiling.`;
  }
}

/** A default model the farm refused (modelIdIssue), naming the option: nothing was changed. */
function modelRefusal(err: JobParamsError): string {
  return `That default can't be set, so nothing was changed: ${err.issues.map((issue) => issue.replace(/^model /, '`model` ')).join('; ')}.`;
}

/**
 * Warnings about a new default model (it is stored anyway: workers come and go): no online worker
 * offers it for text transitions, so /blend and /movie without their own model are refused; or it
 * cannot start or end a video at a picture, so a /blend with pictures uses the farm's main model
 * instead (render-options.ts usesMainModel: the rule for a server's default model).
 */
async function defaultModelNotes(ctx: BotContext, model: string): Promise<string[]> {
  const offered = (await offeredModels(ctx.farm)).find((m) => m.id === model);
  const main = model === DEFAULT_MODELS.picture;
  if (!offered?.abilities.includes('text')) {
    const pictures = offered?.abilities.includes('picture') || main ? '' : " (a /blend with pictures uses the farm's main model)";
    return [`⚠️ No render worker online offers the model \`${model}\` right now: /blend and /movie without their own \`model\` are refused until one does${pictures}. The \`model\` option lists the ones on offer.`];
  }
  if (!offered.abilities.includes('picture') && !main) {
    return [`⚠️ The model \`${model}\` can't start or end a video at a picture on any render worker online right now: a /blend with \`from_image\` or \`to_image\` and no \`model\` of its own uses the farm's main model instead.`];
  }
  return [];
}

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
        .addIntegerOption((o) => refillOption(o, 'GPU-seconds each member gets per period (the farm may cap it)'))
        .addIntegerOption((o) =>
          o
            .setName('period-hours')
            .setDescription('Refill period in hours (the farm may set a shortest one)')
            .setMinValue(Math.ceil(GUILD_LIMITS.refillPeriodSeconds.min / HOUR))
            .setMaxValue(Math.floor(GUILD_LIMITS.refillPeriodSeconds.max / HOUR)),
        )
        .addIntegerOption((o) => maxJobsOption(o, 'Queued + running jobs per member (the farm may cap it)')),
    )
    .addSubcommand((s) =>
      s
        .setName('defaults')
        .setDescription('What /blend, /movie and /vary use when a member leaves an option out')
        .addStringOption((o) => qualityOption(o, 'Default quality'))
        .addStringOption((o) => sizeOption(o, 'Default frame size'))
        .addNumberOption((o) => durationOption(o, 'Default seconds per transition'))
        .addStringOption((o) => formatOption(o, 'Default video format'))
        .addStringOption((o) => modelOption(o, "Default model, one the farm's workers offer (inpainting and /vary keep their own)"))
        .addBooleanOption((o) => o.setName('reset').setDescription('Forget the current defaults first; values given here are then set')),
    )
    .addSubcommand((s) =>
      s
        .setName('role')
        .setDescription('Override the limits for members with a role')
        .addRoleOption((o) => o.setName('role').setDescription('The role').setRequired(true))
        .addIntegerOption((o) => refillOption(o, 'GPU-seconds per period for this role (the farm may cap it)'))
        .addIntegerOption((o) => maxJobsOption(o, 'Queued + running jobs for this role (the farm may cap it)'))
        .addBooleanOption((o) => o.setName('remove').setDescription("Remove this role's override")),
    ),
  autocomplete: autocompleteModel,
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
      let clamped: ClampedSetting[] = [];
      /** What this command did, said before the settings as they now are. */
      const notes: string[] = [];
      if (sub === 'set') {
        const hours = interaction.options.getInteger('period-hours');
        ({ clamped, ...s } = await updateGuildSettings(ctx.farm, interaction.guildId, {
          refillGpuSeconds: interaction.options.getInteger('refill') ?? undefined,
          refillPeriodSeconds: hours === null ? undefined : hours * HOUR,
          maxActiveJobs: interaction.options.getInteger('max-jobs') ?? undefined,
        }));
      } else if (sub === 'defaults') {
        const reset = interaction.options.getBoolean('reset') ?? false;
        const given = {
          quality: interaction.options.getString('quality') ?? undefined,
          size: interaction.options.getString('size') ?? undefined,
          duration: interaction.options.getNumber('duration') ?? undefined,
          format: interaction.options.getString('format') ?? undefined,
          model: interaction.options.getString('model')?.trim() || undefined,
        };
        const setting = describeDefaults(given);
        // reset with values: the values given replace the old defaults, in one write (nothing half done).
        s = await updateGuildSettings(ctx.farm, interaction.guildId, reset && !setting ? { defaults: null } : { defaults: given, replaceDefaults: reset });
        if (reset) notes.push(setting ? `Forgot the previous render defaults, then set ${setting}.` : 'Forgot all render defaults.');
        // The default is stored by now: a failure to read the models on offer drops only the warnings (logged).
        if (given.model !== undefined) {
          const model = given.model;
          notes.push(
            ...(await defaultModelNotes(ctx, model).catch((err: unknown) => {
              ctx.log(`[bot] /settings defaults: model ${model} saved for server ${interaction.guildId}, but the models on offer could not be read to warn about it: ${loggableError(err)}`);
              return [];
            })),
          );
        }
      } else if (sub === 'role') {
        const role = interaction.options.getRole('role', true);
        const remove = interaction.options.getBoolean('remove') ?? false;
        const refill = interaction.options.getInteger('refill');
        const maxJobs = interaction.options.getInteger('max-jobs');
        ({ clamped, ...s } = await updateGuildSettings(ctx.farm, interaction.guildId, {
          role: { roleId: role.id, override: remove ? null : { ...(refill !== null ? { refillGpuSeconds: refill } : {}), ...(maxJobs !== null ? { maxActiveJobs: maxJobs } : {}) } },
        }));
      }
      const d = ctx.farm.config.budget;
      const defaults = describeDefaults(s.defaults);
      const lines = [
        ...notes,
        `Render defaults: ${defaults || `none (${FARM_DEFAULTS_TEXT})`}.`,
        `Refill: **${gpuSeconds(s.refillGpuSeconds ?? d.refillGpuSeconds)}** every **${duration(s.refillPeriodSeconds ?? d.refillPeriodSeconds)}**${s.refillGpuSeconds === null ? ' (farm default)' : ''}.`,
        `Max queued + running jobs per member: **${s.maxActiveJobs ?? d.maxActiveJobs}**${s.maxActiveJobs === null ? ' (farm default)' : ''}.`,
        ...Object.entries(s.roleOverrides).map(([roleId, o]) => `• <@&${roleId}>: ${o.refillGpuSeconds !== undefined ? gpuSeconds(o.refillGpuSeconds) : 'default refill'}, ${o.maxActiveJobs !== undefined ? `${o.maxActiveJobs} jobs` : 'default job limit'}`),
        ...clamped.map(clampedText),
      ];
      await interaction.editReply({ content: lines.join('\n'), allowedMentions: { parse: [] } });
    } catch (err) {
      await interaction.editReply(err instanceof RangeError ? `That value is out of range: ${err.message}.` : err instanceof JobParamsError ? modelRefusal(err) : userMessage(err, ctx.log));
    }
  },
};
