/**
 * The fake gateway: HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, RESUME with replay,
 * and dispatches routed to the shard that owns a server, as Discord routes them.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { deflateSync } from 'node:zlib';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import { apiChannel, apiGuild, apiMember, apiUser, type Json } from './serialize.ts';
import { isRecord } from './checks.ts';
import type { FakeGuild } from './model.ts';
import {
  ALL_INTENTS,
  API_VERSION,
  ApplicationFlags,
  GatewayClose,
  GatewayOp,
  Intents,
  PRIVILEGED_INTENTS,
  intentNames,
  type IntentName,
} from './protocol.ts';
import type { FakeState } from './state.ts';

export interface GatewayOptions {
  token: string;
  heartbeatIntervalMs: number;
  /** The fake closes a connection (4009) that sends no heartbeat for this long. */
  heartbeatTimeoutMs: number;
  /** Privileged intents switched on "in the developer portal"; others are refused with 4014. */
  privilegedIntents: number;
  /** How long after a dropped connection its session may still be resumed. */
  resumeWindowMs: number;
}

export interface IdentifyRecord {
  at: number;
  sessionId: string;
  intents: number;
  intentNames: IntentName[];
  shard: [number, number];
  properties: Record<string, unknown>;
  presence: unknown;
  largeThreshold: number | null;
}

export interface GatewayLogEntry {
  at: number;
  direction: 'in' | 'out';
  op: number;
  t: string | null;
  s: number | null;
  connection: number;
  sessionId: string | null;
}

export interface GatewayClosure {
  at: number;
  connection: number;
  sessionId: string | null;
  code: number;
  reason: string;
  by: 'client' | 'fake';
}

interface Payload {
  op: number;
  d: unknown;
  s: number | null;
  t: string | null;
}

interface Session {
  id: string;
  shard: [number, number];
  intents: number;
  seq: number;
  /** Sent dispatches kept for RESUME replays. */
  sent: Payload[];
  conn: Connection | null;
  identifiedAt: number;
  droppedAt: number | null;
  ended: boolean;
  resumes: number;
}

interface Connection {
  id: number;
  socket: WebSocket;
  session: Session | null;
  compress: boolean;
  watchdog: NodeJS.Timeout | null;
  closingByFake: boolean;
}

export interface DispatchResult {
  sessionId: string;
  /** False when the session lacks the intent the event needs (Discord would not send it). */
  delivered: boolean;
}

const REPLAY_LIMIT = 1000;

export class FakeGateway {
  readonly identifies: IdentifyRecord[] = [];
  readonly log: GatewayLogEntry[] = [];
  readonly closures: GatewayClosure[] = [];
  /** Problems with what a client sent, in words (also visible as close codes). */
  readonly protocolErrors: string[] = [];
  heartbeatsAcked = 0;
  resumes = 0;
  sessionStarts = 0;
  private readonly sessions = new Map<string, Session>();
  private readonly connections = new Set<Connection>();
  private readonly wss = new WebSocketServer({ noServer: true });
  private nextConnection = 1;
  url = '';
  resumeUrl = '';

  constructor(
    private readonly state: FakeState,
    private readonly opts: GatewayOptions,
  ) {}

  /** Takes an HTTP upgrade to /gateway (or /gateway/resume, the resume_gateway_url). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, new URL(req.url ?? '/', 'http://fake')));
  }

  private accept(socket: WebSocket, url: URL): void {
    const conn: Connection = { id: this.nextConnection++, socket, session: null, compress: false, watchdog: null, closingByFake: false };
    this.connections.add(conn);
    socket.on('message', (data, isBinary) => this.onMessage(conn, data, isBinary));
    socket.on('close', (code, reason) => this.onClose(conn, code, reason.toString()));
    socket.on('error', () => {});
    const v = url.searchParams.get('v');
    if (v !== String(API_VERSION)) return this.fail(conn, GatewayClose.InvalidApiVersion, `gateway URL asked for v=${v}; the fake speaks v=${API_VERSION}`);
    const encoding = url.searchParams.get('encoding');
    if (encoding !== 'json') return this.fail(conn, GatewayClose.DecodeError, `gateway URL asked for encoding=${encoding}; the fake speaks encoding=json`);
    if (url.searchParams.has('compress')) {
      return this.fail(conn, GatewayClose.InvalidApiVersion, `gateway URL asked for compress=${url.searchParams.get('compress')}; the fake does not do transport compression (is zlib-sync installed?)`);
    }
    this.send(conn, { op: GatewayOp.Hello, d: { heartbeat_interval: this.opts.heartbeatIntervalMs, _trace: ['["fake-discord-gateway"]'] }, s: null, t: null });
    this.armWatchdog(conn);
  }

  private onMessage(conn: Connection, data: RawData, isBinary: boolean): void {
    if (isBinary) return this.fail(conn, GatewayClose.DecodeError, 'client sent a binary frame; the fake gateway reads JSON text frames');
    let payload: unknown;
    try {
      payload = JSON.parse(data.toString());
    } catch {
      return this.fail(conn, GatewayClose.DecodeError, 'client sent a frame that is not JSON');
    }
    if (!isRecord(payload) || !Number.isInteger(payload.op)) return this.fail(conn, GatewayClose.DecodeError, 'client sent a payload without an integer "op"');
    const op = payload.op as number;
    this.log.push({ at: Date.now(), direction: 'in', op, t: null, s: null, connection: conn.id, sessionId: conn.session?.id ?? null });
    const d = payload.d;
    switch (op) {
      case GatewayOp.Heartbeat:
        if (d !== null && !Number.isInteger(d)) return this.fail(conn, GatewayClose.DecodeError, `heartbeat d must be the last sequence number or null, got ${JSON.stringify(d)}`);
        this.armWatchdog(conn);
        this.heartbeatsAcked++;
        return this.send(conn, { op: GatewayOp.HeartbeatAck, d: null, s: null, t: null });
      case GatewayOp.Identify:
        if (conn.session) return this.fail(conn, GatewayClose.AlreadyAuthenticated, 'client sent IDENTIFY on an identified connection');
        return this.identify(conn, d);
      case GatewayOp.Resume:
        if (conn.session) return this.fail(conn, GatewayClose.AlreadyAuthenticated, 'client sent RESUME on an identified connection');
        return this.resume(conn, d);
      case GatewayOp.PresenceUpdate:
      case GatewayOp.VoiceStateUpdate:
        if (!conn.session) return this.fail(conn, GatewayClose.NotAuthenticated, `client sent op ${op} before IDENTIFY`);
        return;
      case GatewayOp.RequestGuildMembers:
        if (!conn.session) return this.fail(conn, GatewayClose.NotAuthenticated, 'client sent REQUEST_GUILD_MEMBERS before IDENTIFY');
        return this.requestMembers(conn.session, d);
      case GatewayOp.RequestSoundboardSounds:
        if (!conn.session) return this.fail(conn, GatewayClose.NotAuthenticated, 'client sent REQUEST_SOUNDBOARD_SOUNDS before IDENTIFY');
        return;
      default:
        return this.fail(conn, GatewayClose.UnknownOpcode, `client sent unknown opcode ${op}`);
    }
  }

  private identify(conn: Connection, d: unknown): void {
    if (!isRecord(d)) return this.fail(conn, GatewayClose.DecodeError, 'IDENTIFY without a d object');
    if (d.token !== this.opts.token) return this.fail(conn, GatewayClose.AuthenticationFailed, 'IDENTIFY with a token the fake does not accept');
    const props = d.properties;
    if (!isRecord(props) || typeof props.os !== 'string' || typeof props.browser !== 'string' || typeof props.device !== 'string') {
      return this.fail(conn, GatewayClose.DecodeError, 'IDENTIFY properties must have os, browser and device strings');
    }
    if (!Number.isInteger(d.intents)) return this.fail(conn, GatewayClose.DecodeError, 'IDENTIFY without integer intents');
    const intents = d.intents as number;
    if ((intents & ~ALL_INTENTS) !== 0) return this.fail(conn, GatewayClose.InvalidIntents, `IDENTIFY with unknown intent bits ${intents & ~ALL_INTENTS}`);
    const refused = intents & PRIVILEGED_INTENTS & ~this.opts.privilegedIntents;
    if (refused !== 0) {
      return this.fail(conn, GatewayClose.DisallowedIntents, `IDENTIFY asked for privileged intents not enabled for this application: ${intentNames(refused).join(', ')}`);
    }
    const shard = d.shard ?? [0, 1];
    if (!Array.isArray(shard) || shard.length !== 2 || !shard.every(Number.isInteger) || shard[0] < 0 || shard[0] >= shard[1]) {
      return this.fail(conn, GatewayClose.InvalidShard, `IDENTIFY with invalid shard ${JSON.stringify(shard)}`);
    }
    const large = d.large_threshold;
    if (large !== undefined && (!Number.isInteger(large) || (large as number) < 50 || (large as number) > 250)) {
      return this.fail(conn, GatewayClose.DecodeError, 'IDENTIFY large_threshold must be 50..250');
    }
    conn.compress = d.compress === true;
    const session: Session = {
      id: randomBytes(16).toString('hex'),
      shard: [shard[0], shard[1]],
      intents,
      seq: 0,
      sent: [],
      conn,
      identifiedAt: Date.now(),
      droppedAt: null,
      ended: false,
      resumes: 0,
    };
    conn.session = session;
    this.sessions.set(session.id, session);
    this.sessionStarts++;
    this.identifies.push({
      at: Date.now(),
      sessionId: session.id,
      intents,
      intentNames: intentNames(intents),
      shard: session.shard,
      properties: props,
      presence: d.presence ?? null,
      largeThreshold: (large as number | undefined) ?? null,
    });
    const guilds = [...this.state.guilds.values()].filter((g) => this.shardOf(g.id, session.shard[1]) === session.shard[0]);
    this.dispatchTo(session, 'READY', {
      v: API_VERSION,
      user: { ...apiUser(this.state.bot), verified: true, mfa_enabled: false, email: null },
      guilds: guilds.map((g) => ({ id: g.id, unavailable: true })),
      session_id: session.id,
      session_type: 'normal',
      resume_gateway_url: this.resumeUrl,
      shard: session.shard,
      application: { id: this.state.applicationId, flags: this.applicationFlags() },
      private_channels: [],
      relationships: [],
      presences: [],
      guild_join_requests: [],
      geo_ordered_rtc_regions: [],
      user_settings: {},
      _trace: ['["fake-discord-gateway"]'],
    });
    // Without the Guilds intent Discord never sends the server payloads (discord.js then stops waiting).
    if ((intents & Intents.Guilds) !== 0) for (const guild of guilds) this.dispatchTo(session, 'GUILD_CREATE', this.guildCreate(guild, intents));
  }

  private resume(conn: Connection, d: unknown): void {
    if (!isRecord(d) || typeof d.session_id !== 'string' || !Number.isInteger(d.seq)) {
      return this.fail(conn, GatewayClose.DecodeError, 'RESUME needs token, session_id and an integer seq');
    }
    const session = this.sessions.get(d.session_id);
    const resumable =
      session &&
      !session.ended &&
      d.token === this.opts.token &&
      (session.droppedAt === null || Date.now() - session.droppedAt <= this.opts.resumeWindowMs);
    if (!session || !resumable) {
      this.protocolErrors.push(`RESUME of session ${d.session_id} refused (unknown, ended, expired or wrong token): sent INVALID_SESSION`);
      return this.send(conn, { op: GatewayOp.InvalidSession, d: false, s: null, t: null });
    }
    const seq = d.seq as number;
    if (seq > session.seq) return this.fail(conn, GatewayClose.InvalidSeq, `RESUME with seq ${seq} beyond the last sent ${session.seq}`);
    if (session.conn && session.conn !== conn) this.closeByFake(session.conn, GatewayClose.UnknownError, 'session resumed on another connection');
    session.conn = conn;
    session.droppedAt = null;
    session.resumes++;
    this.resumes++;
    conn.session = session;
    for (const payload of session.sent) if ((payload.s ?? 0) > seq) this.send(conn, payload);
    this.dispatchTo(session, 'RESUMED', { _trace: ['["fake-discord-gateway"]'] });
  }

  private requestMembers(session: Session, d: unknown): void {
    if (!isRecord(d) || typeof d.guild_id !== 'string') return;
    const guild = this.state.guilds.get(d.guild_id);
    if (!guild) return;
    const ids = Array.isArray(d.user_ids) ? (d.user_ids as string[]) : typeof d.user_ids === 'string' ? [d.user_ids] : null;
    const query = typeof d.query === 'string' ? d.query.toLowerCase() : null;
    const everyone = ids === null && (query === '' || query === null);
    if (everyone && (session.intents & Intents.GuildMembers) === 0) {
      this.protocolErrors.push('REQUEST_GUILD_MEMBERS for all members without the GuildMembers intent');
      if (session.conn) this.fail(session.conn, GatewayClose.DisallowedIntents, 'requesting all guild members needs the GuildMembers intent');
      return;
    }
    const members = [...guild.members.values()].filter((m) => {
      if (ids) return ids.includes(m.userId);
      const user = this.state.user(m.userId);
      return query === null || query === '' || user.username.toLowerCase().startsWith(query);
    });
    const limit = Number.isInteger(d.limit) && (d.limit as number) > 0 ? (d.limit as number) : members.length;
    this.dispatchTo(session, 'GUILD_MEMBERS_CHUNK', {
      guild_id: guild.id,
      members: members.slice(0, limit).map((m) => apiMember(m, this.state.user(m.userId))),
      chunk_index: 0,
      chunk_count: 1,
      not_found: ids ? ids.filter((id) => !guild.members.has(id)) : [],
      ...(d.nonce !== undefined ? { nonce: d.nonce } : {}),
    });
  }

  guildCreate(guild: FakeGuild, intents: number): Json {
    // Discord sends the full member list only to bots with the GuildMembers intent.
    const members = [...guild.members.values()].filter((m) => (intents & Intents.GuildMembers) !== 0 || m.userId === this.state.bot.id);
    const botMember = guild.members.get(this.state.bot.id);
    return {
      ...apiGuild(guild),
      joined_at: botMember?.joinedAt ?? new Date().toISOString(),
      large: false,
      unavailable: false,
      member_count: guild.members.size,
      members: members.map((m) => apiMember(m, this.state.user(m.userId))),
      // Threads are not channels here: the active ones the bot can see come as `threads`.
      channels: guild.channels
        .filter((c) => c.thread === null)
        .map((c) => {
          const { guild_id: _omit, ...rest } = apiChannel(c);
          return rest;
        }),
      threads: guild.channels.filter((c) => c.thread !== null && !c.thread.archived).map(apiChannel),
      presences: [],
      voice_states: [],
      stage_instances: [],
      guild_scheduled_events: [],
      soundboard_sounds: [],
      embedded_activities: [],
      lazy: true,
    };
  }

  /** Application flags: which privileged intents the "developer portal" has switched on. */
  applicationFlags(): number {
    let flags = ApplicationFlags.ApplicationCommandBadge;
    if (this.opts.privilegedIntents & Intents.GuildPresences) flags |= ApplicationFlags.GatewayPresenceLimited;
    if (this.opts.privilegedIntents & Intents.GuildMembers) flags |= ApplicationFlags.GatewayGuildMembersLimited;
    if (this.opts.privilegedIntents & Intents.MessageContent) flags |= ApplicationFlags.GatewayMessageContentLimited;
    return flags;
  }

  shardOf(guildId: string, shardCount: number): number {
    return Number((BigInt(guildId) >> 22n) % BigInt(shardCount));
  }

  /**
   * Sends an event to the session that owns `guildId`: the newest live one, else the newest one
   * that can still resume (the event is then replayed on RESUME, as Discord does).
   */
  dispatchToGuild(guildId: string, t: string, d: Json, neededIntent?: number): DispatchResult {
    const session = this.sessionFor(guildId);
    if (!session) throw new Error(`no bot session on the fake gateway receives events for server ${guildId}: log a discord.js Client in first`);
    if (neededIntent !== undefined && (session.intents & neededIntent) === 0) return { sessionId: session.id, delivered: false };
    this.dispatchTo(session, t, d);
    return { sessionId: session.id, delivered: true };
  }

  /** Whether a bot session receives (or, resuming, will receive) events for `guildId`. */
  servesGuild(guildId: string): boolean {
    return this.sessionFor(guildId) !== undefined;
  }

  private sessionFor(guildId: string): Session | undefined {
    return [...this.sessions.values()]
      .filter((s) => !s.ended && this.shardOf(guildId, s.shard[1]) === s.shard[0])
      .filter((s) => s.conn !== null || (s.droppedAt !== null && Date.now() - s.droppedAt <= this.opts.resumeWindowMs))
      .sort((a, b) => Number(b.conn !== null) - Number(a.conn !== null) || b.identifiedAt - a.identifiedAt)[0];
  }

  private dispatchTo(session: Session, t: string, d: unknown): void {
    session.seq++;
    const payload: Payload = { op: GatewayOp.Dispatch, d, s: session.seq, t };
    session.sent.push(payload);
    if (session.sent.length > REPLAY_LIMIT) session.sent.shift();
    if (session.conn) this.send(session.conn, payload);
  }

  private send(conn: Connection, payload: Payload): void {
    if (conn.socket.readyState !== WebSocket.OPEN) return;
    this.log.push({ at: Date.now(), direction: 'out', op: payload.op, t: payload.t, s: payload.s, connection: conn.id, sessionId: conn.session?.id ?? null });
    const text = JSON.stringify(payload);
    if (conn.compress) conn.socket.send(deflateSync(text), { binary: true });
    else conn.socket.send(text);
  }

  private armWatchdog(conn: Connection): void {
    if (conn.watchdog) clearTimeout(conn.watchdog);
    conn.watchdog = setTimeout(() => this.fail(conn, GatewayClose.SessionTimedOut, `no heartbeat for ${this.opts.heartbeatTimeoutMs} ms`), this.opts.heartbeatTimeoutMs);
    conn.watchdog.unref();
  }

  private fail(conn: Connection, code: number, why: string): void {
    this.protocolErrors.push(`connection ${conn.id}: ${why} (closed with ${code})`);
    this.closeByFake(conn, code, why.slice(0, 120));
  }

  private closeByFake(conn: Connection, code: number, reason: string): void {
    conn.closingByFake = true;
    this.closures.push({ at: Date.now(), connection: conn.id, sessionId: conn.session?.id ?? null, code, reason, by: 'fake' });
    this.detach(conn, code);
    if (conn.socket.readyState === WebSocket.OPEN || conn.socket.readyState === WebSocket.CONNECTING) conn.socket.close(code, reason);
  }

  private onClose(conn: Connection, code: number, reason: string): void {
    if (!conn.closingByFake) this.closures.push({ at: Date.now(), connection: conn.id, sessionId: conn.session?.id ?? null, code, reason, by: 'client' });
    this.detach(conn, code);
    this.connections.delete(conn);
  }

  /** A session closed with 1000/1001 is over; any other close leaves it resumable for a while. */
  private detach(conn: Connection, code: number): void {
    if (conn.watchdog) clearTimeout(conn.watchdog);
    conn.watchdog = null;
    const session = conn.session;
    if (!session || session.conn !== conn) return;
    session.conn = null;
    session.droppedAt = Date.now();
    if (code === 1000 || code === 1001) session.ended = true;
  }

  /** Sessions with a connection right now. */
  liveSessions(): { id: string; shard: [number, number]; intents: number; resumes: number }[] {
    return [...this.sessions.values()].filter((s) => s.conn).map((s) => ({ id: s.id, shard: s.shard, intents: s.intents, resumes: s.resumes }));
  }

  /** Drops every connection with `code` (4000 by default: the client should RESUME). */
  disconnectAll(code: number = GatewayClose.UnknownError, reason = 'fake Discord dropped the connection'): void {
    for (const conn of [...this.connections]) this.closeByFake(conn, code, reason);
  }

  /** Sends op 7 RECONNECT to every live connection, as Discord does before a server restart. */
  requestReconnect(): void {
    for (const conn of this.connections) if (conn.session) this.send(conn, { op: GatewayOp.Reconnect, d: null, s: null, t: null });
  }

  /** Ends every session with op 9 INVALID_SESSION (d: false): clients must IDENTIFY afresh. */
  invalidateSessions(): void {
    for (const session of this.sessions.values()) {
      session.ended = true;
      if (session.conn) this.send(session.conn, { op: GatewayOp.InvalidSession, d: false, s: null, t: null });
    }
  }

  close(): void {
    for (const conn of this.connections) {
      if (conn.watchdog) clearTimeout(conn.watchdog);
      conn.socket.terminate();
    }
    this.connections.clear();
    this.wss.close();
  }
}
