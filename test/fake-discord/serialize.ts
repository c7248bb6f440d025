/** Turns the fake's records into the JSON shapes Discord's API v10 sends. */
import { ChannelType } from './protocol.ts';
import type { FakeChannel, FakeGuild, FakeMember, FakeRole, FakeUser, StoredAttachment, StoredMessage } from './model.ts';

export type Json = Record<string, unknown>;

export function apiUser(user: FakeUser): Json {
  return {
    id: user.id,
    username: user.username,
    discriminator: '0',
    global_name: user.globalName,
    avatar: null,
    bot: user.bot || undefined,
    system: false,
    public_flags: 0,
    flags: 0,
    banner: null,
    accent_color: null,
    avatar_decoration_data: null,
    collectibles: null,
    primary_guild: null,
  };
}

export function apiRole(role: FakeRole): Json {
  return {
    id: role.id,
    name: role.name,
    color: role.color,
    colors: { primary_color: role.color, secondary_color: null, tertiary_color: null },
    hoist: false,
    icon: null,
    unicode_emoji: null,
    position: role.position,
    permissions: role.permissions.toString(),
    managed: role.botId !== null,
    mentionable: false,
    flags: 0,
    ...(role.botId ? { tags: { bot_id: role.botId } } : {}),
  };
}

export function apiMember(member: FakeMember, user: FakeUser): Json {
  return {
    user: apiUser(user),
    nick: member.nick,
    avatar: null,
    banner: null,
    roles: member.roles,
    joined_at: member.joinedAt,
    premium_since: null,
    deaf: false,
    mute: false,
    pending: false,
    flags: 0,
    communication_disabled_until: null,
  };
}

export function apiChannel(channel: FakeChannel): Json {
  // What every channel has; a thread adds its owner, counts and metadata, another channel its place and overwrites.
  const common = { id: channel.id, type: channel.type, guild_id: channel.guildId ?? undefined, name: channel.name, parent_id: channel.parentId, last_message_id: null, rate_limit_per_user: 0, flags: 0 };
  const t = channel.thread;
  if (t) {
    return {
      ...common,
      owner_id: t.ownerId,
      message_count: 0,
      member_count: 1,
      total_message_sent: 0,
      thread_metadata: { archived: t.archived, auto_archive_duration: 1440, archive_timestamp: t.archiveTimestamp, locked: t.locked, ...(channel.type === ChannelType.PrivateThread ? { invitable: true } : {}) },
    };
  }
  return {
    ...common,
    position: channel.position,
    topic: channel.topic,
    nsfw: false,
    permission_overwrites: channel.overwrites.map((o) => ({ id: o.id, type: o.type, allow: o.allow.toString(), deny: o.deny.toString() })),
  };
}

/** The REST shape of GET /guilds/:id (no channels or members, as on Discord). */
export function apiGuild(guild: FakeGuild): Json {
  return {
    id: guild.id,
    name: guild.name,
    icon: null,
    icon_hash: null,
    splash: null,
    discovery_splash: null,
    owner_id: guild.ownerId,
    afk_channel_id: null,
    afk_timeout: 300,
    widget_enabled: false,
    widget_channel_id: null,
    verification_level: 0,
    default_message_notifications: 0,
    explicit_content_filter: 0,
    roles: guild.roles.map(apiRole),
    emojis: [],
    stickers: [],
    features: [],
    mfa_level: 0,
    application_id: null,
    system_channel_id: null,
    system_channel_flags: 0,
    rules_channel_id: null,
    max_presences: null,
    max_members: 250000,
    vanity_url_code: null,
    description: null,
    banner: null,
    premium_tier: premiumTierFor(guild.attachmentSizeLimit),
    premium_subscription_count: 0,
    preferred_locale: guild.locale,
    public_updates_channel_id: null,
    max_video_channel_users: 25,
    max_stage_video_channel_users: 50,
    nsfw_level: 0,
    premium_progress_bar_enabled: false,
    safety_alerts_channel_id: null,
    incidents_data: null,
  };
}

/** Boost tiers raise the upload limit on Discord; report the tier that matches the configured limit. */
export function premiumTierFor(limit: number): number {
  if (limit >= 100 * 1024 * 1024) return 3;
  if (limit >= 50 * 1024 * 1024) return 2;
  return 0;
}

export function apiAttachment(a: StoredAttachment): Json {
  return {
    id: a.id,
    filename: a.filename,
    size: a.size,
    url: a.url,
    proxy_url: a.url,
    ...(a.contentType ? { content_type: a.contentType } : {}),
    ...(a.width !== undefined && a.height !== undefined ? { width: a.width, height: a.height } : {}),
    ...(a.description !== null ? { description: a.description } : {}),
    flags: 0,
  };
}

export interface MessageContext {
  user(id: string): FakeUser;
  applicationId: string;
  interactionMetadata(message: StoredMessage): Json | null;
  message(id: string): StoredMessage | undefined;
}

export function apiMessage(m: StoredMessage, ctx: MessageContext, depth = 0): Json {
  const reactions = [...m.reactions.entries()]
    .filter(([, users]) => users.size > 0)
    .map(([key, users]) => ({
      emoji: emojiObject(key),
      count: users.size,
      count_details: { burst: 0, normal: users.size },
      me: users.has(m.authorId) && ctx.user(m.authorId).bot,
      me_burst: false,
      burst_colors: [],
    }));
  const referenced = m.messageReference && depth === 0 ? ctx.message(m.messageReference.message_id) : undefined;
  const metadata = ctx.interactionMetadata(m);
  return {
    id: m.id,
    channel_id: m.channelId,
    author: apiUser(ctx.user(m.authorId)),
    content: m.content,
    timestamp: new Date(m.createdAt).toISOString(),
    edited_timestamp: m.editedAt === null ? null : new Date(m.editedAt).toISOString(),
    tts: m.tts,
    mention_everyone: false,
    mentions: m.mentions.map((id) => apiUser(ctx.user(id))),
    mention_roles: [],
    attachments: m.attachments.map(apiAttachment),
    embeds: m.embeds,
    components: m.components,
    pinned: false,
    type: m.type,
    flags: m.flags,
    ...(m.reactions.size > 0 && reactions.length > 0 ? { reactions } : {}),
    ...(m.interactionId ? { webhook_id: ctx.applicationId, application_id: ctx.applicationId } : {}),
    ...(metadata ? { interaction_metadata: metadata } : {}),
    ...(m.messageReference ? { message_reference: { type: 0, ...m.messageReference } } : {}),
    ...(referenced && !referenced.deleted ? { referenced_message: apiMessage(referenced, ctx, depth + 1) } : {}),
  };
}

/** Unicode emoji are keyed by the character, custom ones by "name:id". */
export function emojiObject(key: string): { id: string | null; name: string; animated?: boolean } {
  const custom = /^(a:)?([\w~-]{2,32}):(\d{17,20})$/.exec(key);
  if (custom) return { id: custom[3], name: custom[2], animated: Boolean(custom[1]) };
  return { id: null, name: key };
}
