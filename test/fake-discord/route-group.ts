/** What every group of routes shares: the world, the gateway, and reading request bodies strictly. */
import type { FakeGateway } from './gateway.ts';
import type { InteractionFactory } from './interactions.ts';
import { parseJson, readMultipartMessage, type Upload } from './message-payload.ts';
import type { StoredMessage } from './model.ts';
import { parseMultipart } from './multipart.ts';
import { Errors } from './errors.ts';
import type { RestContext, Router } from './router.ts';
import { apiMessage, type Json } from './serialize.ts';
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
