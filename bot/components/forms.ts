/**
 * The forms (Discord modals): Extend on a finished video asks for the next prompt(s); /movie without
 * prompts asks for them one per line. Both check what was typed with the farm's validator before
 * answering, so a typo gets a private reply.
 */
import { ActionRowBuilder, ModalBuilder, TextInputBuilder, TextInputStyle, MessageFlags, type ModalSubmitInteraction } from 'discord.js';
import { followUpParams, getJob, LIMITS, parseJobParams } from '../../farm/index.ts';
import type { BotContext } from '../context.ts';
import { userMessage } from '../errors.ts';
import { withWholeMovie } from '../format.ts';
import { mayActOn, noJobOfYoursText } from '../permissions.ts';
import { DISCORD_MAX_TEXT_INPUT_LENGTH, promptListLength, splitPrompts, type RenderOptions } from '../render-options.ts';
import { beforeAnswer, refuse, submitFollowUpRender, submitRender, uploadLimit } from '../submit.ts';
import { extendFormId, movieFormId, parseFormId } from './custom-id.ts';

const PROMPTS_FIELD = 'prompts';

function promptsInput(label: string, placeholder: string, maxLength = promptListLength(DISCORD_MAX_TEXT_INPUT_LENGTH)): ActionRowBuilder<TextInputBuilder> {
  const input = new TextInputBuilder()
    .setCustomId(PROMPTS_FIELD)
    .setLabel(label)
    .setStyle(TextInputStyle.Paragraph)
    .setRequired(true)
    .setMaxLength(maxLength)
    .setPlaceholder(placeholder);
  return new ActionRowBuilder<TextInputBuilder>().addComponents(input);
}

/**
 * The Extend form of job `jobId`, whose movie has room for `promptsLeft` more prompts
 * (LIMITS.prompts.max minus its whole movie's): the label says how many, and the field takes no
 * more text than that many prompts (one per line).
 */
export function extendForm(jobId: number, promptsLeft: number): ModalBuilder {
  const left = Math.max(1, Math.min(promptsLeft, LIMITS.prompts.max - LIMITS.prompts.min));
  const label = left === 1 ? 'Next prompt (room for one more)' : `Next prompts, one per line (at most ${left})`;
  const maxLength = Math.min(DISCORD_MAX_TEXT_INPUT_LENGTH, left * (LIMITS.promptLength.max + '\r\n'.length));
  return new ModalBuilder()
    .setCustomId(extendFormId(jobId))
    .setTitle(`Extend #${jobId}`)
    .addComponents(promptsInput(label, 'a rainbow over calm water', maxLength));
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
  // One keyed lookup and the rights before the first response, so a refusal is private (in time
  // for Discord's 3 s: beforeAnswer).
  const { parent, whole } = await beforeAnswer(async () => {
    const found = await getJob(ctx.farm, route.jobId);
    return { parent: found, whole: found && (await mayActOn(found, interaction)) ? await withWholeMovie(ctx.farm, found) : undefined };
  });
  // One answer for a job that does not exist and one they may not act on (noJobOfYoursText).
  if (!parent || !whole) return refuse(interaction, noJobOfYoursText(route.jobId, 'extend'));
  try {
    // The whole movie's rule (room for these prompts, not a variation), privately before answering.
    followUpParams('extend', whole.params, { prompts });
  } catch (err) {
    return refuse(interaction, userMessage(err, ctx.log));
  }
  // Rendered for the upload limit where the form was sent, not the parent's.
  await submitFollowUpRender(interaction, ctx, 'extend', parent.id, { prompts, ...uploadLimit(interaction) });
}
