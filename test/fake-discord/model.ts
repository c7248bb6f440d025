/** The records the fake keeps, as tests see them. Raw API JSON (embeds, components) is kept as sent. */

export interface FakeUser {
  id: string;
  username: string;
  globalName: string | null;
  bot: boolean;
}

export interface FakeRole {
  id: string;
  name: string;
  permissions: bigint;
  position: number;
  color: number;
  /** Set on the role Discord creates for a bot when it joins. */
  botId: string | null;
}

export interface FakeMember {
  userId: string;
  nick: string | null;
  roles: string[];
  joinedAt: string;
}

export interface FakeChannel {
  id: string;
  guildId: string | null;
  name: string;
  type: number;
  position: number;
  parentId: string | null;
  topic: string | null;
  /** A thread's state (threads only): archived threads refuse edits, locked ones new messages too. */
  thread: FakeThreadState | null;
  /** Permission overwrites (a thread has none: its parent's apply). */
  overwrites: FakeOverwrite[];
}

/** A channel permission overwrite: for a role (type 0; the server's id is @everyone) or a member (type 1). */
export interface FakeOverwrite {
  id: string;
  type: 0 | 1;
  allow: bigint;
  deny: bigint;
}

export interface FakeThreadState {
  archived: boolean;
  /** Only members with Manage Threads may unarchive a locked thread or post in it. */
  locked: boolean;
  /** ISO time the archived state last changed. */
  archiveTimestamp: string;
  ownerId: string;
  /** Who has joined it (its starter and ThreadInit.members): in a private thread only they, and those with Manage Threads, see it. */
  memberIds: Set<string>;
}

export interface FakeGuild {
  id: string;
  name: string;
  ownerId: string;
  /** roles[0] is @everyone (its id is the guild id). */
  roles: FakeRole[];
  channels: FakeChannel[];
  members: Map<string, FakeMember>;
  /** Largest file (bytes) a message in this server may carry; bigger uploads get 413 / 40005. */
  attachmentSizeLimit: number;
  locale: string;
}

export interface StoredAttachment {
  id: string;
  filename: string;
  /** What Discord would report: the uploaded part's type, or one guessed from the extension. */
  contentType: string | null;
  size: number;
  /** What Discord reports for a picture it could read (uploads to slash-command options only). */
  width?: number;
  height?: number;
  /** The exact bytes the bot uploaded. */
  bytes: Buffer;
  description: string | null;
  /** Served by the fake itself, so a bot can download its own attachments. */
  url: string;
}

export interface MessageContent {
  content: string;
  embeds: Record<string, unknown>[];
  components: Record<string, unknown>[];
  attachments: StoredAttachment[];
  flags: number;
}

/** One state of a message: revisions[0] is how it was created, each edit appends one. */
export interface MessageRevision extends MessageContent {
  at: number;
  /** The request that produced it, e.g. "PATCH /webhooks/:applicationId/:token/messages/:messageId". */
  via: string;
}

export type MessageOrigin = 'channel' | 'interaction-response' | 'follow-up';

export interface StoredMessage extends MessageContent {
  id: string;
  channelId: string;
  guildId: string | null;
  authorId: string;
  type: number;
  origin: MessageOrigin;
  /** The interaction this message answers (its response or a follow-up), if any. */
  interactionId: string | null;
  ephemeral: boolean;
  createdAt: number;
  editedAt: number | null;
  tts: boolean;
  /** Users the message pings, after allowed_mentions is applied (Discord notifies them only when a message is created, not on edits). */
  mentions: string[];
  allowedMentions: Record<string, unknown> | null;
  messageReference: { message_id: string; channel_id: string; guild_id?: string } | null;
  /** Emoji key (unicode character, or name:id for custom emoji) to the ids of users who reacted. */
  reactions: Map<string, Set<string>>;
  revisions: MessageRevision[];
  deleted: boolean;
}

export interface RegisteredCommand {
  id: string;
  application_id: string;
  guild_id?: string;
  version: string;
  type: number;
  name: string;
  description: string;
  options: CommandOption[];
  default_member_permissions: string | null;
  nsfw: boolean;
  contexts: number[] | null;
  integration_types: number[];
  name_localizations: Record<string, string> | null;
  description_localizations: Record<string, string> | null;
}

export interface CommandOption {
  type: number;
  name: string;
  description: string;
  required?: boolean;
  choices?: { name: string; value: string | number }[];
  options?: CommandOption[];
  channel_types?: number[];
  min_value?: number;
  max_value?: number;
  min_length?: number;
  max_length?: number;
  autocomplete?: boolean;
  [key: string]: unknown;
}

export type InteractionKind = 'command' | 'component' | 'modal-submit' | 'autocomplete';

/** What the bot answered an interaction with (POST /interactions/:id/:token/callback). */
export interface InteractionCallbackRecord {
  /** 4 reply, 5 deferred reply, 6 deferred update, 7 update, 8 autocomplete result, 9 modal. */
  type: number;
  typeName: string;
  data: Record<string, unknown> | null;
  flags: number;
  ephemeral: boolean;
  /** Epoch ms when the fake received the callback, and how long after the dispatch that was. */
  at: number;
  latencyMs: number;
  withResponse: boolean;
}

export interface InteractionState {
  id: string;
  token: string;
  type: number;
  kind: InteractionKind;
  guildId: string;
  channelId: string;
  userId: string;
  payload: Record<string, unknown>;
  dispatchedAt: number;
  /** Past this, a first callback is refused with 10062 like Discord does after 3 s. */
  deadlineAt: number;
  /** Past this (15 minutes by default), the token is dead: webhook calls get 401 / 50027. */
  expiresAt: number;
  expired: boolean;
  /** The message whose component was used (buttons, and modals opened from a button). */
  componentMessageId: string | null;
  response: InteractionCallbackRecord | null;
  originalMessageId: string | null;
  followUpIds: string[];
  /** The modal shown in answer to this interaction (callback type 9), for submitModal. */
  modal: Record<string, unknown> | null;
}

export interface RecordedRequest {
  method: string;
  /** Path below the API version prefix, e.g. "/channels/123/messages". */
  path: string;
  /** The matched route template, e.g. "/channels/:channelId/messages"; null when unhandled. */
  route: string | null;
  query: string;
  status: number;
  /** Discord error code of a failed request (0 where Discord sends none). */
  errorCode: number | null;
  errorMessage: string | null;
  /** True when the answer came from failNext rather than the route. */
  injected: boolean;
  at: number;
  durationMs: number;
}

export interface UnhandledRequest {
  method: string;
  path: string;
  at: number;
  reason: string;
}
