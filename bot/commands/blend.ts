import { SlashCommandBuilder, type ChatInputCommandInteraction } from 'discord.js';
import type { BotContext, Command } from '../context.ts';
import { addRenderOptions, promptOption, readRenderOptions } from '../render-options.ts';
import { submitRender } from '../submit.ts';

export const blend: Command = {
  data: addRenderOptions(
    new SlashCommandBuilder()
      .setName('blend')
      .setDescription('Make a video that turns one prompt into another')
      .addStringOption((o) => promptOption(o, 'from', 'Where the video starts, e.g. "a lighthouse at dusk"').setRequired(true))
      .addStringOption((o) => promptOption(o, 'to', 'Where it ends, e.g. "a city of glass at noon"').setRequired(true)),
  ),
  async execute(interaction: ChatInputCommandInteraction, ctx: BotContext) {
    const prompts = [interaction.options.getString('from', true), interaction.options.getString('to', true)];
    await submitRender(interaction, ctx, 'blend', prompts, readRenderOptions(interaction), { 'prompt 1': 'from', 'prompt 2': 'to' });
  },
};
