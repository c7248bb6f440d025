/** What every group of routes shares: the world, the gateway, and reading request bodies strictly. */
import type { FakeGateway } from './gateway.ts';
import type { InteractionFactory } from './interactions.ts';
import { parseJson, readMultipartMessage, type Upload } from './message-payload.ts';
import type { FakeChannel, StoredMessage } from './model.ts';
import { Intents, Permissions } from './protocol.ts';
import { parseMultipart } from './multipart.ts';
import { Errors } from './errors.ts';
import type { RestContext, Router } from './router.ts';
import { apiChannel, apiMessage, type Json } from './serialize.ts';
import type { FakeState } from './state.ts';

export interface RestConfig {
  token: string;
  recommendedShards: number;
  maxConcurrency: number;
  privilegedIntents: number;
}

export abstract class RouteGroup {
  constructor(
    protected readonly store: FakeState,
    protected readonly gateway: FakeGateway,
    protected readonly interactions: InteractionFactory,
    protected readonly config: RestConfig,
  ) {}

  abstract register(router: Router): void;

  protected json(message: StoredMessage): Json {
    return apiMessage(message, this.interactions.messageContext());
  }

  protected readJson(c: RestContext): unknown {
    if (c.body.length === 0) throw Errors.badRequest(`${c.method} ${c.route} needs a JSON body`);
    const type = c.headers['content-type'] ?? '';
    if (!type.startsWith('application/json')) throw Errors.badRequest(`${c.method} ${c.route} takes application/json, got "${type}"`);
    return parseJson(c.body.toString('utf8'));
  }

  /**
   * Before the bot posts a new message in `channel`: in a locked thread only a member with Manage
   * Threads may (else 50083 while it is archived, 160005 otherwise); an archived thread that is
   * not locked is unarchived by the message, and the bot told (THREAD_UPDATE), as on Discord.
   */
  protected beforeNewMessage(channel: FakeChannel): void {
    const thread = channel.thread;
    if (!thread || !channel.guildId) return;
    const guild = this.store.guild(channel.guildId);
    const moderator = (this.store.permissionsOf(guild, this.store.bot.id) & Permissions.ManageThreads) !== 0n;
    if (thread.locked && !moderator) throw thread.archived ? Errors.threadArchived() : Errors.threadLocked();
    if (thread.archived) this.setThreadState(channel, { archived: false });
  }

  /** Before the bot edits, deletes or reacts to a message in `channel`: an archived thread refuses it (50083) until it is unarchived. */
  protected beforeChange(channel: FakeChannel | undefined): void {
    if (channel?.thread?.archived) throw Errors.threadArchived();
  }

  /** Changes a thread's state and sends THREAD_UPDATE to the bot (Guilds intent). */
  protected setThreadState(channel: FakeChannel, change: { archived?: boolean; locked?: boolean }): void {
    this.store.setThreadState(channel, change);
    if (channel.guildId && this.gateway.servesGuild(channel.guildId)) this.gateway.dispatchToGuild(channel.guildId, 'THREAD_UPDATE', apiChannel(channel), Intents.Guilds);
  }

  /** JSON, or multipart with payload_json + files[n]; files over the server's limit get 413 / 40005. */
  protected readMessageBody(c: RestContext, guildId: string | null): { json: unknown; uploads: Upload[] } {
    const type = c.headers['content-type'] ?? '';
    if (type.startsWith('multipart/form-data')) {
      const { json, uploads } = readMultipartMessage(parseMultipart(c.body, type));
      const limit = guildId ? this.store.guild(guildId).attachmentSizeLimit : 10 * 1024 * 1024;
      if (uploads.some((u) => u.data.length > limit)) throw Errors.entityTooLarge();
      return { json, uploads };
    }
    return { json: this.readJson(c), uploads: [] };
  }
}
