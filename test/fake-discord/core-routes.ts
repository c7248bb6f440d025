/** REST routes for gateway discovery, users, the application and its commands, guilds, channels, messages and reactions. */
import { randomBytes } from 'node:crypto';
import { toRegistered, validateCommand, validateCommandList } from './commands.ts';
import { Errors, invalidFormBody } from './errors.ts';
import { isRecord } from './checks.ts';
import { CHANNEL_MESSAGE_FLAGS, EDIT_FLAGS, validateMessagePayload } from './message-payload.ts';
import type { FakeGuild, RegisteredCommand, StoredMessage } from './model.ts';
import { Intents, MessageType, Permissions, TEXT_CHANNEL_TYPES } from './protocol.ts';
import { RouteGroup } from './route-group.ts';
import { intParam, noContent, ok, type RestContext, type RestResult, type Router } from './router.ts';
import { apiChannel, apiGuild, apiMember, apiRole, apiUser, type Json } from './serialize.ts';

export class CoreRoutes extends RouteGroup {
  private readonly verifyKey = randomBytes(32).toString('hex');

  register(router: Router): void {
    const add = router.add.bind(router);
    add('GET', '/gateway', () => ok({ url: this.gateway.url }), false);
    add('GET', '/gateway/bot', () =>
      ok({
        url: this.gateway.url,
        shards: this.config.recommendedShards,
        session_start_limit: { total: 1000, remaining: Math.max(0, 1000 - this.gateway.sessionStarts), reset_after: 86_400_000, max_concurrency: this.config.maxConcurrency },
      }),
    );

    add('GET', '/users/@me', () => ok({ ...apiUser(this.store.bot), verified: true, mfa_enabled: false, email: null, locale: 'en-US' }));
    add('POST', '/users/@me/channels', (c) => {
      const body = this.readJson(c);
      const recipient = isRecord(body) && typeof body.recipient_id === 'string' ? this.store.users.get(body.recipient_id) : undefined;
      if (!recipient) throw invalidFormBody([{ path: ['recipient_id'], code: 'BASE_TYPE_REQUIRED', message: 'This field is required' }]);
      const channel = this.store.dmChannel(recipient);
      return ok({ ...apiChannel(channel), recipients: [apiUser(recipient)] });
    });
    add('GET', '/users/:userId', (c) => {
      const user = this.store.users.get(c.params.userId);
      if (!user) throw Errors.unknownUser();
      return ok(apiUser(user));
    });

    add('GET', '/applications/@me', () => ok(this.application()));
    for (const scope of ['', '/guilds/:guildId'] as const) {
      const base = `/applications/:applicationId${scope}/commands`;
      add('GET', base, (c) => ok(this.commandScope(c).list));
      add('PUT', base, (c) => this.overwriteCommands(c));
      add('POST', base, (c) => this.createCommand(c));
      add('GET', `${base}/:commandId`, (c) => ok(this.command(c)));
      add('PATCH', `${base}/:commandId`, (c) => this.editCommand(c));
      add('DELETE', `${base}/:commandId`, (c) => this.deleteCommand(c));
    }

    add('GET', '/guilds/:guildId', (c) => {
      const guild = this.guild(c);
      const counts = c.query.get('with_counts') === 'true' ? { approximate_member_count: guild.members.size, approximate_presence_count: 0 } : {};
      return ok({ ...apiGuild(guild), ...counts });
    });
    // Threads are listed elsewhere on Discord (active threads), not with the channels.
    add('GET', '/guilds/:guildId/channels', (c) => ok(this.guild(c).channels.filter((ch) => ch.thread === null).map(apiChannel)));
    add('GET', '/guilds/:guildId/roles', (c) => ok(this.guild(c).roles.map(apiRole)));
    add('GET', '/guilds/:guildId/members', (c) => this.listMembers(c));
    add('GET', '/guilds/:guildId/members/:userId', (c) => {
      const guild = this.guild(c);
      const member = guild.members.get(c.params.userId);
      if (!member) throw Errors.unknownMember();
      return ok(apiMember(member, this.store.user(member.userId)));
    });

    add('GET', '/channels/:channelId', (c) => ok(apiChannel(this.channel(c))));
    add('PATCH', '/channels/:channelId', (c) => this.editThread(c));
    // A thread's member: 404 / 10007 for anyone who has not joined it, as on Discord.
    add('GET', '/channels/:channelId/thread-members/:userId', (c) => {
      const channel = this.channel(c);
      if (!channel.thread) throw Errors.badRequest('that channel is not a thread');
      if (!channel.thread.memberIds.has(c.params.userId)) throw Errors.unknownMember();
      return ok({ id: channel.id, user_id: c.params.userId, join_timestamp: channel.thread.archiveTimestamp, flags: 0 });
    });
    add('POST', '/channels/:channelId/typing', (c) => (this.textChannel(c), noContent));
    add('GET', '/channels/:channelId/messages', (c) => this.listMessages(c));
    add('POST', '/channels/:channelId/messages', (c) => this.createChannelMessage(c));
    add('GET', '/channels/:channelId/messages/:messageId', (c) => ok(this.json(this.visibleMessage(c))));
    add('PATCH', '/channels/:channelId/messages/:messageId', (c) => this.editChannelMessage(c));
    add('DELETE', '/channels/:channelId/messages/:messageId', (c) => {
      const message = this.visibleMessage(c);
      this.beforeChange(this.store.channels.get(message.channelId));
      this.store.deleteMessage(message);
      return noContent;
    });
    const reactions = '/channels/:channelId/messages/:messageId/reactions';
    add('PUT', `${reactions}/:emoji/@me`, (c) => this.react(c, this.store.bot.id, true));
    add('DELETE', `${reactions}/:emoji/@me`, (c) => this.react(c, this.store.bot.id, false));
    add('GET', `${reactions}/:emoji`, (c) => {
      const users = this.visibleMessage(c).reactions.get(emojiKey(c.params.emoji)) ?? new Set<string>();
      return ok([...users].map((id) => apiUser(this.store.user(id))));
    });
    add('DELETE', `${reactions}/:emoji/:userId`, (c) => this.react(c, c.params.userId, false));
    add('DELETE', `${reactions}/:emoji`, (c) => {
      this.visibleMessage(c).reactions.delete(emojiKey(c.params.emoji));
      this.store.changed();
      return noContent;
    });
    add('DELETE', reactions, (c) => {
      this.visibleMessage(c).reactions.clear();
      this.store.changed();
      return noContent;
    });
  }

  // ---- applications and commands ----

  private application(): Json {
    const guildOwner = this.store.guilds.values().next().value?.ownerId;
    return {
      id: this.store.applicationId,
      name: this.store.bot.username,
      icon: null,
      description: '',
      summary: '',
      type: null,
      bot: apiUser(this.store.bot),
      bot_public: true,
      bot_require_code_grant: false,
      verify_key: this.verifyKey,
      flags: this.gateway.applicationFlags(),
      owner: guildOwner ? apiUser(this.store.user(guildOwner)) : undefined,
      team: null,
      approximate_guild_count: this.store.guilds.size,
      redirect_uris: [],
      interactions_endpoint_url: null,
      tags: [],
      integration_types_config: { '0': {} },
    };
  }

  private commandScope(c: RestContext): { key: string; guildId: string | null; list: RegisteredCommand[] } {
    if (c.params.applicationId !== this.store.applicationId) throw Errors.notAuthorizedForApplication();
    const guildId = c.params.guildId ?? null;
    if (guildId !== null && !this.store.guilds.has(guildId)) throw Errors.missingAccess();
    const key = guildId ?? 'global';
    return { key, guildId, list: this.store.commandsIn(key) };
  }

  private overwriteCommands(c: RestContext): RestResult {
    const scope = this.commandScope(c);
    const inputs = validateCommandList(this.readJson(c));
    const next = inputs.map((input) => {
      const existing = scope.list.find((x) => x.name === input.name && x.type === ((input.type as number | undefined) ?? 1));
      return toRegistered(input, this.store.applicationId, scope.guildId, existing);
    });
    this.store.commands.set(scope.key, next);
    this.store.changed();
    return ok(next);
  }

  private createCommand(c: RestContext): RestResult {
    const scope = this.commandScope(c);
    const input = validateCommand(this.readJson(c));
    const existing = scope.list.find((x) => x.name === input.name && x.type === ((input.type as number | undefined) ?? 1));
    const command = toRegistered(input, this.store.applicationId, scope.guildId, existing);
    this.store.commands.set(scope.key, [...scope.list.filter((x) => x !== existing), command]);
    this.store.changed();
    return ok(command, existing ? 200 : 201);
  }

  private command(c: RestContext): RegisteredCommand {
    const command = this.commandScope(c).list.find((x) => x.id === c.params.commandId);
    if (!command) throw Errors.unknownCommand();
    return command;
  }

  private editCommand(c: RestContext): RestResult {
    const scope = this.commandScope(c);
    const current = this.command(c);
    const changes = this.readJson(c);
    if (!isRecord(changes)) throw invalidFormBody([{ path: [], code: 'DICT_TYPE_CONVERT', message: 'Only dictionaries may be used in a DictType' }]);
    const merged = validateCommand({ ...current, ...changes });
    const command = toRegistered(merged, this.store.applicationId, scope.guildId, current);
    this.store.commands.set(scope.key, scope.list.map((x) => (x === current ? command : x)));
    this.store.changed();
    return ok(command);
  }

  private deleteCommand(c: RestContext): RestResult {
    const scope = this.commandScope(c);
    const current = this.command(c);
    this.store.commands.set(scope.key, scope.list.filter((x) => x !== current));
    this.store.changed();
    return noContent;
  }

  // ---- guilds and channels ----

  private guild(c: RestContext): FakeGuild {
    const guild = this.store.guilds.get(c.params.guildId);
    if (!guild) throw Errors.unknownGuild();
    return guild;
  }

  private listMembers(c: RestContext): RestResult {
    // Listing members needs the privileged GuildMembers intent switched on for the application.
    if ((this.config.privilegedIntents & Intents.GuildMembers) === 0) throw Errors.missingAccess();
    const guild = this.guild(c);
    const limit = intParam(c, 'limit', 1, 1000) ?? 1;
    const after = c.query.get('after') ?? '0';
    const members = [...guild.members.values()].filter((m) => BigInt(m.userId) > BigInt(after)).sort((a, b) => (BigInt(a.userId) < BigInt(b.userId) ? -1 : 1));
    return ok(members.slice(0, limit).map((m) => apiMember(m, this.store.user(m.userId))));
  }

  private channel(c: RestContext) {
    const channel = this.store.channels.get(c.params.channelId);
    if (!channel) throw Errors.unknownChannel();
    return channel;
  }

  /**
   * PATCH /channels/:id, for threads only (the fake models no other channel settings): `archived`
   * and `locked`. Unarchiving a thread that is not locked (and stays unlocked) needs Send Messages;
   * anything else needs Manage Threads (403 / 50013), as Discord documents. THREAD_UPDATE follows.
   */
  private editThread(c: RestContext): RestResult {
    const channel = this.channel(c);
    if (!channel.thread || !channel.guildId) throw Errors.badRequest('the fake Discord edits only threads (archived, locked) through PATCH /channels/:id');
    const body = this.readJson(c);
    if (!isRecord(body)) throw invalidFormBody([{ path: [], code: 'DICT_TYPE_CONVERT', message: 'Only dictionaries may be used in a DictType' }]);
    const unknown = Object.keys(body).filter((k) => k !== 'archived' && k !== 'locked');
    if (unknown.length) throw Errors.badRequest(`the fake Discord edits only archived and locked on threads, not ${unknown.join(', ')}`);
    for (const key of ['archived', 'locked'] as const) {
      if (body[key] !== undefined && typeof body[key] !== 'boolean') throw invalidFormBody([{ path: [key], code: 'BOOLEAN_TYPE_CONVERT', message: 'Must be either true or false.' }]);
    }
    const change = { archived: body.archived as boolean | undefined, locked: body.locked as boolean | undefined };
    const granted = this.store.permissionsOf(this.store.guild(channel.guildId), this.store.bot.id);
    const lockedAfter = change.locked ?? channel.thread.locked;
    const onlyUnarchives = change.archived === false && !lockedAfter && (change.locked === undefined || change.locked === channel.thread.locked);
    const needed = onlyUnarchives ? Permissions.ViewChannel | Permissions.SendMessages : Permissions.ViewChannel | Permissions.ManageThreads;
    if ((granted & needed) !== needed) throw Errors.missingPermissions();
    // Discord: an archived thread takes no other change unless this one unarchives it.
    if (channel.thread.archived && change.archived !== false) throw Errors.threadArchived();
    this.setThreadState(channel, change);
    return ok(apiChannel(channel));
  }

  private textChannel(c: RestContext) {
    const channel = this.channel(c);
    if (!TEXT_CHANNEL_TYPES.has(channel.type)) throw Errors.nonTextChannel();
    return channel;
  }

  /** A message the bot can see through the channel routes (ephemeral ones are not). */
  private visibleMessage(c: RestContext): StoredMessage {
    this.channel(c);
    const message = this.store.messages.get(c.params.messageId);
    if (!message || message.deleted || message.ephemeral || message.channelId !== c.params.channelId) throw Errors.unknownMessage();
    return message;
  }

  private listMessages(c: RestContext): RestResult {
    const channel = this.textChannel(c);
    const limit = intParam(c, 'limit', 1, 100) ?? 50;
    const [before, after, around] = ['before', 'after', 'around'].map((k) => c.query.get(k));
    if ([before, after, around].filter((x) => x !== null).length > 1) throw Errors.badRequest('use only one of before, after and around');
    let list = [...this.store.messages.values()].filter((m) => m.channelId === channel.id && !m.deleted && !m.ephemeral);
    const id = (m: StoredMessage) => BigInt(m.id);
    if (before) list = list.filter((m) => id(m) < BigInt(before));
    if (after) list = list.filter((m) => id(m) > BigInt(after));
    list.sort((a, b) => (id(a) < id(b) ? 1 : -1));
    if (after) list = list.slice(-limit);
    else if (around) {
      const at = list.findIndex((m) => id(m) <= BigInt(around));
      const start = Math.max(0, (at < 0 ? list.length : at) - Math.floor(limit / 2));
      list = list.slice(start, start + limit);
    } else list = list.slice(0, limit);
    return ok(list.map((m) => this.json(m)));
  }

  private createChannelMessage(c: RestContext): RestResult {
    const channel = this.textChannel(c);
    const { json, uploads } = this.readMessageBody(c, channel.guildId);
    const patch = validateMessagePayload(json, uploads, { mode: 'create', allowedFlags: CHANNEL_MESSAGE_FLAGS });
    let type: number = MessageType.Default;
    if (patch.messageReference) {
      const ref = this.store.messages.get(patch.messageReference.message_id);
      const found = ref && !ref.deleted && !ref.ephemeral && ref.channelId === channel.id;
      if (!found) {
        if (patch.messageReference.fail_if_not_exists !== false) {
          throw invalidFormBody([{ path: ['message_reference'], code: 'MESSAGE_REFERENCE_UNKNOWN_MESSAGE', message: 'Unknown message' }]);
        }
        patch.messageReference = null;
      } else type = MessageType.Reply;
    }
    this.beforeNewMessage(channel);
    const message = this.store.createMessage(
      { channelId: channel.id, authorId: this.store.bot.id, type, origin: 'channel', interactionId: null, flags: patch.flags ?? 0, via: `POST ${c.route}` },
      patch,
    );
    return ok(this.json(message));
  }

  private editChannelMessage(c: RestContext): RestResult {
    const message = this.visibleMessage(c);
    if (message.authorId !== this.store.bot.id) throw Errors.cannotEditOthersMessage();
    this.beforeChange(this.store.channels.get(message.channelId));
    const { json, uploads } = this.readMessageBody(c, message.guildId);
    const patch = validateMessagePayload(json, uploads, { mode: 'edit', allowedFlags: EDIT_FLAGS, existing: message });
    return ok(this.json(this.store.editMessage(message, patch, `PATCH ${c.route}`)));
  }

  private react(c: RestContext, userId: string, add: boolean): RestResult {
    const message = this.visibleMessage(c);
    const channel = this.store.channels.get(message.channelId);
    this.beforeChange(channel);
    // Taking off someone else's reaction needs Manage Messages in that channel (403 50013 without),
    // and is not possible at all in a DM, as on Discord.
    if (!add && userId !== this.store.bot.id) {
      const guild = channel?.guildId ? this.store.guild(channel.guildId) : undefined;
      if (!guild || !channel || (this.store.permissionsIn(guild, channel, this.store.bot.id) & Permissions.ManageMessages) === 0n) throw Errors.missingPermissions();
    }
    const key = emojiKey(c.params.emoji);
    const users = message.reactions.get(key) ?? new Set<string>();
    if (add) users.add(userId);
    else users.delete(userId);
    message.reactions.set(key, users);
    this.store.changed();
    return noContent;
  }
}

/** Reaction routes carry a URL-encoded unicode emoji or "name:id" for custom emoji. */
function emojiKey(raw: string): string {
  const custom = /^(a:)?([\w~-]{2,32}):(\d{17,20})$/.exec(raw);
  if (custom) return raw;
  if (/^[\x00-\x7f]*$/.test(raw) || raw.length > 32) throw Errors.unknownEmoji();
  return raw;
}
