/**
 * startFakeDiscord(): one node:http server on 127.0.0.1 (random port) serving the REST API under
 * /api/v10, the gateway WebSocket at /gateway, and uploaded attachments under /attachments.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiError, Errors } from './errors.ts';
import { FaultInjector, type FailNextOptions } from './faults.ts';
import { FakeGateway, type DispatchResult, type GatewayClosure, type GatewayLogEntry, type IdentifyRecord } from './gateway.ts';
import { InteractionHandle } from './handle.ts';
import {
  InteractionFactory,
  type AutocompleteOptions,
  type ButtonPressOptions,
  type ModalSubmitOptions,
  type ReactionOptions,
  type SlashCommandOptions,
} from './interactions.ts';
import type { FakeChannel, FakeGuild, FakeMember, FakeUser, MessageRevision, RecordedRequest, RegisteredCommand, StoredMessage, UnhandledRequest } from './model.ts';
import { API_VERSION, Intents } from './protocol.ts';
import { apiChannel, apiGuild, premiumTierFor } from './serialize.ts';
import { buildRouter } from './rest.ts';
import { decodeSegment, type Router } from './router.ts';
import { FakeState, type ChannelInit, type GuildInit, type ThreadInit, type UserInit } from './state.ts';

export interface FakeDiscordOptions {
  /** The bot token the fake accepts (REST "Authorization: Bot ..." and gateway IDENTIFY). */
  token?: string;
  botUsername?: string;
  /** Servers the bot is in; one "Fake Server" with #general when left out. */
  guilds?: GuildInit[];
  /** Sent in HELLO; Discord uses 41250. */
  heartbeatIntervalMs?: number;
  /** A connection that sends no heartbeat for this long is closed with 4009 (default 2 intervals + 5 s). */
  heartbeatTimeoutMs?: number;
  /** Privileged intents "switched on in the developer portal" (bits of Intents); none by default. */
  privilegedIntents?: number;
  /** The `shards` GET /gateway/bot recommends. */
  recommendedShards?: number;
  /** session_start_limit.max_concurrency: shards that may IDENTIFY at once (discord.js waits 5 s otherwise). */
  maxConcurrency?: number;
  /** A first callback later than this is refused with 10062 (Discord: 3000). */
  interactionDeadlineMs?: number;
  /** Interaction tokens expire this long after the interaction (Discord: 15 minutes). */
  interactionTokenLifetimeMs?: number;
  /** How long a dropped gateway session can still be resumed. */
  resumeWindowMs?: number;
}

const MAX_BODY_BYTES = 512 * 1024 * 1024;

/** The `route` of a download from the fake CDN in `requests` (files attached to options, message attachments). */
export const ATTACHMENT_ROUTE = '/attachments/:channelId/:attachmentId/:filename';

export class FakeDiscord {
  readonly token: string;
  readonly port: number;
  /** Pass as `rest: { api: fake.restBase }` in the discord.js Client options. */
  readonly restBase: string;
  readonly gatewayUrl: string;
  /** Every HTTP request, in arrival order. */
  readonly requests: RecordedRequest[] = [];
  /** Requests no route handles (404 / 405): a test can assert this stays empty. */
  readonly unhandled: UnhandledRequest[] = [];
  /** Exceptions inside the fake itself (answered with 500); should always stay empty. */
  readonly serverErrors: string[] = [];
  readonly gateway: FakeGateway;
  private readonly store: FakeState;
  private readonly router: Router;
  private readonly factory: InteractionFactory;
  private readonly faults = new FaultInjector();
  private closed = false;

  /** @internal use startFakeDiscord() */
  constructor(
    private readonly server: Server,
    parts: { store: FakeState; gateway: FakeGateway; router: Router; factory: InteractionFactory; token: string },
  ) {
    this.store = parts.store;
    this.gateway = parts.gateway;
    this.router = parts.router;
    this.factory = parts.factory;
    this.token = parts.token;
    this.port = (server.address() as AddressInfo).port;
    const host = `127.0.0.1:${this.port}`;
    this.restBase = `http://${host}/api`;
    this.gatewayUrl = `ws://${host}/gateway`;
    this.store.publicBase = `http://${host}`;
    this.gateway.url = this.gatewayUrl;
    this.gateway.resumeUrl = `ws://${host}/gateway/resume`;
    server.on('request', (req, res) => void this.onRequest(req, res));
    server.on('upgrade', (req, socket, head) => {
      const path = new URL(req.url ?? '/', 'http://fake').pathname;
      if (path === '/gateway' || path === '/gateway/resume') return this.gateway.handleUpgrade(req, socket, head);
      this.unhandled.push({ method: 'UPGRADE', path, at: Date.now(), reason: 'WebSocket upgrade to a path other than /gateway' });
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
    });
  }

  // ---- the world ----

  get bot(): FakeUser {
    return this.store.bot;
  }
  get applicationId(): string {
    return this.store.applicationId;
  }
  get identifies(): IdentifyRecord[] {
    return this.gateway.identifies;
  }
  /** The newest IDENTIFY (intents, shard, properties), or undefined before any. */
  get lastIdentify(): IdentifyRecord | undefined {
    return this.gateway.identifies.at(-1);
  }
  get gatewayLog(): GatewayLogEntry[] {
    return this.gateway.log;
  }
  get gatewayClosures(): GatewayClosure[] {
    return this.gateway.closures;
  }

  /** A server by id or name; the first one when left out. */
  guild(idOrName?: string): FakeGuild {
    const guilds = [...this.store.guilds.values()];
    const guild = idOrName === undefined ? guilds[0] : guilds.find((g) => g.id === idOrName || g.name === idOrName);
    if (!guild) throw new Error(`the fake Discord has no server ${idOrName ?? '(none configured)'}`);
    return guild;
  }

  /** Every server the bot is in, in creation order. */
  guilds(): FakeGuild[] {
    return [...this.store.guilds.values()];
  }

  /** A channel by id, or by name in the first server (or the given one). */
  channel(idOrName: string, guildId?: string): FakeChannel {
    const byId = this.store.channels.get(idOrName);
    if (byId) return byId;
    const channel = this.guild(guildId).channels.find((c) => c.name === idOrName);
    if (!channel) throw new Error(`the fake Discord has no channel ${idOrName}`);
    return channel;
  }

  createUser(init: UserInit = {}): FakeUser {
    return this.store.createUser(init);
  }

  user(id: string): FakeUser {
    return this.store.user(id);
  }

  /** Adds a user to a server with role ids or names (the first server when guildId is left out). */
  addMember(user: FakeUser, opts: { guildId?: string; roles?: string[] } = {}): FakeMember {
    return this.store.addMember(this.guild(opts.guildId).id, user, opts.roles ?? []);
  }

  addChannel(init: ChannelInit, guildId?: string): FakeChannel {
    return this.store.addChannel(this.guild(guildId).id, init);
  }

  /**
   * Starts a thread in a channel of the server (the first one when guildId is left out) and tells
   * the bot (THREAD_CREATE). Commands can be sent in it by its id (`channelId`).
   */
  addThread(init: ThreadInit, guildId?: string): FakeChannel {
    const guild = this.guild(guildId);
    const thread = this.store.addThread(guild.id, init);
    if (this.gateway.servesGuild(guild.id)) this.gateway.dispatchToGuild(guild.id, 'THREAD_CREATE', { ...apiChannel(thread), newly_created: true }, Intents.Guilds);
    return thread;
  }

  /**
   * Archives, unarchives, locks or unlocks a thread (by id, or by name in the first server or the
   * given one), as a member with Manage Threads (or Discord's auto-archive) does, and tells the bot
   * (THREAD_UPDATE). An archived thread refuses edits (50083) until a new message (unless it is
   * locked) or PATCH /channels/:id with archived false unarchives it.
   */
  setThread(idOrName: string, change: { archived?: boolean; locked?: boolean }, guildId?: string): FakeChannel {
    const thread = this.channel(idOrName, guildId);
    this.store.setThreadState(thread, change);
    if (thread.guildId && this.gateway.servesGuild(thread.guildId)) this.gateway.dispatchToGuild(thread.guildId, 'THREAD_UPDATE', apiChannel(thread), Intents.Guilds);
    return thread;
  }

  /**
   * Deletes a channel (by id, or by name in the first server or the given one), as a member with
   * Manage Channels does: REST calls on it answer 10003 Unknown Channel, its messages are gone, and
   * the bot is sent CHANNEL_DELETE.
   */
  deleteChannel(idOrName: string, guildId?: string): void {
    const channel = this.channel(idOrName, guildId);
    this.store.deleteChannel(channel);
    if (channel.guildId) this.gateway.dispatchToGuild(channel.guildId, 'CHANNEL_DELETE', apiChannel(channel), Intents.Guilds);
  }

  /** The bot's DM channel with `user`, once the bot has opened one (POST /users/@me/channels). */
  dmChannel(user: FakeUser): FakeChannel | undefined {
    return this.store.dmChannels.get(user.id);
  }

  addRole(name: string, permissions: bigint, guildId?: string) {
    return this.store.addRole(this.guild(guildId), name, permissions);
  }

  /**
   * Changes a server's per-file upload limit (bytes). Its Boost level (`premium_tier`) follows the
   * limit (50 MiB: tier 2, 100 MiB: tier 3, less: none); when that changes, the bot is sent
   * GUILD_UPDATE, as Discord does when a server gains or loses boosts.
   */
  setAttachmentSizeLimit(bytes: number, guildId?: string): void {
    const guild = this.guild(guildId);
    const tier = premiumTierFor(guild.attachmentSizeLimit);
    guild.attachmentSizeLimit = bytes;
    if (premiumTierFor(bytes) !== tier && this.gateway.servesGuild(guild.id)) this.gateway.dispatchToGuild(guild.id, 'GUILD_UPDATE', apiGuild(guild), Intents.Guilds);
  }

  /** Registered commands: global ones, or a server's when guildId is given. */
  commands(guildId?: string): RegisteredCommand[] {
    return this.store.commandsIn(guildId ?? 'global');
  }

  // ---- what users do ----

  /** A user runs a slash command; Discord's checks on options and permissions apply. */
  sendSlashCommand(opts: SlashCommandOptions): InteractionHandle {
    return this.factory.slashCommand(opts);
  }

  /**
   * A user types into an option registered with autocomplete: the interaction (type 4) carries the
   * options filled in so far and the typed text with `focused: true`; the bot answers with type 8
   * (`handle.waitForChoices()`).
   */
  sendAutocomplete(opts: AutocompleteOptions): InteractionHandle {
    return this.factory.autocomplete(opts);
  }

  pressButton(opts: ButtonPressOptions): InteractionHandle {
    return this.factory.pressButton(opts);
  }

  submitModal(opts: ModalSubmitOptions): InteractionHandle {
    return this.factory.submitModal(opts);
  }

  /** Adds a reaction; `delivered` is false when the bot did not ask for the reactions intent. */
  addReaction(opts: ReactionOptions): DispatchResult {
    return this.factory.addReaction(opts);
  }

  removeReaction(opts: ReactionOptions): DispatchResult {
    return this.factory.removeReaction(opts);
  }

  /** An interaction handle by interaction id or token. */
  interaction(idOrToken: string): InteractionHandle {
    const state = this.store.interactions.get(idOrToken) ?? this.store.interactionsByToken.get(idOrToken);
    if (!state) throw new Error(`the fake Discord has no interaction ${idOrToken}`);
    return new InteractionHandle(this.store, state);
  }

  // ---- what the bot did ----

  /** Messages (oldest first) in one channel or everywhere; deleted ones only when asked. */
  messages(channelId?: string, opts: { includeDeleted?: boolean } = {}): StoredMessage[] {
    return [...this.store.messages.values()].filter((m) => (channelId === undefined || m.channelId === channelId) && (opts.includeDeleted || !m.deleted));
  }

  message(id: string): StoredMessage | undefined {
    return this.store.messages.get(id);
  }

  /** Resolves with the first message (existing, new or just edited) for which predicate is true. */
  waitForMessage(predicate: (m: StoredMessage) => boolean, timeoutMs = 5000): Promise<StoredMessage> {
    return this.store.waitFor(() => this.messages().find(predicate), timeoutMs, 'a message matching the predicate');
  }

  /** Resolves with the first recorded request for which predicate is true. */
  waitForRequest(predicate: (r: RecordedRequest) => boolean, timeoutMs = 5000): Promise<RecordedRequest> {
    return this.store.waitFor(() => this.requests.find(predicate), timeoutMs, 'a request matching the predicate');
  }

  /** The message behind an interaction's @original (null before the bot answers with one). */
  originalResponse(handle: InteractionHandle): StoredMessage | null {
    return handle.original();
  }

  /** Every edit of a message (by id, message, or an interaction's @original), oldest first. */
  edits(target: string | StoredMessage | InteractionHandle): MessageRevision[] {
    const message =
      target instanceof InteractionHandle ? target.original() : typeof target === 'string' ? this.store.messages.get(target) : target;
    if (!message) throw new Error('edits(): no such message (has the bot answered the interaction yet?)');
    return message.revisions.slice(1);
  }

  // ---- faults ----

  /** Answers the next request(s) matching `route` with an error (429 with proper headers, 413, 5xx...). */
  failNext(opts: FailNextOptions): void {
    this.faults.add(opts);
  }

  /** Drops every pending fault: an outage made with `times` larger than needed ends now. */
  clearFaults(): void {
    this.faults.clear();
  }

  get pendingFaults(): number {
    return this.faults.pendingCount;
  }

  /** Kills an interaction token now: webhook calls answer 401 / 50027, callbacks 404 / 10062. */
  expireToken(token: string): void {
    const state = this.store.interactionsByToken.get(token);
    if (!state) throw new Error('expireToken(): the fake Discord issued no such interaction token');
    state.expired = true;
  }

  // ---- lifecycle ----

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.store.failAllWaiters('the fake Discord was closed');
    this.gateway.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://fake');
    let path = url.pathname;
    let route: string | null = null;
    let injected = false;
    const finish = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
      const error = status >= 400 && typeof body === 'object' && body !== null ? (body as { code?: number; message?: string }) : null;
      this.requests.push({
        method,
        path,
        route,
        query: url.search,
        status,
        errorCode: error ? (error.code ?? 0) : null,
        errorMessage: error?.message ?? null,
        injected,
        at: started,
        durationMs: Date.now() - started,
      });
      if (body === undefined) res.writeHead(status, headers).end();
      else res.writeHead(status, { 'Content-Type': 'application/json', ...headers }).end(JSON.stringify(body));
      this.store.changed();
    };
    try {
      if (method === 'GET' && path.startsWith('/attachments/')) {
        route = ATTACHMENT_ROUTE;
        const record = (status: number) => {
          this.requests.push({ method, path, route, query: url.search, status, errorCode: null, errorMessage: null, injected, at: started, durationMs: Date.now() - started });
          this.store.changed();
        };
        return await this.serveAttachment(path, res, finish, record);
      }
      const versioned = /^\/api\/v(\d+)(\/.*)$/.exec(path);
      if (!versioned) {
        this.unhandled.push({ method, path, at: started, reason: 'not under /api/v10' });
        return finish(404, Errors.notFound().body());
      }
      const rawPath = versioned[2];
      // discord.js percent-encodes segments such as "@original" and emoji; faults and records use the readable form.
      path = decodePath(rawPath);
      if (versioned[1] !== String(API_VERSION)) throw Errors.invalidApiVersion();
      const body = await readBody(req);
      const matched = this.router.match(method, rawPath);
      if (!('route' in matched)) {
        this.unhandled.push({ method, path, at: started, reason: matched.status === 405 ? 'method not allowed on this path' : 'no such route in the fake' });
        return finish(matched.status, (matched.status === 405 ? Errors.methodNotAllowed() : Errors.notFound()).body());
      }
      route = matched.route.template;
      const fault = this.faults.take(method, path);
      if (fault) {
        injected = true;
        return finish(fault.status, fault.body(), fault.headers);
      }
      if (matched.route.auth && req.headers.authorization !== `Bot ${this.token}`) throw Errors.unauthorized();
      const result = matched.route.handler({ method, path, params: matched.params, query: url.searchParams, headers: req.headers, body, route });
      finish(result.status, result.body);
    } catch (error) {
      if (error instanceof ApiError) return finish(error.status, error.body(), error.headers);
      const text = `${method} ${path}: ${(error as Error).stack ?? String(error)}`;
      this.serverErrors.push(text);
      console.error(`[fake-discord] internal error in ${text}`);
      finish(500, { message: `fake Discord internal error: ${(error as Error).message}`, code: 0 });
    }
  }

  /**
   * The fake CDN: files users attached to slash-command options (after their cdnDelayMs; their
   * cdnStatus instead of the file when set) and the attachments of messages. Recorded in
   * `requests` under ATTACHMENT_ROUTE, `durationMs` up to the last byte.
   */
  private async serveAttachment(path: string, res: ServerResponse, finish: (status: number, body?: unknown) => void, record: (status: number) => void): Promise<void> {
    const [, , channelId, attachmentId] = path.split('/');
    const upload = this.store.uploads.get(attachmentId);
    let served: { contentType: string | null; size: number; bytes: Buffer } | undefined;
    if (upload && upload.channelId === channelId) {
      if (upload.cdnDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, upload.cdnDelayMs));
      const status = upload.cdnStatus;
      if (status !== null) {
        res.writeHead(status, { 'Content-Type': 'text/plain' }).end(`HTTP ${status}`, () => record(status));
        return;
      }
      served = upload;
    } else {
      for (const message of this.store.messages.values()) {
        if (message.channelId !== channelId) continue;
        served = message.revisions.flatMap((r) => r.attachments).find((a) => a.id === attachmentId);
        if (served) break;
      }
    }
    if (!served) return finish(404, Errors.notFound().body());
    // The bytes' own length: an upload's declaredSize is what its attachment object says, not what the CDN sends.
    res.writeHead(200, { 'Content-Type': served.contentType ?? 'application/octet-stream', 'Content-Length': served.bytes.length });
    res.end(served.bytes, () => record(200));
  }
}

function decodePath(raw: string): string {
  return raw.split('/').map(decodeSegment).join('/');
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.destroy();
        reject(Errors.entityTooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function startFakeDiscord(opts: FakeDiscordOptions = {}): Promise<FakeDiscord> {
  const token = opts.token ?? 'fake.token.value';
  const heartbeatIntervalMs = opts.heartbeatIntervalMs ?? 41_250;
  const privilegedIntents = opts.privilegedIntents ?? 0;
  const store = new FakeState(opts.botUsername ?? 'blendfarm-test-bot');
  for (const guild of opts.guilds ?? [{}]) store.createGuild(guild);
  const gateway = new FakeGateway(store, {
    token,
    heartbeatIntervalMs,
    heartbeatTimeoutMs: opts.heartbeatTimeoutMs ?? heartbeatIntervalMs * 2 + 5000,
    privilegedIntents,
    resumeWindowMs: opts.resumeWindowMs ?? 5 * 60_000,
  });
  const factory = new InteractionFactory(store, gateway, {
    deadlineMs: opts.interactionDeadlineMs ?? 3000,
    tokenLifetimeMs: opts.interactionTokenLifetimeMs ?? 15 * 60_000,
  });
  const router = buildRouter(store, gateway, factory, { token, recommendedShards: opts.recommendedShards ?? 1, maxConcurrency: opts.maxConcurrency ?? 1, privilegedIntents });
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return new FakeDiscord(server, { store, gateway, router, factory, token });
}
