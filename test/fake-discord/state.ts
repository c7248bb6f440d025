/** Everything the fake remembers: users, servers, channels, messages, commands, interactions. */
import { ALL_PERMISSIONS, ChannelType, THREAD_CHANNEL_TYPES, DEFAULT_ATTACHMENT_SIZE_LIMIT, DEFAULT_EVERYONE_PERMISSIONS, Permissions } from './protocol.ts';
import type { AttachmentPlan, MessagePatch } from './message-payload.ts';
import type {
  FakeChannel,
  FakeOverwrite,
  FakeGuild,
  FakeMember,
  FakeRole,
  FakeUser,
  InteractionState,
  MessageContent,
  MessageOrigin,
  RegisteredCommand,
  StoredAttachment,
  StoredMessage,
} from './model.ts';
import { isSnowflake, nextSnowflake } from './snowflake.ts';

export interface UserInit {
  username?: string;
  globalName?: string | null;
  bot?: boolean;
}

export interface ChannelInit {
  name: string;
  /** A Discord channel type number; text (0) by default. */
  type?: number;
  topic?: string;
  /** Permission overwrites: for a role by name ('@everyone' included) or a member by username. */
  overwrites?: { role?: string; user?: string; allow?: bigint; deny?: bigint }[];
}

export interface ThreadInit {
  name: string;
  /** The channel it was started in (id or name, in the same server). */
  parent: string;
  /** A Discord thread channel type number; public (11) by default. */
  type?: number;
  archived?: boolean;
  locked?: boolean;
  /** Who started it (default the server's owner). */
  owner?: FakeUser;
  /** Who else has joined it (GET /channels/:id/thread-members/:userId answers for them, 404 / 10007 for anyone else). */
  members?: FakeUser[];
}

export interface GuildInit {
  /** A snowflake; pick one to place the server on a given shard ((id >> 22) % shardCount). */
  id?: string;
  name?: string;
  /** Username of the owner (created), or an existing user. */
  owner?: string | FakeUser;
  channels?: (string | ChannelInit)[];
  roles?: { name: string; permissions?: bigint }[];
  /** Members besides the owner and the bot: a username (created) or an existing user, with role names. */
  members?: (string | FakeUser | { user: string | FakeUser; roles?: string[] })[];
  everyonePermissions?: bigint;
  /** Permissions of the role Discord gives the bot when it joins. */
  botPermissions?: bigint;
  /** Per-file upload limit in bytes (Discord: 10 MiB unboosted, 50 MiB at tier 2, 100 MiB at tier 3). */
  attachmentSizeLimit?: number;
  locale?: string;
}

export const DEFAULT_BOT_PERMISSIONS =
  Permissions.ViewChannel |
  Permissions.SendMessages |
  Permissions.EmbedLinks |
  Permissions.AttachFiles |
  Permissions.ReadMessageHistory |
  Permissions.AddReactions |
  Permissions.UseExternalEmojis |
  Permissions.ManageMessages |
  Permissions.UseApplicationCommands;

const EXTENSION_TYPES: Record<string, string> = {
  mp4: 'video/mp4',
  webm: 'video/webm',
  mov: 'video/quicktime',
  gif: 'image/gif',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  txt: 'text/plain; charset=utf-8',
  json: 'application/json; charset=utf-8',
};

interface Waiter {
  check(): void;
  fail(error: Error): void;
}

export class FakeState {
  readonly users = new Map<string, FakeUser>();
  readonly guilds = new Map<string, FakeGuild>();
  readonly channels = new Map<string, FakeChannel>();
  readonly messages = new Map<string, StoredMessage>();
  /** Registered commands by scope: "global" or a guild id. */
  readonly commands = new Map<string, RegisteredCommand[]>();
  readonly interactions = new Map<string, InteractionState>();
  readonly interactionsByToken = new Map<string, InteractionState>();
  readonly bot: FakeUser;
  readonly applicationId: string;
  /** http://127.0.0.1:PORT, known once the server listens; attachment URLs point there. */
  publicBase = '';
  /** Files users attached to slash-command options (ATTACHMENT), by attachment id; served like message attachments. */
  readonly uploads = new Map<string, StoredAttachment & { channelId: string; cdnDelayMs: number; cdnStatus: number | null }>();
  /** The bot's DM channel with each user (POST /users/@me/channels), by user id. */
  readonly dmChannels = new Map<string, FakeChannel>();
  private readonly waiters = new Set<Waiter>();

  constructor(botUsername: string) {
    this.bot = this.createUser({ username: botUsername, bot: true });
    // Bots made since 2019 share their id with their application.
    this.applicationId = this.bot.id;
  }

  createUser(init: UserInit = {}): FakeUser {
    const id = nextSnowflake();
    const user: FakeUser = { id, username: init.username ?? `user${id.slice(-6)}`, globalName: init.globalName ?? null, bot: init.bot ?? false };
    this.users.set(id, user);
    return user;
  }

  user(id: string): FakeUser {
    const user = this.users.get(id);
    if (!user) throw new Error(`the fake Discord knows no user ${id}`);
    return user;
  }

  createGuild(init: GuildInit = {}): FakeGuild {
    if (init.id !== undefined && (!isSnowflake(init.id) || this.guilds.has(init.id))) throw new Error(`guild id ${init.id} is not a fresh snowflake`);
    const id = init.id ?? nextSnowflake();
    const owner = typeof init.owner === 'object' ? init.owner : this.createUser({ username: init.owner ?? 'server-owner' });
    const guild: FakeGuild = {
      id,
      name: init.name ?? 'Fake Server',
      ownerId: owner.id,
      roles: [{ id, name: '@everyone', permissions: init.everyonePermissions ?? DEFAULT_EVERYONE_PERMISSIONS, position: 0, color: 0, botId: null }],
      channels: [],
      members: new Map(),
      attachmentSizeLimit: init.attachmentSizeLimit ?? DEFAULT_ATTACHMENT_SIZE_LIMIT,
      locale: init.locale ?? 'en-US',
    };
    this.guilds.set(id, guild);
    for (const role of init.roles ?? []) this.addRole(guild, role.name, role.permissions ?? 0n);
    const botRole = this.addRole(guild, this.bot.username, init.botPermissions ?? DEFAULT_BOT_PERMISSIONS);
    botRole.botId = this.bot.id;
    this.addMember(guild.id, owner);
    this.addMember(guild.id, this.bot, [botRole.id]);
    for (const m of init.members ?? []) {
      const spec = typeof m === 'object' && 'user' in m ? m : { user: m, roles: [] };
      const user = typeof spec.user === 'string' ? this.createUser({ username: spec.user }) : spec.user;
      this.addMember(guild.id, user, spec.roles ?? []);
    }
    for (const c of init.channels ?? ['general']) this.addChannel(guild.id, typeof c === 'string' ? { name: c } : c);
    return guild;
  }

  guild(id: string): FakeGuild {
    const guild = this.guilds.get(id);
    if (!guild) throw new Error(`the fake Discord has no server ${id}`);
    return guild;
  }

  addRole(guild: FakeGuild, name: string, permissions: bigint): FakeRole {
    const role: FakeRole = { id: nextSnowflake(), name, permissions, position: guild.roles.length, color: 0, botId: null };
    guild.roles.push(role);
    return role;
  }

  /** Adds (or updates) a member; roles are role ids or role names of that server. */
  addMember(guildId: string, user: FakeUser, roles: string[] = []): FakeMember {
    const guild = this.guild(guildId);
    const roleIds = roles.map((r) => {
      const role = guild.roles.find((x) => x.id === r || x.name === r);
      if (!role) throw new Error(`server ${guild.name} has no role "${r}"`);
      return role.id;
    });
    const member: FakeMember = { userId: user.id, nick: null, roles: roleIds, joinedAt: new Date().toISOString() };
    guild.members.set(user.id, member);
    this.changed();
    return member;
  }

  addChannel(guildId: string, init: ChannelInit): FakeChannel {
    const guild = this.guild(guildId);
    const channel: FakeChannel = {
      id: nextSnowflake(),
      guildId,
      name: init.name,
      type: init.type ?? ChannelType.GuildText,
      position: guild.channels.length,
      parentId: null,
      topic: init.topic ?? null,
      thread: null,
      overwrites: (init.overwrites ?? []).map((o) => this.overwrite(guild, o)),
    };
    guild.channels.push(channel);
    this.channels.set(channel.id, channel);
    return channel;
  }

  /** A thread started in a text channel of the server (listed with the server's channels, as its GUILD_CREATE's `threads` while active). */
  addThread(guildId: string, init: ThreadInit): FakeChannel {
    const guild = this.guild(guildId);
    const parent = guild.channels.find((c) => (c.id === init.parent || c.name === init.parent) && c.thread === null);
    if (!parent) throw new Error(`server ${guild.name} has no channel ${init.parent} to start a thread in`);
    const type = init.type ?? ChannelType.PublicThread;
    if (!THREAD_CHANNEL_TYPES.has(type)) throw new Error(`channel type ${type} is not a thread type`);
    const channel: FakeChannel = {
      id: nextSnowflake(),
      guildId,
      name: init.name,
      type,
      position: 0,
      parentId: parent.id,
      topic: null,
      thread: { archived: init.archived ?? false, locked: init.locked ?? false, archiveTimestamp: new Date().toISOString(), ownerId: init.owner?.id ?? guild.ownerId, memberIds: new Set([init.owner?.id ?? guild.ownerId, ...(init.members ?? []).map((u) => u.id)]) },
      overwrites: [],
    };
    guild.channels.push(channel);
    this.channels.set(channel.id, channel);
    this.changed();
    return channel;
  }

  /** Archives, unarchives, locks or unlocks a thread (the archive timestamp follows the archived state). */
  setThreadState(channel: FakeChannel, change: { archived?: boolean; locked?: boolean }): void {
    if (!channel.thread) throw new Error(`channel ${channel.name} is not a thread`);
    if (change.archived !== undefined && change.archived !== channel.thread.archived) {
      channel.thread.archived = change.archived;
      channel.thread.archiveTimestamp = new Date().toISOString();
    }
    if (change.locked !== undefined) channel.thread.locked = change.locked;
    this.changed();
  }

  /** Deletes a server channel: its routes answer 10003 Unknown Channel, its messages are gone. */
  deleteChannel(channel: FakeChannel): void {
    const guild = channel.guildId ? this.guild(channel.guildId) : undefined;
    if (guild) guild.channels.splice(guild.channels.indexOf(channel), 1);
    this.channels.delete(channel.id);
    for (const message of this.messages.values()) if (message.channelId === channel.id) message.deleted = true;
    this.changed();
  }

  /** The bot's DM channel with `user`, made on first use as Discord does. */
  dmChannel(user: FakeUser): FakeChannel {
    let channel = this.dmChannels.get(user.id);
    if (!channel) {
      channel = { id: nextSnowflake(), guildId: null, name: user.username, type: ChannelType.DM, position: 0, parentId: null, topic: null, thread: null, overwrites: [] };
      this.dmChannels.set(user.id, channel);
      this.channels.set(channel.id, channel);
    }
    return channel;
  }

  role(guild: FakeGuild, id: string): FakeRole | undefined {
    return guild.roles.find((r) => r.id === id);
  }

  /** A member's server-wide permissions as Discord computes them (owner and Administrator get all). */
  permissionsOf(guild: FakeGuild, userId: string): bigint {
    if (guild.ownerId === userId) return ALL_PERMISSIONS;
    const member = guild.members.get(userId);
    let bits = guild.roles[0].permissions;
    for (const id of member?.roles ?? []) bits |= this.role(guild, id)?.permissions ?? 0n;
    return (bits & Permissions.Administrator) !== 0n ? ALL_PERMISSIONS : bits;
  }

  /**
   * A member's permissions in a channel as Discord computes them: server-wide (owner and
   * Administrator get all), then the channel's overwrites for @everyone, the member's roles and the
   * member; none at all without View Channel. A thread takes its parent's overwrites.
   */
  permissionsIn(guild: FakeGuild, channel: FakeChannel, userId: string): bigint {
    const base = this.permissionsOf(guild, userId);
    if ((base & Permissions.Administrator) !== 0n) return ALL_PERMISSIONS;
    const source = channel.thread && channel.parentId ? (this.channels.get(channel.parentId) ?? channel) : channel;
    const apply = (bits: bigint, allow: bigint, deny: bigint) => (bits & ~deny) | allow;
    let bits = base;
    const everyone = source.overwrites.find((o) => o.type === 0 && o.id === guild.id);
    if (everyone) bits = apply(bits, everyone.allow, everyone.deny);
    const roles = new Set(guild.members.get(userId)?.roles ?? []);
    const forRoles = source.overwrites.filter((o) => o.type === 0 && roles.has(o.id));
    bits = apply(bits, forRoles.reduce((a, o) => a | o.allow, 0n), forRoles.reduce((d, o) => d | o.deny, 0n));
    const own = source.overwrites.find((o) => o.type === 1 && o.id === userId);
    if (own) bits = apply(bits, own.allow, own.deny);
    return (bits & Permissions.ViewChannel) === 0n ? 0n : bits;
  }

  private overwrite(guild: FakeGuild, init: { role?: string; user?: string; allow?: bigint; deny?: bigint }): FakeOverwrite {
    const amounts = { allow: init.allow ?? 0n, deny: init.deny ?? 0n };
    if (init.role !== undefined) {
      const role = guild.roles.find((r) => r.name === init.role || r.id === init.role);
      if (!role) throw new Error(`server ${guild.name} has no role "${init.role}" for an overwrite`);
      return { id: role.id, type: 0, ...amounts };
    }
    const userId = [...guild.members.keys()].find((id) => id === init.user || this.user(id).username === init.user);
    if (!userId) throw new Error(`server ${guild.name} has no member "${init.user}" for an overwrite`);
    return { id: userId, type: 1, ...amounts };
  }

  commandsIn(scope: string): RegisteredCommand[] {
    return this.commands.get(scope) ?? [];
  }

  createMessage(
    init: { channelId: string; authorId: string; type: number; origin: MessageOrigin; interactionId: string | null; flags: number; via: string },
    patch: MessagePatch,
  ): StoredMessage {
    const channel = this.channels.get(init.channelId);
    const id = nextSnowflake();
    const now = Date.now();
    const attachments = this.materialize(patch.attachments ?? [], init.channelId);
    const message: StoredMessage = {
      id,
      channelId: init.channelId,
      guildId: channel?.guildId ?? null,
      authorId: init.authorId,
      type: init.type,
      origin: init.origin,
      interactionId: init.interactionId,
      content: patch.content ?? '',
      embeds: resolveEmbedAttachments(patch.embeds ?? [], attachments),
      components: patch.components ?? [],
      attachments,
      flags: init.flags,
      ephemeral: (init.flags & 64) !== 0,
      createdAt: now,
      editedAt: null,
      tts: patch.tts ?? false,
      mentions: [],
      allowedMentions: patch.allowedMentions ?? null,
      messageReference: patch.messageReference
        ? { message_id: patch.messageReference.message_id, channel_id: init.channelId, ...(channel?.guildId ? { guild_id: channel.guildId } : {}) }
        : null,
      reactions: new Map(),
      revisions: [],
      deleted: false,
    };
    message.mentions = this.mentionsOf(message);
    message.revisions.push({ ...snapshot(message), at: now, via: init.via });
    this.messages.set(id, message);
    this.changed();
    return message;
  }

  /** Applies an edit; flags keeps the bits that cannot change (ephemeral) and drops "loading". */
  editMessage(message: StoredMessage, patch: MessagePatch, via: string): StoredMessage {
    const now = Date.now();
    if (patch.content !== undefined) message.content = patch.content;
    if (patch.attachments !== undefined) message.attachments = this.materialize(patch.attachments, message.channelId);
    if (patch.embeds !== undefined) message.embeds = patch.embeds;
    message.embeds = resolveEmbedAttachments(message.embeds, message.attachments);
    if (patch.components !== undefined) message.components = patch.components;
    if (patch.allowedMentions !== undefined) message.allowedMentions = patch.allowedMentions;
    const keep = message.flags & 64;
    message.flags = ((patch.flags ?? message.flags) & ~(64 | 128)) | keep;
    message.mentions = this.mentionsOf(message);
    message.editedAt = now;
    message.revisions.push({ ...snapshot(message), at: now, via });
    this.changed();
    return message;
  }

  deleteMessage(message: StoredMessage): void {
    message.deleted = true;
    this.changed();
  }

  /** Resolves once `check` returns something truthy (checked now and after every change). */
  waitFor<T>(check: () => T | undefined | null | false, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter: Waiter = {
        check: () => {
          let value: T | undefined | null | false;
          try {
            value = check();
          } catch (error) {
            waiter.fail(error as Error);
            return;
          }
          if (value) {
            finish();
            resolve(value);
          }
        },
        fail: (error) => {
          finish();
          reject(error);
        },
      };
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
      waiter.check();
      if (this.waiters.has(waiter)) timer = setTimeout(() => waiter.fail(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
    });
  }

  changed(): void {
    for (const waiter of [...this.waiters]) waiter.check();
  }

  failAllWaiters(reason: string): void {
    for (const waiter of [...this.waiters]) waiter.fail(new Error(reason));
  }

  private materialize(plan: AttachmentPlan[], channelId: string): StoredAttachment[] {
    return plan.map((p) => {
      if (p.kind === 'keep') return { ...p.existing, description: p.description };
      const id = nextSnowflake();
      // Discord swaps characters it does not keep in file names for underscores.
      const filename = p.filename.replace(/[^\w.-]/g, '_');
      return {
        id,
        filename,
        contentType: contentTypeFor(filename, p.upload.contentType),
        size: p.upload.data.length,
        bytes: p.upload.data,
        description: p.description,
        url: `${this.publicBase}/attachments/${channelId}/${id}/${encodeURIComponent(filename)}`,
      };
    });
  }

  /** A user's upload for an ATTACHMENT option, on the fake CDN under its channel. */
  addUpload(channelId: string, file: { filename: string; bytes: Buffer | Uint8Array; contentType?: string; width?: number; height?: number; cdnDelayMs?: number; cdnStatus?: number; declaredSize?: number }): StoredAttachment {
    const id = nextSnowflake();
    const filename = file.filename.replace(/[^\w.-]/g, '_');
    const bytes = Buffer.from(file.bytes);
    const dimensions = file.width !== undefined && file.height !== undefined ? { width: file.width, height: file.height } : pngDimensions(bytes);
    const stored = {
      id,
      filename,
      contentType: contentTypeFor(filename, file.contentType ?? null),
      size: file.declaredSize ?? bytes.length,
      ...dimensions,
      bytes,
      description: null,
      url: `${this.publicBase}/attachments/${channelId}/${id}/${encodeURIComponent(filename)}`,
      channelId,
      cdnDelayMs: file.cdnDelayMs ?? 0,
      cdnStatus: file.cdnStatus ?? null,
    };
    this.uploads.set(id, stored);
    return stored;
  }

  /** Users pinged by <@id> in the content, filtered by allowed_mentions as Discord does. */
  private mentionsOf(message: StoredMessage): string[] {
    const ids = [...message.content.matchAll(/<@!?(\d{17,20})>/g)].map((m) => m[1]).filter((id) => this.users.has(id));
    const allowed = message.allowedMentions;
    const unique = [...new Set(ids)];
    if (!allowed) return unique;
    if (Array.isArray(allowed.parse) && allowed.parse.includes('users')) return unique;
    if (Array.isArray(allowed.users)) return unique.filter((id) => (allowed.users as string[]).includes(id));
    return [];
  }
}

function snapshot(m: MessageContent): MessageContent {
  return { content: m.content, embeds: m.embeds, components: m.components, attachments: m.attachments, flags: m.flags };
}

/** A PNG's width and height from its IHDR chunk (what Discord reports for it); nothing for other files. */
function pngDimensions(bytes: Buffer): { width: number; height: number } | Record<string, never> {
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (bytes.length < 24 || !bytes.subarray(0, 8).equals(signature) || bytes.toString('latin1', 12, 16) !== 'IHDR') return {};
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  return width > 0 && height > 0 ? { width, height } : {};
}

function contentTypeFor(filename: string, sent: string | null): string | null {
  const ext = /\.([a-z0-9]+)$/i.exec(filename)?.[1]?.toLowerCase();
  if (sent && sent !== 'application/octet-stream') return sent;
  return (ext && EXTENSION_TYPES[ext]) ?? sent;
}

/** Discord replaces attachment://name in embed media with the uploaded file's URL. */
function resolveEmbedAttachments(embeds: Record<string, unknown>[], attachments: StoredAttachment[]): Record<string, unknown>[] {
  const swap = (url: unknown): unknown => {
    if (typeof url !== 'string' || !url.startsWith('attachment://')) return url;
    return attachments.find((a) => a.filename === url.slice('attachment://'.length))?.url ?? url;
  };
  return embeds.map((embed) => {
    const out: Record<string, unknown> = { ...embed };
    for (const key of ['image', 'thumbnail'] as const) {
      const media = out[key] as Record<string, unknown> | undefined;
      if (media && typeof media === 'object') out[key] = { ...media, url: swap(media.url), proxy_url: swap(media.url) };
    }
    return out;
  });
}
