/** The button rows on job messages (what pressing them does is in buttons.ts). */
import { ActionRowBuilder, ButtonBuilder, ButtonStyle } from 'discord.js';
import { type FollowUpKind, followUpsFor, type Job } from '../../farm/index.ts';
import { buttonId } from './custom-id.ts';

/** On a queued or rendering job. */
export function cancelRow(jobId: number): ActionRowBuilder<ButtonBuilder> {
  return new ActionRowBuilder<ButtonBuilder>().addComponents(new ButtonBuilder().setCustomId(buttonId('cancel', jobId)).setLabel('Cancel').setStyle(ButtonStyle.Secondary));
}

/** Each follow-up's button: its label and emoji (a 🔍/🔁 reaction is the button's emoji, bot/components/reactions.ts). */
export const FOLLOW_UP_BUTTONS: Readonly<Record<FollowUpKind, { label: string; emoji: string; style: ButtonStyle }>> = {
  upscale: { label: 'Upscale', emoji: '🔍', style: ButtonStyle.Primary },
  reroll: { label: 'Re-roll', emoji: '🔁', style: ButtonStyle.Secondary },
  extend: { label: 'Extend', emoji: '➕', style: ButtonStyle.Secondary },
};

/**
 * On a finished video: a button for each follow-up the job can have (the farm's followUpsFor, so a
 * variation animation gets only Re-roll, an upscale no second Upscale, a movie with the most
 * prompts a movie may have no Extend). `job.params` must list the whole movie's prompts
 * (withWholeMovie: an extension's own list only its new ones). On an upscale, Re-roll and Extend
 * act on the video it upscaled (the farm's submitFollowUp goes back to it). Undefined when there
 * are none (a row may not be empty).
 */
export function finishedRow(job: Pick<Job, 'id' | 'kind' | 'params' | 'parentJobId'>): ActionRowBuilder<ButtonBuilder> | undefined {
  const kinds = followUpsFor(job);
  if (kinds.length === 0) return undefined;
  return new ActionRowBuilder<ButtonBuilder>().addComponents(
    kinds.map((kind) => {
      const b = FOLLOW_UP_BUTTONS[kind];
      return new ButtonBuilder().setCustomId(buttonId(kind, job.id)).setLabel(b.label).setEmoji(b.emoji).setStyle(b.style);
    }),
  );
}
