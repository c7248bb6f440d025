/**
 * Who may act on a job (cancel it, re-roll, upscale or extend it): its owner, or a moderator of
 * the job's own server who can see its channel (a private thread: who has joined it, or has Manage
 * Threads; rightsOf). Moderator rights (Manage Messages, with View
 * Channel) count only when the request comes from the server the job was made in: an admin of another server the bot is in has no say over it,
 * and neither has anyone in a DM. Where the request comes from the job's own channel, Discord's
 * member permissions for that channel (overwrites included) decide; from another channel of the
 * same server, the member's permissions in the job's channel as computed from the cached server.
 */
import { ChannelType, DiscordAPIError, GuildMember, PermissionFlagsBits, type AnyThreadChannel, type Interaction, type PermissionsBitField } from 'discord.js';
import type { Job } from '../farm/index.ts';
import { AccessUncheckedError } from './errors.ts';
import { within } from './within.ts';

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
 * no right), or 'elsewhere' (another server, a DM, or a channel of the job's server the requester
 * cannot see: nothing about the job may be shown).
 */
export function rightsOn(job: JobPlace, who: Requester): Rights {
  if (job.userId === who.userId) return 'owner';
  if (!job.guildId || who.guildId !== job.guildId) return 'elsewhere';
  const granted = who.permissionsInJobChannel;
  // Discord grants nothing in a channel one cannot see; discord.js's permissionsFor does not apply
  // that rule, so Manage Messages from a role would count in a private channel without it.
  if (granted && !granted.has(PermissionFlagsBits.ViewChannel)) return 'elsewhere';
  return granted?.has(PermissionFlagsBits.ManageMessages) ? 'moderator' : 'none';
}

/** The requester behind an interaction; no network calls (the server's channels and roles are cached with the Guilds intent). */
function requesterOf(interaction: Interaction, job: JobPlace): Requester {
  const base = { userId: interaction.user.id, guildId: interaction.guildId, channelId: interaction.channelId };
  if (!interaction.inGuild() || interaction.guildId !== job.guildId) return { ...base, permissionsInJobChannel: null };
  if (!job.channelId || job.channelId === interaction.channelId) return { ...base, permissionsInJobChannel: interaction.memberPermissions };
  const channel = interaction.guild?.channels.cache.get(job.channelId);
  const member = interaction.member instanceof GuildMember ? interaction.member : undefined;
  return { ...base, permissionsInJobChannel: channel && member ? channel.permissionsFor(member) : null };
}

/** How long the one Discord call a moderator's rights may need (have they joined the private thread?) may take. */
export const THREAD_ACCESS_CHECK_MS = 1500;

/**
 * rightsOn for the requester behind `interaction`, with the one thing the cache cannot tell: in a
 * private thread only those who have joined it and those with Manage Threads see it, while
 * discord.js gives a thread its parent's permissions and, without the privileged Guild Members
 * intent, does not hear who joins or leaves. So a moderator by those permissions, asking from
 * another channel about a job made in a private thread, without Manage Threads, is looked up in the
 * thread (one call, only on this rare path, at most `waitMs`): not joined is 'elsewhere'; an answer
 * that does not come throws AccessUncheckedError (nothing is done). From the job's own channel
 * Discord's permissions decide: being there, they see it.
 */
export async function rightsOf(job: JobPlace, interaction: Interaction, waitMs = THREAD_ACCESS_CHECK_MS): Promise<Rights> {
  const who = requesterOf(interaction, job);
  const rights = rightsOn(job, who);
  if (rights !== 'moderator' || !job.channelId || job.channelId === interaction.channelId) return rights;
  const channel = interaction.guild?.channels.cache.get(job.channelId);
  if (channel?.type !== ChannelType.PrivateThread || who.permissionsInJobChannel?.has(PermissionFlagsBits.ManageThreads)) return rights;
  return (await hasJoined(channel, who.userId, waitMs)) ? rights : 'elsewhere';
}

/** Whether `userId` has joined `thread` (Discord: 404 Unknown Member if not); AccessUncheckedError when Discord does not say within `ms`. */
async function hasJoined(thread: AnyThreadChannel, userId: string, ms: number): Promise<boolean> {
  try {
    await within(thread.members.fetch({ member: userId, force: true, cache: false }), ms, (): never => {
      throw new AccessUncheckedError();
    });
    return true;
  } catch (err) {
    if (err instanceof DiscordAPIError && err.status === 404) return false;
    throw err instanceof AccessUncheckedError ? err : new AccessUncheckedError();
  }
}

export async function mayActOn(job: JobPlace, interaction: Interaction): Promise<boolean> {
  const rights = await rightsOf(job, interaction);
  return rights === 'owner' || rights === 'moderator';
}

/**
 * The one private answer to anyone who names or presses job `jobId` and may not act on it, whether
 * the job does not exist (never did, or deleted since) or is not theirs to act on: the same words
 * either way, so no one can probe which job numbers exist or whose they are (another server's, a
 * channel they cannot see). An owner acting on their own job gets that job's own answers instead.
 */
export function noJobOfYoursText(jobId: number, what: string): string {
  return `Job #${jobId} isn't one you can ${what}: it isn't yours, or it no longer exists. Only a job's owner (or a moderator who can see the channel it was made in) can ${what} it; \`/budget\` lists your active jobs, and /blend makes a new one.`;
}

/**
 * The private answer to someone who can see a job and may not act on it: they pressed a button on
 * its own message, or reacted to its video (so it exists, and they know it). Says whose it is to
 * act on and what they can do instead; nothing more about the job. A job number typed into a
 * command, or replayed on another message, gets noJobOfYoursText.
 */
export function onlyItsOwnerText(what: string): string {
  if (what === 'cancel') return 'Only the person who asked for this render (or a moderator) can cancel it.';
  return `Only the person who made this video (or a moderator) can ${what} it; make your own with /blend, /movie or /vary.`;
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

/**
 * What the bot needs besides to answer a 🔍/🔁 reaction: its "queued" message is a reply to the
 * video, and Discord lets a bot reply only where it may read the message history.
 */
export const REACTION_PERMISSIONS: ReadonlyArray<{ flag: bigint; name: string }> = [...POSTING_PERMISSIONS, { flag: PermissionFlagsBits.ReadMessageHistory, name: 'Read Message History' }];

/**
 * The permissions `required` as they apply in `channel`: in a thread (a forum's posts too) Discord
 * checks Send Messages in Threads where it checks Send Messages elsewhere (there Send Messages is
 * the parent's "post a new message", in a forum "Create Posts"), so that one takes its place.
 * Elsewhere, or when the channel is not known, `required` as it is.
 */
export function permissionsIn(channel: { isThread(): boolean } | null | undefined, required: ReadonlyArray<{ flag: bigint; name: string }>): ReadonlyArray<{ flag: bigint; name: string }> {
  if (!channel?.isThread()) return required;
  return required.map((p) => (p.flag === PermissionFlagsBits.SendMessages ? { flag: PermissionFlagsBits.SendMessagesInThreads, name: 'Send Messages in Threads' } : p));
}

/**
 * What the bot is invited with (its OAuth2 bot permissions): all it needs in a channel, to post
 * renders and to answer 🔍/🔁 reactions (REACTION_PERMISSIONS), in threads too. The setup steps `npm start` prints
 * without a token are made from this list, and the README's invite step names the same (a test
 * compares them).
 */
export const INVITE_PERMISSIONS: ReadonlyArray<{ flag: bigint; name: string }> = [
  ...REACTION_PERMISSIONS,
  // Renders asked for in threads and forum posts (permissionsIn: there it replaces Send Messages).
  { flag: PermissionFlagsBits.SendMessagesInThreads, name: 'Send Messages in Threads' },
];

/** The `permissions` value of an OAuth2 invite URL granting `list` (Discord's bit field, in decimal). */
export function permissionsInteger(list: ReadonlyArray<{ flag: bigint }>): string {
  return list.reduce((bits, p) => bits | p.flag, 0n).toString();
}

/** "A, B and C". */
export function listOfNames(names: readonly string[]): string {
  return names.length <= 1 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}

/** Where a render was asked for, as a refusal names it: "this channel" (a command's own reply) or "<#id>" (a DM about a reaction). */
export interface RefusalPlace {
  /** "in this channel" or "in <#id>". */
  in: string;
  /** "here" or "there". */
  here: string;
  /** What else the member can do: "use the command in a channel where I have them". */
  instead: string;
}

const IN_THIS_CHANNEL: RefusalPlace = { in: 'in this channel', here: 'here', instead: 'or use the command in a channel where I have them' };

/**
 * The refusal for a render in a channel where the bot lacks some of `required` (its permissions
 * there: `granted`), so nothing is queued or charged for a video that could not be posted;
 * undefined when it has them all. Names what is missing and the whole list to ask an admin for.
 */
export function missingPermissionsRefusal(
  granted: Readonly<PermissionsBitField>,
  required: ReadonlyArray<{ flag: bigint; name: string }> = POSTING_PERMISSIONS,
  place: RefusalPlace = IN_THIS_CHANNEL,
): string | undefined {
  const missing = required.filter((p) => !granted.has(p.flag)).map((p) => `**${p.name}**`);
  if (!missing.length) return undefined;
  return (
    `I can't post videos ${place.in}: I'm missing the ${listOfNames(missing)} permission${missing.length === 1 ? '' : 's'} ${place.here}, so nothing was queued or charged. ` +
    `Ask a server admin to give me ${listOfNames(required.map((p) => p.name))} ${place.in} (Edit Channel → Permissions), ${place.instead}.`
  );
}

/**
 * The private refusal for a render asked for in a server channel where the bot lacks a posting
 * permission (Discord sends the bot's permissions in that channel with every interaction; in a
 * thread Send Messages in Threads counts, not Send Messages: permissionsIn), so nothing is queued or
 * charged for a video that could not be posted; undefined when it has them all, or outside a server.
 */
export function postingRefusal(interaction: {
  inGuild(): boolean;
  appPermissions: Readonly<PermissionsBitField> | null;
  channel: { isThread(): boolean } | null;
}): string | undefined {
  const granted = interaction.appPermissions;
  if (!interaction.inGuild() || !granted) return undefined;
  return missingPermissionsRefusal(granted, permissionsIn(interaction.channel, POSTING_PERMISSIONS));
}

/**
 * The role ids of the member behind an interaction in a server, for the budget (a server's role
 * overrides): from the cached GuildMember, or from the raw member Discord sent when the server is
 * not cached (its `roles`, plus the server's @everyone role, which a cached member lists too).
 * Undefined outside a server, or when Discord sent no member: then the roles are not known, which
 * the farm treats so (no refill is applied with limits that may be less than the member's).
 */
export function interactionRoleIds(interaction: Pick<Interaction, 'guildId' | 'member'>): string[] | undefined {
  const { guildId, member } = interaction;
  if (!guildId || !member) return undefined;
  if (member instanceof GuildMember) return [...member.roles.cache.keys()];
  return Array.isArray(member.roles) ? [...new Set([guildId, ...member.roles])] : undefined;
}
