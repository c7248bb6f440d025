/**
 * The forms (Discord modals): Extend on a finished video asks for the next prompt(s); /movie without
 * prompts asks for them one per line. Both check what was typed with the farm's validator before
 * answering, so a typo gets a private reply.
 */
import { ActionRowBuilder, ModalBuilder, TextInputBuilder, TextInputStyle, MessageFlags, type ModalSubmitInteraction } from 'discord.js';
import { getJob, LIMITS, parseJobParams } from '../../farm/index.ts';
import type { BotContext } from '../context.ts';
import { userMessage } from '../errors.ts';
import { mayActOn, notYoursText, requesterOf } from '../permissions.ts';
import { DISCORD_MAX_TEXT_INPUT_LENGTH, promptListLength, splitPrompts, type RenderOptions } from '../render-options.ts';
import { refuse, submitFollowUpRender, submitRender } from '../submit.ts';
import { extendFormId, movieFormId, parseFormId } from './custom-id.ts';

const PROMPTS_FIELD = 'prompts';

function promptsInput(label: string, placeholder: string): ActionRowBuilder<TextInputBuilder> {
  const input = new TextInputBuilder()
    .setCustomId(PROMPTS_FIELD)
    .setLabel(label)
    .setStyle(TextInputStyle.Paragraph)
    .setRequired(true)
    .setMaxLength(promptListLength(DISCORD_MAX_TEXT_INPUT_LENGTH))
    .setPlaceholder(placeholder);
  return new ActionRowBuilder<TextInputBuilder>().addComponents(input);
}

export function extendForm(jobId: number): ModalBuilder {
  return new ModalBuilder()
    .setCustomId(extendFormId(jobId))
    .setTitle(`Extend #${jobId}`)
    .addComponents(promptsInput('Next prompt(s), one per line', 'a rainbow over calm water'));
}

/** The /movie form; its id carries the command's other options. Throws RangeError when they do not fit. */
export function movieForm(options: RenderOptions): ModalBuilder {
  return new ModalBuilder()
    .setCustomId(movieFormId(options))
    .setTitle('New movie')
    .addComponents(promptsInput(`Prompts, one per line (${LIMITS.prompts.min} to ${LIMITS.prompts.max})`, 'a lighthouse at dusk\na storm over the sea\na rainbow over calm water'));
}

export async function handleForm(interaction: ModalSubmitInteraction, ctx: BotContext): Promise<void> {
  const route = parseFormId(interaction.customId);
  if (!route) {
    await interaction.reply({ content: 'This form is not recognised any more; run the command again.', flags: MessageFlags.Ephemeral });
    return;
  }
  const prompts = splitPrompts(interaction.fields.getTextInputValue(PROMPTS_FIELD), 'line');
  if (route.kind === 'movie') return submitRender(interaction, ctx, 'movie', prompts, route.options);

  try {
    // The extension's own prompts, checked before answering; the farm checks the whole movie on submission.
    parseJobParams('extend', { prompts });
  } catch (err) {
    return refuse(interaction, userMessage(err, ctx.log));
  }
  // One keyed lookup and the rights before the first response, so a refusal is private.
  const parent = await getJob(ctx.farm, route.jobId);
  if (!parent) return refuse(interaction, `Job #${route.jobId} no longer exists; make a new movie with /movie.`);
  if (!mayActOn(parent, interaction)) return refuse(interaction, notYoursText(parent, requesterOf(interaction, parent), 'extend'));
  await submitFollowUpRender(interaction, ctx, 'extend', parent.id, { prompts });
}
