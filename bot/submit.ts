/**
 * Turning an acknowledged interaction into a queued job and its message. The interaction is
 * deferred before this runs (Discord wants an answer within 3 s, whatever the database does);
 * refusals replace the public "thinking…" with a message only the user sees.
 */
import { ActionRowBuilder, ButtonBuilder, ButtonStyle, type RepliableInteraction, MessageFlags, GuildMember } from 'discord.js';
import { submitJob, setJobMessage } from '../farm/jobs.ts';
import { queuePosition } from '../farm/queue.ts';
import { getGuildSettings } from '../farm/guilds.ts';
import type { RenderChoices } from './options.ts';
import { LIMITS } from '../farm/job-params.ts';
import type { JobKind } from '../db/schema.ts';
import type { Job } from '../farm/types.ts';
import type { BotContext } from './context.ts';
import { buttonId } from './custom-id.ts';
import { userMessage } from './errors.ts';
import { queuedText } from './format.ts';

/** Interaction tokens stop working 15 minutes after the interaction. */
export const INTERACTION_TOKEN_LIFETIME_MS = 15 * 60 * 1000;

export function cancelRow(jobId: number): ActionRowBuilder<ButtonBuilder> {
  return new ActionRowBuilder<ButtonBuilder>().addComponents(new ButtonBuilder().setCustomId(buttonId('cancel', jobId)).setLabel('Cancel').setStyle(ButtonStyle.Secondary));
}

/**
 * A refusal, seen only by the user. After a public deferral the first follow-up would take over the
 * public "thinking…" message, so the placeholder is resolved first, the details follow privately,
 * and then the placeholder is removed.
 */
export async function refuse(interaction: RepliableInteraction, text: string): Promise<void> {
  if (interaction.deferred && !interaction.ephemeral) {
    await interaction.editReply({ content: 'This render could not start; the reason was sent to you privately.', components: [] });
    await interaction.followUp({ content: text, flags: MessageFlags.Ephemeral });
    await interaction.deleteReply().catch(() => undefined);
  } else if (interaction.deferred || interaction.replied) {
    await interaction.editReply({ content: text, components: [] });
  } else {
    await interaction.reply({ content: text, flags: MessageFlags.Ephemeral });
  }
}

/** The server's render defaults (empty outside servers or when none are set). */
export async function serverDefaults(ctx: BotContext, guildId: string | null): Promise<RenderChoices> {
  return guildId ? (await getGuildSettings(ctx.farm, guildId)).defaults : {};
}

export async function submitFromInteraction(
  interaction: RepliableInteraction,
  ctx: BotContext,
  kind: JobKind,
  params: unknown,
  parentJobId?: number,
): Promise<Job | undefined> {
  let job: Job;
  try {
    // Render to fit what this server accepts as an upload (Discord sends the limit with the interaction).
    const limit = interaction.attachmentSizeLimit;
    if (typeof params === 'object' && params !== null && Number.isInteger(limit) && limit > 0) {
      params = { ...(params as Record<string, unknown>), maxBytes: Math.min(limit, LIMITS.maxMaxBytes) };
    }
    const member = interaction.member instanceof GuildMember ? interaction.member : undefined;
    job = await submitJob(ctx.farm, {
      kind,
      userId: interaction.user.id,
      params,
      guildId: interaction.guildId,
      channelId: interaction.channelId,
      interactionToken: interaction.token,
      interactionExpiresAt: new Date(interaction.createdTimestamp + INTERACTION_TOKEN_LIFETIME_MS),
      roleIds: member ? [...member.roles.cache.keys()] : [],
      parentJobId: parentJobId ?? null,
      requireCapableWorker: true,
    });
  } catch (err) {
    await refuse(interaction, userMessage(err, ctx.log));
    return undefined;
  }
  const message = await interaction.editReply({ content: queuedText(job, await queuePosition(ctx.farm, job.id)), components: [cancelRow(job.id)] });
  await setJobMessage(ctx.farm, job.id, { messageId: message.id, channelId: message.channelId });
  return job;
}
