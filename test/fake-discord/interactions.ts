/**
 * Building the INTERACTION_CREATE payloads a user's click would produce (slash command, autocomplete,
 * button, modal submit), reactions, and the handle a test uses to watch what the bot did in reply.
 */
import { randomBytes } from 'node:crypto';
import { buildSlashOptions, type FocusedInput, type SlashInput } from './commands.ts';
import type { FakeGateway, DispatchResult } from './gateway.ts';
import { InteractionHandle } from './handle.ts';
import { customIdsOf, findComponent } from './inspect.ts';
import type { FakeChannel, FakeGuild, FakeUser, InteractionKind, InteractionState, StoredMessage } from './model.ts';
import { ApplicationCommandType, ComponentType, Intents, InteractionType, TEXT_CHANNEL_TYPES } from './protocol.ts';
import { apiAttachment, apiChannel, apiMember, apiMessage, apiRole, apiUser, emojiObject, type Json, type MessageContext } from './serialize.ts';
import { nextSnowflake } from './snowflake.ts';
import type { FakeState } from './state.ts';

export interface InteractionTiming {
  /** Callbacks later than this after the dispatch get 404 / 10062, as on Discord (3000). */
  deadlineMs: number;
  /** Interaction tokens die this long after the dispatch (Discord: 15 minutes). */
  tokenLifetimeMs: number;
}

export interface Actor {
  user: FakeUser;
  /** Replaces the permissions the member's roles give (a bigint bitfield). */
  memberPermissions?: bigint;
  locale?: string;
}

export interface SlashCommandOptions extends Actor, SlashInput {
  commandName: string;
  /** Defaults to the first server. */
  guildId?: string;
  /** Defaults to the server's first text channel. */
  channelId?: string;
  /** Send it even if the member lacks the command's default_member_permissions (Discord would hide it). */
  ignoreCommandPermissions?: boolean;
}

/** A member typing into an option registered with autocomplete (sendAutocomplete). */
export interface AutocompleteOptions extends Omit<SlashCommandOptions, 'options'> {
  /** The option being typed into, sent with `focused: true`. */
  focused: string;
  /** What has been typed into it so far (default ''). */
  typed?: string;
  /** Options already filled in (checked like a slash command's; missing required ones are fine). */
  options?: SlashCommandOptions['options'];
}

export interface ButtonPressOptions extends Actor {
  messageId: string;
  customId: string;
  /**
   * Send a custom_id the message does not carry, as a modified client can (a button copied from a
   * message in another server, replayed on one of the bot's messages here). Discord passes it on.
   */
  replayed?: boolean;
}

export interface ModalSubmitOptions {
  /** The interaction the bot answered with a modal (callback type 9). */
  to: InteractionHandle;
  /** Text input values (and select values) by custom_id. */
  values: Record<string, string | string[]>;
  /** Defaults to the user who opened the modal. */
  user?: FakeUser;
  memberPermissions?: bigint;
}

export interface ReactionOptions {
  messageId: string;
  /** A unicode emoji ("🔍") or a custom one ("name:id" or "<:name:id>"). */
  emoji: string;
  user: FakeUser;
}

export class InteractionFactory {
  constructor(
    private readonly store: FakeState,
    private readonly gateway: FakeGateway,
    private readonly timing: InteractionTiming,
  ) {}

  slashCommand(opts: SlashCommandOptions): InteractionHandle {
    return this.commandInteraction(opts);
  }

  /** The interaction Discord sends while a member types into an autocomplete option (type 4), answered with type 8. */
  autocomplete(opts: AutocompleteOptions): InteractionHandle {
    return this.commandInteraction(opts, { name: opts.focused, typed: opts.typed ?? '' });
  }

  /** A chat-input command's interaction: run (type 2), or, with `focused`, autocompleting that option (type 4). */
  private commandInteraction(opts: SlashCommandOptions, focused?: FocusedInput): InteractionHandle {
    const guild = opts.guildId ? this.store.guild(opts.guildId) : this.firstGuild();
    const channel = this.channelIn(guild, opts.channelId);
    const command =
      this.store.commandsIn(guild.id).find((c) => c.name === opts.commandName && c.type === ApplicationCommandType.ChatInput) ??
      this.store.commandsIn('global').find((c) => c.name === opts.commandName && c.type === ApplicationCommandType.ChatInput);
    if (!command) {
      throw new Error(`/${opts.commandName} is not registered for server ${guild.name} or globally: the bot must register it (PUT .../commands) before a user can run it`);
    }
    const perms = this.permissions(guild, channel, opts);
    if (command.default_member_permissions !== null && !opts.ignoreCommandPermissions) {
      const needed = BigInt(command.default_member_permissions);
      if ((perms & needed) !== needed) {
        throw new Error(`${opts.user.username} lacks /${command.name}'s default_member_permissions (${needed}); Discord would not offer the command (pass ignoreCommandPermissions to send it anyway)`);
      }
    }
    const { options, resolved } = buildSlashOptions(command, opts, {
      user: (id) => this.store.users.get(id),
      memberJson: (id) => {
        const m = guild.members.get(id);
        return m ? { ...apiMember(m, this.store.user(id)), permissions: this.store.permissionsOf(guild, id).toString() } : undefined;
      },
      channel: (id) => guild.channels.find((c) => c.id === id),
      role: (id) => this.store.role(guild, id),
      userJson: apiUser,
      channelJson: apiChannel,
      roleJson: apiRole,
      upload: (file) => apiAttachment(this.store.addUpload(channel.id, file)) as Json & { id: string },
    }, focused);
    const data: Json = {
      id: command.id,
      name: command.name,
      type: ApplicationCommandType.ChatInput,
      ...(command.guild_id ? { guild_id: command.guild_id } : {}),
      ...(options.length ? { options } : {}),
      ...(resolved ? { resolved } : {}),
    };
    const [kind, type] = focused ? (['autocomplete', InteractionType.ApplicationCommandAutocomplete] as const) : (['command', InteractionType.ApplicationCommand] as const);
    return this.dispatch({ kind, type, guild, channel, actor: opts, perms, data, componentMessage: null });
  }

  pressButton(opts: ButtonPressOptions): InteractionHandle {
    const message = this.liveMessage(opts.messageId);
    const button = opts.replayed ? { type: ComponentType.Button } : findComponent(message.components, opts.customId);
    if (!button || button.type !== ComponentType.Button) {
      throw new Error(`message ${message.id} has no button with custom_id "${opts.customId}" (it has: ${customIdsOf(message.components).join(', ') || 'none'})`);
    }
    if ((button as { disabled?: unknown }).disabled === true) throw new Error(`button "${opts.customId}" on message ${message.id} is disabled; Discord does not let users press it`);
    this.checkEphemeralOwner(message, opts.user);
    const guild = this.store.guild(message.guildId ?? this.firstGuild().id);
    const channel = this.channelIn(guild, message.channelId);
    const data: Json = { custom_id: opts.customId, component_type: ComponentType.Button, ...((button as { id?: unknown }).id !== undefined ? { id: (button as { id?: unknown }).id } : {}) };
    return this.dispatch({ kind: 'component', type: InteractionType.MessageComponent, guild, channel, actor: opts, perms: this.permissions(guild, channel, opts), data, componentMessage: message });
  }

  submitModal(opts: ModalSubmitOptions): InteractionHandle {
    const source = opts.to.state;
    if (source.response?.type !== 9 || !source.modal) throw new Error(`interaction ${source.id} was not answered with a modal (callback type 9)`);
    const modal = source.modal;
    const unused = new Set(Object.keys(opts.values));
    const components = (modal.components as Json[]).map((c) => submittedComponent(c, opts.values, unused));
    if (unused.size) throw new Error(`modal "${String(modal.custom_id)}" has no field(s) ${[...unused].join(', ')}`);
    const guild = this.store.guild(source.guildId);
    const channel = this.channelIn(guild, source.channelId);
    const user = opts.user ?? this.store.user(source.userId);
    const componentMessage = source.componentMessageId ? this.liveMessage(source.componentMessageId) : null;
    const actor: Actor = { user, memberPermissions: opts.memberPermissions };
    const data: Json = { custom_id: modal.custom_id, components };
    return this.dispatch({ kind: 'modal-submit', type: InteractionType.ModalSubmit, guild, channel, actor, perms: this.permissions(guild, channel, actor), data, componentMessage });
  }

  /** Records the reaction, and sends MESSAGE_REACTION_ADD if the bot asked for reaction events. */
  addReaction(opts: ReactionOptions): DispatchResult {
    const { message, guild, key } = this.reactionTarget(opts);
    const users = message.reactions.get(key) ?? new Set<string>();
    users.add(opts.user.id);
    message.reactions.set(key, users);
    this.store.changed();
    const member = guild.members.get(opts.user.id)!;
    return this.gateway.dispatchToGuild(
      guild.id,
      'MESSAGE_REACTION_ADD',
      {
        user_id: opts.user.id,
        channel_id: message.channelId,
        message_id: message.id,
        guild_id: guild.id,
        member: apiMember(member, opts.user),
        emoji: emojiObject(key),
        message_author_id: message.authorId,
        burst: false,
        burst_colors: [],
        type: 0,
      },
      Intents.GuildMessageReactions,
    );
  }

  removeReaction(opts: ReactionOptions): DispatchResult {
    const { message, guild, key } = this.reactionTarget(opts);
    message.reactions.get(key)?.delete(opts.user.id);
    this.store.changed();
    return this.gateway.dispatchToGuild(
      guild.id,
      'MESSAGE_REACTION_REMOVE',
      { user_id: opts.user.id, channel_id: message.channelId, message_id: message.id, guild_id: guild.id, emoji: emojiObject(key), burst: false, type: 0 },
      Intents.GuildMessageReactions,
    );
  }

  messageContext(): MessageContext {
    return {
      user: (id) => this.store.user(id),
      applicationId: this.store.applicationId,
      message: (id) => this.store.messages.get(id),
      interactionMetadata: (m) => {
        const it = m.interactionId ? this.store.interactions.get(m.interactionId) : undefined;
        if (!it) return null;
        return {
          id: it.id,
          type: it.type,
          user: apiUser(this.store.user(it.userId)),
          authorizing_integration_owners: { '0': it.guildId },
          ...(it.kind === 'command' ? { name: (it.payload.data as Json).name, command_type: ApplicationCommandType.ChatInput } : {}),
          ...(m.origin === 'follow-up' && it.originalMessageId ? { original_response_message_id: it.originalMessageId } : {}),
          ...(it.kind === 'component' && it.componentMessageId ? { interacted_message_id: it.componentMessageId } : {}),
        };
      },
    };
  }

  private dispatch(spec: {
    kind: InteractionKind;
    type: number;
    guild: FakeGuild;
    channel: FakeChannel;
    actor: Actor;
    perms: bigint;
    data: Json;
    componentMessage: StoredMessage | null;
  }): InteractionHandle {
    const { guild, channel, actor } = spec;
    if (!guild.members.has(actor.user.id)) this.store.addMember(guild.id, actor.user);
    const id = nextSnowflake();
    const token = `aW50ZXJhY3Rpb246${id}${randomBytes(36).toString('base64url')}`;
    const permissions = spec.perms.toString();
    const payload: Json = {
      id,
      application_id: this.store.applicationId,
      type: spec.type,
      data: spec.data,
      guild_id: guild.id,
      guild: { id: guild.id, locale: guild.locale, features: [] },
      channel: { ...apiChannel(channel), permissions },
      channel_id: channel.id,
      member: { ...apiMember(guild.members.get(actor.user.id)!, actor.user), permissions },
      token,
      version: 1,
      app_permissions: this.store.permissionsIn(guild, channel, this.store.bot.id).toString(),
      locale: actor.locale ?? 'en-US',
      guild_locale: guild.locale,
      entitlements: [],
      authorizing_integration_owners: { '0': guild.id },
      context: 0,
      attachment_size_limit: guild.attachmentSizeLimit,
      ...(spec.componentMessage ? { message: apiMessage(spec.componentMessage, this.messageContext()) } : {}),
    };
    const now = Date.now();
    const state: InteractionState = {
      id,
      token,
      type: spec.type,
      kind: spec.kind,
      guildId: guild.id,
      channelId: channel.id,
      userId: actor.user.id,
      payload,
      dispatchedAt: now,
      deadlineAt: now + this.timing.deadlineMs,
      expiresAt: now + this.timing.tokenLifetimeMs,
      expired: false,
      componentMessageId: spec.componentMessage?.id ?? null,
      response: null,
      originalMessageId: null,
      followUpIds: [],
      modal: null,
    };
    this.store.interactions.set(id, state);
    this.store.interactionsByToken.set(token, state);
    try {
      this.gateway.dispatchToGuild(guild.id, 'INTERACTION_CREATE', payload);
    } catch (error) {
      this.store.interactions.delete(id);
      this.store.interactionsByToken.delete(token);
      throw error;
    }
    return new InteractionHandle(this.store, state);
  }

  private reactionTarget(opts: ReactionOptions): { message: StoredMessage; guild: FakeGuild; key: string } {
    const message = this.liveMessage(opts.messageId);
    if (message.ephemeral) throw new Error(`message ${message.id} is ephemeral; nobody can react to it`);
    if (!message.guildId) throw new Error(`message ${message.id} is not in a server`);
    const guild = this.store.guild(message.guildId);
    if (!guild.members.has(opts.user.id)) this.store.addMember(guild.id, opts.user);
    const custom = /^<?(a?):?([\w~-]{2,32}):(\d{17,20})>?$/.exec(opts.emoji);
    const key = custom ? `${custom[1] ? 'a:' : ''}${custom[2]}:${custom[3]}` : opts.emoji;
    return { message, guild, key };
  }

  private liveMessage(id: string): StoredMessage {
    const message = this.store.messages.get(id);
    if (!message || message.deleted) throw new Error(`the fake Discord has no message ${id}${message?.deleted ? ' (it was deleted)' : ''}`);
    return message;
  }

  private checkEphemeralOwner(message: StoredMessage, user: FakeUser): void {
    if (!message.ephemeral) return;
    const owner = message.interactionId ? this.store.interactions.get(message.interactionId)?.userId : undefined;
    if (owner !== user.id) throw new Error(`message ${message.id} is ephemeral: only its recipient can see and press its buttons`);
  }

  /** The member's permissions in the channel, overwrites included (as Discord sends them with an interaction). */
  private permissions(guild: FakeGuild, channel: FakeChannel, actor: Actor): bigint {
    return actor.memberPermissions ?? this.store.permissionsIn(guild, channel, actor.user.id);
  }

  private firstGuild(): FakeGuild {
    const guild = this.store.guilds.values().next().value;
    if (!guild) throw new Error('the fake Discord has no servers');
    return guild;
  }

  private channelIn(guild: FakeGuild, channelId?: string): FakeChannel {
    const channel = channelId ? guild.channels.find((c) => c.id === channelId) : guild.channels.find((c) => TEXT_CHANNEL_TYPES.has(c.type));
    if (!channel) throw new Error(channelId ? `server ${guild.name} has no channel ${channelId}` : `server ${guild.name} has no text channel`);
    return channel;
  }
}

/** Mirrors one component of the shown modal as the Discord client submits it, with the user's input. */
function submittedComponent(c: Json, values: Record<string, string | string[]>, unused: Set<string>): Json {
  const id = c.id !== undefined ? { id: c.id } : {};
  if (c.type === ComponentType.ActionRow) {
    return { type: ComponentType.ActionRow, ...id, components: (c.components as Json[]).map((inner) => submittedField(inner, values, unused)) };
  }
  if (c.type === ComponentType.Label) return { type: ComponentType.Label, ...id, component: submittedField(c.component as Json, values, unused) };
  return { type: c.type, ...id };
}

function submittedField(field: Json, values: Record<string, string | string[]>, unused: Set<string>): Json {
  const customId = String(field.custom_id);
  const given = values[customId];
  unused.delete(customId);
  const id = field.id !== undefined ? { id: field.id } : {};
  const required = field.required !== false;
  if (field.type === ComponentType.TextInput) {
    const value = given === undefined ? String(field.value ?? '') : given;
    if (typeof value !== 'string') throw new Error(`modal text input "${customId}" takes a string`);
    if (required && value === '') throw new Error(`modal text input "${customId}" is required; Discord would not let the user submit it empty`);
    if (typeof field.max_length === 'number' && value.length > field.max_length) throw new Error(`modal text input "${customId}" allows at most ${field.max_length} characters`);
    if (value !== '' && typeof field.min_length === 'number' && value.length < field.min_length) throw new Error(`modal text input "${customId}" needs at least ${field.min_length} characters`);
    return { type: ComponentType.TextInput, ...id, custom_id: customId, value };
  }
  if (field.type === ComponentType.StringSelect) {
    const chosen = given === undefined ? [] : Array.isArray(given) ? given : [given];
    const allowed = (field.options as Json[]).map((o) => o.value);
    const bad = chosen.filter((v) => !allowed.includes(v));
    if (bad.length) throw new Error(`modal select "${customId}" has no option(s) ${bad.join(', ')}`);
    if (required && chosen.length === 0) throw new Error(`modal select "${customId}" is required`);
    return { type: ComponentType.StringSelect, ...id, custom_id: customId, values: chosen };
  }
  throw new Error(`modal component type ${String(field.type)} ("${customId}") is not supported by the fake's submitModal`);
}
