/**
 * Autocomplete (Discord suggests values while a member types into an option): the `model` option of
 * /blend, /movie and /settings defaults lists the models online workers offer (farm offeredModels)
 * that render transitions from text, matching what was typed. A command answers its own options'
 * autocomplete (Command.autocomplete, routed in bot.ts); the answer always comes within Discord's
 * 3 s and never fails: an empty list when the farm is slow or its database fails (logged).
 */
import type { ApplicationCommandOptionChoiceData, AutocompleteInteraction } from 'discord.js';
import { loggableError, type OfferedModel } from '../farm/index.ts';
import type { BotContext } from './context.ts';
import { headOf } from './format.ts';
import { recentOfferedModels } from './offered-models.ts';
import { LOOKUP_BEFORE_ANSWER_MS } from './submit.ts';
import { within } from './within.ts';

/** The most choices Discord shows (and accepts) in an autocomplete answer. */
export const MAX_AUTOCOMPLETE_CHOICES = 25;
/** The longest name of a choice Discord accepts. */
const MAX_CHOICE_NAME_LENGTH = 100;

/** "2 GPU workers", "1 CPU worker", "3 workers (1 GPU, 2 CPU)": where a model runs, as /queue counts workers. */
export function workerCountText(model: Pick<OfferedModel, 'workers' | 'devices'>): string {
  const { GPU, CPU, other } = model.devices;
  const plural = model.workers === 1 ? 'worker' : 'workers';
  const kinds = [GPU && `${GPU} GPU`, CPU && `${CPU} CPU`, other && `${other} other`].filter(Boolean);
  if (GPU === model.workers) return `${GPU} GPU ${plural}`;
  if (CPU === model.workers) return `${CPU} CPU ${plural}`;
  return kinds.length > 1 ? `${model.workers} ${plural} (${kinds.join(', ')})` : `${model.workers} ${plural}`;
}

/** "sdxl-turbo · 2 GPU workers", a long id cut so the name fits Discord's 100 characters. */
export function modelChoiceName(model: Pick<OfferedModel, 'id' | 'workers' | 'devices'>): string {
  const where = ` · ${workerCountText(model)}`;
  const room = MAX_CHOICE_NAME_LENGTH - where.length;
  return `${model.id.length > room ? `${headOf(model.id, room - 1)}…` : model.id}${where}`;
}

/**
 * The choices for a `model` option: the models that render transitions from text (whether pictures
 * will be attached is not known while the member types), whose id holds `typed` (any case), at
 * most MAX_AUTOCOMPLETE_CHOICES, named with where they run and valued with their id.
 */
export function modelChoices(models: readonly OfferedModel[], typed: string): ApplicationCommandOptionChoiceData<string>[] {
  const wanted = typed.trim().toLowerCase();
  return models
    .filter((m) => m.abilities.includes('text') && m.id.toLowerCase().includes(wanted))
    .slice(0, MAX_AUTOCOMPLETE_CHOICES)
    .map((m) => ({ name: modelChoiceName(m), value: m.id }));
}

/**
 * Answers an autocomplete with `choices()`, or with none when that fails or takes longer than
 * LOOKUP_BEFORE_ANSWER_MS (Discord drops an answer after 3 s); what went wrong is logged, the
 * member sees an empty list, and nothing is thrown.
 */
export async function answerAutocomplete(interaction: AutocompleteInteraction, ctx: BotContext, choices: () => Promise<ApplicationCommandOptionChoiceData[]>): Promise<void> {
  let found: ApplicationCommandOptionChoiceData[];
  try {
    found = await within(choices(), LOOKUP_BEFORE_ANSWER_MS, () => {
      ctx.log(`[bot] autocomplete in /${interaction.commandName}: the farm did not answer within ${LOOKUP_BEFORE_ANSWER_MS} ms; no choices shown`);
      return [];
    });
  } catch (err) {
    ctx.log(`[bot] autocomplete in /${interaction.commandName} failed; no choices shown: ${loggableError(err)}`);
    found = [];
  }
  await interaction.respond(found).catch((err: unknown) => ctx.log(`[bot] autocomplete in /${interaction.commandName} could not be answered: ${loggableError(err)}`));
}


/** The autocomplete of a command whose only autocomplete option is `model` (Command.autocomplete). */
export function autocompleteModel(interaction: AutocompleteInteraction, ctx: BotContext): Promise<void> {
  const typed = String(interaction.options.getFocused());
  return answerAutocomplete(interaction, ctx, async () => modelChoices(await recentOfferedModels(ctx.farm), typed));
}
