/** REST routes for answering interactions: the callback, and the interaction webhook (@original, follow-ups). */
import { Errors, invalidFormBody } from './errors.ts';
import { isRecord } from './checks.ts';
import { autocompleteResultIssue } from './commands.ts';
import { EDIT_FLAGS, RESPONSE_FLAGS, validateMessagePayload } from './message-payload.ts';
import { validateModal } from './modal.ts';
import type { InteractionState, StoredMessage } from './model.ts';
import { CallbackType, CallbackTypeName, MessageFlags, MessageType } from './protocol.ts';
import { RouteGroup } from './route-group.ts';
import { boolParam, noContent, ok, type RestContext, type RestResult, type Router } from './router.ts';

export class InteractionRoutes extends RouteGroup {
  register(router: Router): void {
    const add = router.add.bind(router);
    add('POST', '/interactions/:interactionId/:token/callback', (c) => this.callback(c), false);
    add('POST', '/webhooks/:applicationId/:token', (c) => this.followUp(c), false);
    const webhookMessage = '/webhooks/:applicationId/:token/messages/:messageId';
    add('GET', webhookMessage, (c) => ok(this.json(this.webhookMessage(c, this.webhookInteraction(c)))), false);
    add('PATCH', webhookMessage, (c) => this.editWebhookMessage(c), false);
    add(
      'DELETE',
      webhookMessage,
      (c) => {
        const message = this.webhookMessage(c, this.webhookInteraction(c));
        if (!message.ephemeral) this.beforeChange(this.store.channels.get(message.channelId));
        this.store.deleteMessage(message);
        return noContent;
      },
      false,
    );
  }

  private callback(c: RestContext): RestResult {
    const it = this.store.interactions.get(c.params.interactionId);
    if (!it || it.token !== c.params.token) throw Errors.unknownInteraction();
    if (it.response) throw Errors.alreadyAcknowledged();
    const now = Date.now();
    // Discord forgets an interaction nobody answered within 3 s (and any whose token expired).
    if (it.expired || now > it.expiresAt || now > it.deadlineAt) throw Errors.unknownInteraction();
    const withResponse = boolParam(c, 'with_response') ?? false;
    const guild = this.store.guild(it.guildId);
    const { json, uploads } = this.readMessageBody(c, guild.id);
    if (!isRecord(json) || !Number.isInteger(json.type)) throw invalidFormBody([{ path: ['type'], code: 'BASE_TYPE_REQUIRED', message: 'This field is required' }]);
    const type = json.type as number;
    const data = json.data === undefined || json.data === null ? null : json.data;
    if (data !== null && !isRecord(data)) throw invalidFormBody([{ path: ['data'], code: 'DICT_TYPE_CONVERT', message: 'Only dictionaries may be used in a DictType' }]);
    const via = `POST ${c.route}`;
    const refuse = (why: string) => invalidFormBody([{ path: ['type'], code: 'INTERACTION_RESPONSE_TYPE_INVALID', message: why }]);
    if (uploads.length > 0 && type !== CallbackType.ChannelMessageWithSource && type !== CallbackType.UpdateMessage) {
      throw refuse(`callback type ${type} cannot carry files`);
    }
    const componentMessage = it.componentMessageId ? this.store.messages.get(it.componentMessageId) : undefined;
    switch (type) {
      case CallbackType.ChannelMessageWithSource: {
        if (it.kind === 'autocomplete') throw refuse('autocomplete interactions can only be answered with type 8');
        if (!data) throw invalidFormBody([{ path: ['data'], code: 'BASE_TYPE_REQUIRED', message: 'This field is required' }]);
        const patch = validateMessagePayload(data, uploads, { mode: 'create', allowedFlags: RESPONSE_FLAGS });
        if (((patch.flags ?? 0) & MessageFlags.Ephemeral) === 0) this.beforeNewMessage(this.store.channels.get(it.channelId)!);
        const message = this.store.createMessage(
          { channelId: it.channelId, authorId: this.store.bot.id, type: responseType(it), origin: 'interaction-response', interactionId: it.id, flags: patch.flags ?? 0, via },
          patch,
        );
        it.originalMessageId = message.id;
        break;
      }
      case CallbackType.DeferredChannelMessageWithSource: {
        if (it.kind === 'autocomplete') throw refuse('autocomplete interactions can only be answered with type 8');
        const flags = data && data.flags !== undefined ? data.flags : 0;
        if (!Number.isInteger(flags) || ((flags as number) & ~(MessageFlags.Ephemeral | MessageFlags.SuppressNotifications)) !== 0) {
          throw invalidFormBody([{ path: ['data', 'flags'], code: 'MESSAGE_FLAGS_INVALID', message: 'A deferred reply may only set the ephemeral (64) and suppress-notifications (4096) flags.' }]);
        }
        if (((flags as number) & MessageFlags.Ephemeral) === 0) this.beforeNewMessage(this.store.channels.get(it.channelId)!);
        // Discord shows a "thinking..." placeholder (flag 128) that the first @original edit replaces.
        const message = this.store.createMessage(
          {
            channelId: it.channelId,
            authorId: this.store.bot.id,
            type: responseType(it),
            origin: 'interaction-response',
            interactionId: it.id,
            flags: MessageFlags.Loading | ((flags as number) & MessageFlags.Ephemeral),
            via,
          },
          {},
        );
        it.originalMessageId = message.id;
        break;
      }
      case CallbackType.DeferredUpdateMessage:
      case CallbackType.UpdateMessage: {
        if (!componentMessage || componentMessage.deleted) throw refuse(`callback type ${type} only answers interactions that came from a message component`);
        if (type === CallbackType.UpdateMessage) {
          if (!data) throw invalidFormBody([{ path: ['data'], code: 'BASE_TYPE_REQUIRED', message: 'This field is required' }]);
          const patch = validateMessagePayload(data, uploads, { mode: 'edit', allowedFlags: EDIT_FLAGS | (componentMessage.flags & MessageFlags.Ephemeral), existing: componentMessage });
          if (!componentMessage.ephemeral) this.beforeChange(this.store.channels.get(componentMessage.channelId));
          this.store.editMessage(componentMessage, patch, via);
        }
        it.originalMessageId = componentMessage.id;
        break;
      }
      case CallbackType.ApplicationCommandAutocompleteResult: {
        if (it.kind !== 'autocomplete') throw refuse('type 8 only answers autocomplete interactions');
        const issue = autocompleteResultIssue(data, focusedOptionType(it.payload));
        if (issue) throw invalidFormBody([issue]);
        break;
      }
      case CallbackType.Modal:
        if (it.kind === 'modal-submit') throw refuse('a modal submission cannot be answered with another modal');
        it.modal = validateModal(data);
        break;
      default:
        throw refuse(`callback type ${type} is not supported here (use 4, 5, 6, 7 or 9)`);
    }
    const flags = data && Number.isInteger(data.flags) ? (data.flags as number) : 0;
    it.response = {
      type,
      typeName: CallbackTypeName[type] ?? String(type),
      data,
      flags,
      ephemeral: (flags & MessageFlags.Ephemeral) !== 0,
      at: now,
      latencyMs: now - it.dispatchedAt,
      withResponse,
    };
    this.store.changed();
    if (!withResponse) return noContent;
    const original = it.originalMessageId ? this.store.messages.get(it.originalMessageId) : undefined;
    return ok({
      interaction: {
        id: it.id,
        type: it.type,
        activity_instance_id: null,
        response_message_id: original?.id ?? null,
        response_message_loading: original ? (original.flags & MessageFlags.Loading) !== 0 : null,
        response_message_ephemeral: original ? original.ephemeral : null,
      },
      resource: { type, ...(original ? { message: this.json(original) } : {}) },
    });
  }

  /** The interaction behind /webhooks/:applicationId/:token, alive and acknowledged. */
  private webhookInteraction(c: RestContext): InteractionState {
    if (c.params.applicationId !== this.store.applicationId) throw Errors.unknownWebhook();
    const it = this.store.interactionsByToken.get(c.params.token);
    if (!it || it.expired || Date.now() > it.expiresAt) throw Errors.invalidWebhookToken();
    if (c.query.has('thread_id')) throw Errors.unknownChannel();
    if (!it.response || it.response.type === CallbackType.Modal || it.response.type === CallbackType.ApplicationCommandAutocompleteResult) {
      // Until the interaction is answered with a message type there is no webhook message to touch.
      throw Errors.unknownWebhook();
    }
    return it;
  }

  private webhookMessage(c: RestContext, it: InteractionState): StoredMessage {
    const id = c.params.messageId === '@original' ? it.originalMessageId : c.params.messageId;
    const belongs = id !== null && (id === it.originalMessageId || it.followUpIds.includes(id));
    const message = belongs ? this.store.messages.get(id) : undefined;
    if (!message || message.deleted) throw Errors.unknownMessage();
    return message;
  }

  private editWebhookMessage(c: RestContext): RestResult {
    const it = this.webhookInteraction(c);
    boolParam(c, 'with_components');
    const message = this.webhookMessage(c, it);
    const { json, uploads } = this.readMessageBody(c, it.guildId);
    const patch = validateMessagePayload(json, uploads, { mode: 'edit', allowedFlags: EDIT_FLAGS | (message.flags & MessageFlags.Ephemeral), existing: message });
    // An edit does not unarchive a thread, as a new message does.
    if (!message.ephemeral) this.beforeChange(this.store.channels.get(message.channelId));
    return ok(this.json(this.store.editMessage(message, patch, `PATCH ${c.route}`)));
  }

  private followUp(c: RestContext): RestResult {
    const it = this.webhookInteraction(c);
    const wait = boolParam(c, 'wait') ?? false;
    boolParam(c, 'with_components');
    const { json, uploads } = this.readMessageBody(c, it.guildId);
    const original = it.originalMessageId ? this.store.messages.get(it.originalMessageId) : undefined;
    let message: StoredMessage;
    if (it.response?.type === CallbackType.DeferredChannelMessageWithSource && original && (original.flags & MessageFlags.Loading) !== 0 && it.followUpIds.length === 0) {
      // Discord: the first follow-up after a deferred reply edits the "thinking..." message instead
      // (its ephemeral state stays what the deferral chose).
      const patch = validateMessagePayload(json, uploads, { mode: 'edit', allowedFlags: RESPONSE_FLAGS, existing: original });
      delete patch.flags;
      if (!original.ephemeral) this.beforeChange(this.store.channels.get(original.channelId));
      message = this.store.editMessage(original, patch, `POST ${c.route}`);
    } else {
      const patch = validateMessagePayload(json, uploads, { mode: 'create', allowedFlags: RESPONSE_FLAGS });
      if (((patch.flags ?? 0) & MessageFlags.Ephemeral) === 0) this.beforeNewMessage(this.store.channels.get(it.channelId)!);
      message = this.store.createMessage(
        { channelId: it.channelId, authorId: this.store.bot.id, type: responseType(it), origin: 'follow-up', interactionId: it.id, flags: patch.flags ?? 0, via: `POST ${c.route}` },
        patch,
      );
      it.followUpIds.push(message.id);
      this.store.changed();
    }
    return wait ? ok(this.json(message)) : noContent;
  }
}

/** The type of the option an autocomplete interaction's member is typing into (`focused: true`, possibly inside a subcommand). */
function focusedOptionType(payload: Record<string, unknown>): number {
  const find = (options: unknown): number | undefined => {
    for (const o of Array.isArray(options) ? (options as Array<Record<string, unknown>>) : []) {
      if (o.focused === true) return o.type as number;
      const inner = find(o.options);
      if (inner !== undefined) return inner;
    }
    return undefined;
  };
  const type = find((payload.data as Record<string, unknown> | undefined)?.options);
  if (type === undefined) throw new Error('an autocomplete interaction without a focused option');
  return type;
}

function responseType(it: InteractionState): number {
  return it.kind === 'command' ? MessageType.ChatInputCommand : MessageType.Reply;
}
