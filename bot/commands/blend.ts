import { SlashCommandBuilder, type ChatInputCommandInteraction, type SlashCommandOptionsOnlyBuilder } from 'discord.js';
import { MAX_JOB_SEED, QUALITY_PRESETS, VIDEO_FORMATS } from '../../farm/job-params.ts';
import type { BotContext, Command } from '../context.ts';
import { checkPrompt, paramsFromChoices, PROMPT_MAX_LENGTH, QUALITY_LABELS, SIZE_CHOICES, type RenderChoices, withServerDefaults } from '../options.ts';
import { refuse, serverDefaults, submitFromInteraction } from '../submit.ts';
import { userMessage } from '../errors.ts';

/** The options /blend and /movie share. */
export function addRenderOptions(b: SlashCommandOptionsOnlyBuilder): SlashCommandOptionsOnlyBuilder {
  return b
    .addStringOption((o) => o.setName('negative').setDescription('What the video should not show').setMaxLength(PROMPT_MAX_LENGTH))
    .addIntegerOption((o) => o.setName('seed').setDescription('Seed for a reproducible video (prompt i uses seed + i)').setMinValue(0).setMaxValue(MAX_JOB_SEED))
    .addNumberOption((o) => o.setName('duration').setDescription('Seconds of video per transition (default 4)').setMinValue(1).setMaxValue(30))
    .addStringOption((o) => o.setName('size').setDescription('Frame size').addChoices(...Object.entries(SIZE_CHOICES).map(([value, s]) => ({ name: s.label, value }))))
    .addStringOption((o) => o.setName('quality').setDescription('More steps and branches: smoother, slower, costs more').addChoices(...Object.keys(QUALITY_PRESETS).map((value) => ({ name: QUALITY_LABELS[value as keyof typeof QUALITY_LABELS], value }))))
    .addNumberOption((o) => o.setName('depth').setDescription('0.1..0.9: how late the frames branch off (higher keeps more in common)').setMinValue(0.1).setMaxValue(0.9))
    .addStringOption((o) => o.setName('format').setDescription('Video format (default mp4)').addChoices(...VIDEO_FORMATS.map((f) => ({ name: f, value: f }))));
}

export function readRenderChoices(i: ChatInputCommandInteraction): RenderChoices {
  return {
    negative: i.options.getString('negative') ?? undefined,
    seed: i.options.getInteger('seed') ?? undefined,
    duration: i.options.getNumber('duration') ?? undefined,
    size: i.options.getString('size') ?? undefined,
    quality: i.options.getString('quality') ?? undefined,
    depth: i.options.getNumber('depth') ?? undefined,
    format: i.options.getString('format') ?? undefined,
  };
}

export const blend: Command = {
  data: addRenderOptions(
    new SlashCommandBuilder()
      .setName('blend')
      .setDescription('Make a video that turns one prompt into another')
      .addStringOption((o) => o.setName('from').setDescription('Where the video starts, e.g. "a lighthouse at dusk"').setRequired(true).setMaxLength(PROMPT_MAX_LENGTH))
      .addStringOption((o) => o.setName('to').setDescription('Where it ends, e.g. "a city of glass at noon"').setRequired(true).setMaxLength(PROMPT_MAX_LENGTH)),
  ),
  async execute(interaction: ChatInputCommandInteraction, ctx: BotContext) {
    let prompts: string[];
    try {
      // Checked before deferring so a typo gets a private answer at once.
      prompts = [checkPrompt('from', interaction.options.getString('from')), checkPrompt('to', interaction.options.getString('to'))];
    } catch (err) {
      await refuse(interaction, userMessage(err, ctx.log));
      return;
    }
    await interaction.deferReply();
    let params;
    try {
      params = paramsFromChoices(prompts, withServerDefaults(readRenderChoices(interaction), await serverDefaults(ctx, interaction.guildId)));
    } catch (err) {
      await refuse(interaction, userMessage(err, ctx.log));
      return;
    }
    await submitFromInteraction(interaction, ctx, 'blend', params);
  },
};
