/** The button rows on job messages (what pressing them does is in buttons.ts). */
import { ActionRowBuilder, ButtonBuilder, ButtonStyle } from 'discord.js';
import { buttonId } from './custom-id.ts';

/** On a queued or rendering job. */
export function cancelRow(jobId: number): ActionRowBuilder<ButtonBuilder> {
  return new ActionRowBuilder<ButtonBuilder>().addComponents(new ButtonBuilder().setCustomId(buttonId('cancel', jobId)).setLabel('Cancel').setStyle(ButtonStyle.Secondary));
}

/** On a finished video. */
export function finishedRow(jobId: number): ActionRowBuilder<ButtonBuilder> {
  return new ActionRowBuilder<ButtonBuilder>().addComponents(
    new ButtonBuilder().setCustomId(buttonId('upscale', jobId)).setLabel('Upscale').setEmoji('🔍').setStyle(ButtonStyle.Primary),
    new ButtonBuilder().setCustomId(buttonId('reroll', jobId)).setLabel('Re-roll').setEmoji('🔁').setStyle(ButtonStyle.Secondary),
    new ButtonBuilder().setCustomId(buttonId('extend', jobId)).setLabel('Extend').setEmoji('➕').setStyle(ButtonStyle.Secondary),
  );
}
