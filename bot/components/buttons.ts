/**
 * The buttons on job messages (built in rows.ts): Upscale, Re-roll, Extend and Cancel. The job is
 * looked up and the presser's rights checked before anything is answered, so a refusal is a private
 * reply from the first response (nobody else in the channel sees a "thinking…" flash).
 */
import { MessageFlags, type ButtonInteraction } from 'discord.js';
import { followUpRefusal, getJob, LIMITS } from '../../farm/index.ts';
import type { BotContext } from '../context.ts';
import { cancelJobFor } from '../commands/cancel.ts';
import { withWholeMovie } from '../format.ts';
import { noJobOfYoursText, onlyItsOwnerText, rightsOf } from '../permissions.ts';
import { beforeAnswer, FOLLOW_UP_VERBS, submitFollowUpRender, uploadLimit } from '../submit.ts';
import { parseButtonId, type ButtonAction } from './custom-id.ts';
import { extendForm } from './forms.ts';

const VERBS: Record<ButtonAction, string> = { ...FOLLOW_UP_VERBS, cancel: 'cancel' };

export async function handleButton(interaction: ButtonInteraction, ctx: BotContext): Promise<void> {
  const parsed = parseButtonId(interaction.customId);
  if (!parsed) {
    await interaction.reply({ content: 'This button is not recognised any more; run the command again.', flags: MessageFlags.Ephemeral });
    return;
  }
  const { action, jobId } = parsed;
  // One keyed lookup, then the rights: all a refusal needs, before the first response (in time for
  // Discord's 3 s: beforeAnswer). The rule counts the whole movie's prompts; an extension's own
  // parameters list only its new ones.
  const { job, rights, whole } = await beforeAnswer(async () => {
    const found = await getJob(ctx.farm, jobId);
    const rights = found && (await rightsOf(found, interaction));
    const allowed = rights === 'owner' || rights === 'moderator';
    return { job: found, rights, whole: found && allowed && action === 'extend' ? await withWholeMovie(ctx.farm, found) : found };
  });
  if (!job || !whole || (rights !== 'owner' && rights !== 'moderator')) {
    // Pressed on the job's own message by a member of its server who can see its channel: the job
    // is in front of them, so they are told whose it is (its message may not be recorded yet, a
    // moment after it is shown: then any message in the job's channel). Anyone else (a job id
    // replayed on another message, another server, a hidden channel) gets the one answer for a job
    // that does not exist and one they may not act on (noJobOfYoursText).
    const onItsMessage = job?.messageId ? job.messageId === interaction.message.id : job?.channelId === interaction.channelId;
    const seen = job !== undefined && rights === 'none' && onItsMessage;
    await interaction.reply({ content: seen ? onlyItsOwnerText(VERBS[action]) : noJobOfYoursText(jobId, VERBS[action]), flags: MessageFlags.Ephemeral });
    return;
  }
  // An older message may still carry a button this job cannot use (e.g. Extend on a variation
  // animation, or on a movie that has the most prompts a movie may have).
  const refusal = action === 'cancel' ? undefined : followUpRefusal(action, whole);
  if (refusal) {
    await interaction.reply({ content: refusal, flags: MessageFlags.Ephemeral });
    return;
  }
  if (action === 'extend') {
    // A form must be the first answer; the job is checked again when it comes back. It asks for
    // no more prompts than the movie has room for.
    await interaction.showModal(extendForm(jobId, LIMITS.prompts.max - whole.params.prompts.length));
    return;
  }
  if (action === 'cancel') {
    await interaction.deferReply({ flags: MessageFlags.Ephemeral });
    await cancelJobFor(interaction, ctx, job);
    return;
  }
  // Rendered for the upload limit where the button was pressed (a server's limit drops when its boost lapses), not the parent's.
  await submitFollowUpRender(interaction, ctx, action, job.id, uploadLimit(interaction));
}
