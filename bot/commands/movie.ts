import { ActionRowBuilder, ModalBuilder, SlashCommandBuilder, TextInputBuilder, TextInputStyle, type ChatInputCommandInteraction, type ModalSubmitInteraction, type RepliableInteraction } from 'discord.js';
import { LIMITS } from '../../farm/job-params.ts';
import type { BotContext, Command } from '../context.ts';
import { movieModalId } from '../custom-id.ts';
import { MOVIE_PROMPTS_MAX_LENGTH, PROMPT_MAX_LENGTH, paramsFromChoices, splitPrompts, UserInputError, type RenderChoices, withServerDefaults } from '../options.ts';
import { refuse, serverDefaults, submitFromInteraction } from '../submit.ts';
import { userMessage } from '../errors.ts';
import { addRenderOptions, readRenderChoices } from './blend.ts';

function checkPrompts(prompts: string[]): string[] {
  if (prompts.length < LIMITS.minPrompts || prompts.length > LIMITS.maxPrompts) {
    throw new UserInputError(`A movie needs ${LIMITS.minPrompts} to ${LIMITS.maxPrompts} prompts; you gave ${prompts.length}. Separate them with "|".`);
  }
  const long = prompts.findIndex((p) => p.length > PROMPT_MAX_LENGTH);
  if (long >= 0) throw new UserInputError(`Prompt ${long + 1} is ${prompts[long].length} characters long; keep each under ${PROMPT_MAX_LENGTH}.`);
  return prompts;
}

export const movie: Command = {
  data: addRenderOptions(
    new SlashCommandBuilder()
      .setName('movie')
      .setDescription('Chain several prompts into one seamless video')
      .addStringOption((o) =>
        o.setName('prompts').setDescription(`${LIMITS.minPrompts} to ${LIMITS.maxPrompts} prompts separated by | (leave out to type them in a form)`).setMaxLength(MOVIE_PROMPTS_MAX_LENGTH),
      ),
  ),
  async execute(interaction: ChatInputCommandInteraction, ctx: BotContext) {
    const text = interaction.options.getString('prompts');
    const choices = readRenderChoices(interaction);
    if (text === null) {
      // No prompts given: a form with one prompt per line. Its id carries the other options.
      const compact = Object.fromEntries(Object.entries(choices).filter(([, v]) => v !== undefined)) as Record<string, string | number>;
      let id: string;
      try {
        id = movieModalId(compact);
      } catch {
        await refuse(interaction, 'Those options are too long to carry into the form; give the prompts in the `prompts` option instead.');
        return;
      }
      const input = new TextInputBuilder()
        .setCustomId('prompts')
        .setLabel(`Prompts, one per line (${LIMITS.minPrompts} to ${LIMITS.maxPrompts})`)
        .setStyle(TextInputStyle.Paragraph)
        .setRequired(true)
        .setMaxLength(MOVIE_PROMPTS_MAX_LENGTH)
        .setPlaceholder('a lighthouse at dusk\na storm over the sea\na rainbow over calm water');
      await interaction.showModal(new ModalBuilder().setCustomId(id).setTitle('New movie').addComponents(new ActionRowBuilder<TextInputBuilder>().addComponents(input)));
      return;
    }
    let prompts: string[];
    try {
      prompts = checkPrompts(splitPrompts(text, '|'));
    } catch (err) {
      await refuse(interaction, userMessage(err, ctx.log));
      return;
    }
    await interaction.deferReply();
    await submitMovie(interaction, ctx, prompts, choices);
  },
};

/** The movie form was submitted. */
export async function submitMovieForm(interaction: ModalSubmitInteraction, options: Record<string, string | number>, ctx: BotContext): Promise<void> {
  let prompts: string[];
  try {
    prompts = checkPrompts(splitPrompts(interaction.fields.getTextInputValue('prompts'), 'line'));
  } catch (err) {
    await refuse(interaction, userMessage(err, ctx.log));
    return;
  }
  await interaction.deferReply();
  await submitMovie(interaction, ctx, prompts, options as RenderChoices);
}

async function submitMovie(interaction: RepliableInteraction, ctx: BotContext, prompts: string[], choices: RenderChoices): Promise<void> {
  let params;
  try {
    params = paramsFromChoices(prompts, withServerDefaults(choices, await serverDefaults(ctx, interaction.guildId)));
  } catch (err) {
    await refuse(interaction, userMessage(err, ctx.log));
    return;
  }
  await submitFromInteraction(interaction, ctx, 'movie', params);
}
