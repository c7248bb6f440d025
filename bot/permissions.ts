/**
 * Who may act on a job (cancel it, re-roll, upscale or extend it): its owner, or a moderator of
 * the job's own server. Moderator rights (Manage Messages) count only when the request comes from
 * the server the job was made in: an admin of another server the bot is in has no say over it,
 * and neither has anyone in a DM. Where the request comes from the job's own channel, Discord's
 * member permissions for that channel (overwrites included) decide; from another channel of the
 * same server, the member's permissions in the job's channel as computed from the cached server.
 */
import { GuildMember, PermissionFlagsBits, type Interaction, type PermissionsBitField } from 'discord.js';
import type { Job } from '../farm/index.ts';

export type JobPlace = Pick<Job, 'id' | 'userId' | 'guildId' | 'channelId'>;

/** Where a request to act on a job comes from, and the member's permissions there. */
export interface Requester {
  userId: string;
  guildId: string | null;
  channelId: string | null;
  /** The member's permissions in the job's channel; null when unknown (then only the owner may act). */
  permissionsInJobChannel: Readonly<PermissionsBitField> | null;
}

export type Rights = 'owner' | 'moderator' | 'none' | 'elsewhere';

/**
 * 'owner', 'moderator' (Manage Messages in the job's own server and channel), 'none' (same server,
 * no right), or 'elsewhere' (another server or a DM: nothing about the job may be shown).
 */
export function rightsOn(job: JobPlace, who: Requester): Rights {
  if (job.userId === who.userId) return 'owner';
  if (!job.guildId || who.guildId !== job.guildId) return 'elsewhere';
  return who.permissionsInJobChannel?.has(PermissionFlagsBits.ManageMessages) ? 'moderator' : 'none';
}

/** The requester behind an interaction; no network calls (the server's channels and roles are cached with the Guilds intent). */
export function requesterOf(interaction: Interaction, job: JobPlace): Requester {
  const base = { userId: interaction.user.id, guildId: interaction.guildId, channelId: interaction.channelId };
  if (!interaction.inGuild() || interaction.guildId !== job.guildId) return { ...base, permissionsInJobChannel: null };
  if (!job.channelId || job.channelId === interaction.channelId) return { ...base, permissionsInJobChannel: interaction.memberPermissions };
  const channel = interaction.guild?.channels.cache.get(job.channelId);
  const member = interaction.member instanceof GuildMember ? interaction.member : undefined;
  return { ...base, permissionsInJobChannel: channel && member ? channel.permissionsFor(member) : null };
}

export function mayActOn(job: JobPlace, interaction: Interaction): boolean {
  const rights = rightsOn(job, requesterOf(interaction, job));
  return rights === 'owner' || rights === 'moderator';
}

/**
 * The private refusal for someone who may not act on `job`. From another server or a DM it says
 * nothing about the job (not whose it is, not what it shows); in the job's server it names the owner.
 */
export function notYoursText(job: JobPlace, who: Requester, what: string): string {
  if (rightsOn(job, who) === 'elsewhere') {
    return `Job #${job.id} is not yours, so you can't ${what} it; only its owner (or a moderator of the server it was made in) can. Make your own with /blend.`;
  }
  return `That job belongs to <@${job.userId}>; only they (or a moderator) can ${what} it. Make your own with /blend.`;
}

/**
 * What the bot needs in a channel to keep a job's message there: see the channel, post (the
 * fallback message once the interaction's token has expired), upload the video, and show the
 * progress preview (an embedded picture). Names as Discord's settings show them.
 */
export const POSTING_PERMISSIONS: ReadonlyArray<{ flag: bigint; name: string }> = [
  { flag: PermissionFlagsBits.ViewChannel, name: 'View Channel' },
  { flag: PermissionFlagsBits.SendMessages, name: 'Send Messages' },
  { flag: PermissionFlagsBits.AttachFiles, name: 'Attach Files' },
  { flag: PermissionFlagsBits.EmbedLinks, name: 'Embed Links' },
];

/** "A, B and C". */
export function listOfNames(names: readonly string[]): string {
  return names.length <= 1 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}

/**
 * The private refusal for a render asked for in a server channel where the bot lacks a posting
 * permission (Discord sends the bot's permissions in that channel with every interaction), so
 * nothing is queued or charged for a video that could not be posted; undefined when it has them
 * all, or outside a server.
 */
export function postingRefusal(interaction: { inGuild(): boolean; appPermissions: Readonly<PermissionsBitField> | null }): string | undefined {
  const granted = interaction.appPermissions;
  if (!interaction.inGuild() || !granted) return undefined;
  const missing = POSTING_PERMISSIONS.filter((p) => !granted.has(p.flag)).map((p) => `**${p.name}**`);
  if (!missing.length) return undefined;
  return (
    `I can't post videos in this channel: I'm missing the ${listOfNames(missing)} permission${missing.length === 1 ? '' : 's'} here, so nothing was queued or charged. ` +
    `Ask a server admin to give me ${listOfNames(POSTING_PERMISSIONS.map((p) => p.name))} in this channel (Edit Channel → Permissions), or use the command in a channel where I have them.`
  );
}
