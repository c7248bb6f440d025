import { SlashCommandBuilder, type ChatInputCommandInteraction } from 'discord.js';
import { LIMITS } from '../../farm/index.ts';
import { autocompleteModel } from '../autocomplete.ts';
import type { BotContext, Command } from '../context.ts';
import { movieForm } from '../components/forms.ts';
import { postingRefusal } from '../permissions.ts';
import { addRenderOptions, DISCORD_MAX_OPTION_LENGTH, promptListLength, readRenderOptions, splitPrompts } from '../render-options.ts';
import { refuse, submitRender } from '../submit.ts';

/** What the `prompts` option splits on. */
const SEPARATOR = '|';

/**
 * Too few prompts where the one given looks like a list split on something else (a comma, a
 * semicolon, a new line): the farm's rule, and what to split on instead. Undefined otherwise (the
 * farm refuses the rest in its own words).
 */
export function separatorHint(prompts: string[]): string | undefined {
  if (prompts.length !== 1 || prompts.length >= LIMITS.prompts.min || !/[,;\n]/.test(prompts[0])) return undefined;
  return `A movie needs ${LIMITS.prompts.min} to ${LIMITS.prompts.max} prompts (got 1): separate prompts with ${SEPARATOR}, e.g. \`a lighthouse ${SEPARATOR} a storm at sea ${SEPARATOR} a calm dawn\`.`;
}

export const movie: Command = {
  data: addRenderOptions(
    new SlashCommandBuilder()
      .setName('movie')
      .setDescription('Chain several prompts into one seamless video')
      .addStringOption((o) =>
        o
          .setName('prompts')
          .setDescription(`${LIMITS.prompts.min} to ${LIMITS.prompts.max} prompts separated by ${SEPARATOR} (leave out to type them in a form)`)
          .setMaxLength(promptListLength(DISCORD_MAX_OPTION_LENGTH)),
      ),
  ),
  autocomplete: autocompleteModel,
  async execute(interaction: ChatInputCommandInteraction, ctx: BotContext) {
    const text = interaction.options.getString('prompts');
    const options = readRenderOptions(interaction);
    if (text !== null) {
      const prompts = splitPrompts(text, SEPARATOR);
      const hint = separatorHint(prompts);
      if (hint) return refuse(interaction, hint);
      return submitRender(interaction, ctx, 'movie', prompts, options);
    }
    // Before the form, so nobody types prompts for a movie that could not be posted here.
    const cannotPost = postingRefusal(interaction);
    if (cannotPost) return refuse(interaction, cannotPost);
    // No prompts given: a form with one prompt per line, whose id carries the other options.
    let form;
    try {
      form = movieForm(options);
    } catch {
      return refuse(interaction, 'Those options are too long to carry into the form; give the prompts in the `prompts` option instead.');
    }
    await interaction.showModal(form);
  },
};
