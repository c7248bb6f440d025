/**
 * Checks a message body the way Discord does (lengths, component layout, flags, attachments)
 * and turns it into a patch the store applies. Anything wrong becomes one 400 listing every issue.
 */
import { Errors, invalidFormBody, type FieldIssue } from './errors.ts';
import type { FormPart } from './multipart.ts';
import type { MessageContent, StoredAttachment } from './model.ts';
import { checkComponents } from './component-rules.ts';
import { isRecord, maxLength, typeIssue } from './checks.ts';
import { MessageFlags } from './protocol.ts';
import { isSnowflake } from './snowflake.ts';

type Json = Record<string, unknown>;

export interface Upload {
  index: number;
  filename: string;
  contentType: string | null;
  data: Buffer;
}

export type AttachmentPlan =
  | { kind: 'keep'; existing: StoredAttachment; description: string | null }
  | { kind: 'upload'; upload: Upload; filename: string; description: string | null };

export interface MessagePatch {
  content?: string;
  embeds?: Json[];
  components?: Json[];
  /** The complete attachment list after the request, when it changes. */
  attachments?: AttachmentPlan[];
  flags?: number;
  tts?: boolean;
  allowedMentions?: Json | null;
  messageReference?: { message_id: string; channel_id?: string; guild_id?: string; fail_if_not_exists?: boolean } | null;
}

export interface PayloadRules {
  mode: 'create' | 'edit';
  /** Flag bits the sender may set here (e.g. ephemeral only on interaction responses). */
  allowedFlags: number;
  /** For edits: the message as it is now. */
  existing?: MessageContent;
}

/** Flags a bot may set on a channel message. */
export const CHANNEL_MESSAGE_FLAGS = MessageFlags.SuppressEmbeds | MessageFlags.SuppressNotifications | MessageFlags.IsComponentsV2;
/** Interaction responses and follow-ups may also be ephemeral. */
export const RESPONSE_FLAGS = CHANNEL_MESSAGE_FLAGS | MessageFlags.Ephemeral;
/** An edit may only toggle these (ephemeral and loading are not the sender's to change). */
export const EDIT_FLAGS = MessageFlags.SuppressEmbeds | MessageFlags.IsComponentsV2;

const MAX_EMBED_CHARS = 6000;
/** Splits a multipart body into payload_json and files[n] uploads, refusing anything else. */
export function readMultipartMessage(parts: FormPart[]): { json: unknown; uploads: Upload[] } {
  let json: unknown = {};
  let sawPayload = false;
  const uploads: Upload[] = [];
  for (const part of parts) {
    if (part.name === 'payload_json') {
      if (sawPayload) throw Errors.badRequest('multipart body has more than one payload_json part');
      sawPayload = true;
      json = parseJson(part.data.toString('utf8'));
      continue;
    }
    const match = /^files\[(\d+)\]$/.exec(part.name);
    if (!match) throw Errors.badRequest(`unexpected multipart field "${part.name}": send payload_json and files[n] only`);
    if (!part.filename) throw Errors.badRequest(`multipart file ${part.name} has no filename`);
    const index = Number(match[1]);
    if (uploads.some((u) => u.index === index)) throw Errors.badRequest(`multipart body has ${part.name} twice`);
    uploads.push({ index, filename: part.filename, contentType: part.contentType, data: Buffer.from(part.data) });
  }
  return { json, uploads };
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw Errors.invalidJson((error as Error).message);
  }
}

export function validateMessagePayload(body: unknown, uploads: Upload[], rules: PayloadRules): MessagePatch {
  if (!isRecord(body)) throw invalidFormBody([{ path: [], code: 'DICT_TYPE_CONVERT', message: 'Only dictionaries may be used in a DictType' }]);
  const issues: FieldIssue[] = [];
  const patch: MessagePatch = {};

  if (body.content !== undefined) {
    if (body.content === null) patch.content = '';
    else if (typeof body.content !== 'string') issues.push(typeIssue(['content'], 'string'));
    else if (body.content.length > 2000) issues.push(maxLength(['content'], 2000));
    else patch.content = body.content;
  }

  if (body.flags !== undefined && body.flags !== null) {
    if (!Number.isInteger(body.flags)) issues.push(typeIssue(['flags'], 'integer'));
    else {
      const bad = (body.flags as number) & ~rules.allowedFlags;
      if (bad !== 0) issues.push({ path: ['flags'], code: 'MESSAGE_FLAGS_INVALID', message: `Flag bits ${bad} cannot be set here (allowed: ${rules.allowedFlags}).` });
      else patch.flags = body.flags as number;
    }
  }
  const componentsV2 = ((patch.flags ?? rules.existing?.flags ?? 0) & MessageFlags.IsComponentsV2) !== 0;

  if (body.embeds !== undefined) {
    if (body.embeds === null) patch.embeds = [];
    else if (!Array.isArray(body.embeds)) issues.push(typeIssue(['embeds'], 'array'));
    else {
      checkEmbeds(body.embeds, issues);
      patch.embeds = body.embeds.map((e) => (isRecord(e) ? { type: 'rich', ...e } : e)) as Json[];
    }
  }

  if (body.components !== undefined) {
    if (body.components === null) patch.components = [];
    else if (!Array.isArray(body.components)) issues.push(typeIssue(['components'], 'array'));
    else {
      checkComponents(body.components, componentsV2, issues);
      patch.components = body.components as Json[];
    }
  }

  if (componentsV2) {
    if (patch.content) issues.push({ path: ['content'], code: 'MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2', message: 'The content field cannot be used when using MessageFlags.IS_COMPONENTS_V2' });
    if (patch.embeds?.length) issues.push({ path: ['embeds'], code: 'MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2', message: 'The embeds field cannot be used when using MessageFlags.IS_COMPONENTS_V2' });
  }

  if (body.tts !== undefined && typeof body.tts !== 'boolean') issues.push(typeIssue(['tts'], 'boolean'));
  else if (body.tts !== undefined) patch.tts = body.tts as boolean;

  if (body.nonce !== undefined && body.nonce !== null) {
    const ok = (typeof body.nonce === 'string' && body.nonce.length <= 25) || Number.isInteger(body.nonce);
    if (!ok) issues.push({ path: ['nonce'], code: 'BASE_TYPE_BAD_NONCE', message: 'A nonce is a string of at most 25 characters or an integer.' });
  }

  if (body.allowed_mentions !== undefined) checkAllowedMentions(body.allowed_mentions, issues, patch);

  if (body.message_reference !== undefined && body.message_reference !== null) {
    const ref = body.message_reference;
    if (!isRecord(ref) || !isSnowflake(ref.message_id)) issues.push({ path: ['message_reference', 'message_id'], code: 'BASE_TYPE_REQUIRED', message: 'A message reference needs the message_id of an existing message.' });
    else patch.messageReference = ref as MessagePatch['messageReference'];
  }

  if (Array.isArray(body.sticker_ids) && body.sticker_ids.length > 0) {
    issues.push({ path: ['sticker_ids'], code: 'UNSUPPORTED_BY_FAKE', message: 'The fake Discord has no stickers.' });
  }
  if (body.poll !== undefined && body.poll !== null) {
    issues.push({ path: ['poll'], code: 'UNSUPPORTED_BY_FAKE', message: 'The fake Discord does not support polls.' });
  }

  const attachments = planAttachments(body.attachments, uploads, rules, issues);
  if (attachments) patch.attachments = attachments;

  if (issues.length > 0) throw invalidFormBody(issues);

  const result = {
    content: patch.content ?? (rules.mode === 'edit' ? rules.existing?.content : '') ?? '',
    embeds: patch.embeds ?? (rules.mode === 'edit' ? rules.existing?.embeds : []) ?? [],
    components: patch.components ?? (rules.mode === 'edit' ? rules.existing?.components : []) ?? [],
    attachments: patch.attachments?.length ?? (rules.mode === 'edit' ? rules.existing?.attachments.length : 0) ?? 0,
  };
  if (result.content.trim() === '' && result.embeds.length === 0 && result.components.length === 0 && result.attachments === 0) {
    throw Errors.emptyMessage();
  }
  return patch;
}

function planAttachments(field: unknown, uploads: Upload[], rules: PayloadRules, issues: FieldIssue[]): AttachmentPlan[] | undefined {
  const existing = rules.mode === 'edit' ? (rules.existing?.attachments ?? []) : [];
  const fresh = (u: Upload): AttachmentPlan => ({ kind: 'upload', upload: u, filename: u.filename, description: null });
  let plan: AttachmentPlan[] | undefined;
  if (field === undefined) {
    if (uploads.length === 0) return undefined;
    plan = [...existing.map((a): AttachmentPlan => ({ kind: 'keep', existing: a, description: a.description })), ...uploads.map(fresh)];
  } else if (field === null) {
    plan = uploads.map(fresh);
  } else if (!Array.isArray(field)) {
    issues.push(typeIssue(['attachments'], 'array'));
    return undefined;
  } else {
    plan = [];
    const used = new Set<number>();
    field.forEach((entry, i) => {
      if (!isRecord(entry) || (typeof entry.id !== 'string' && typeof entry.id !== 'number')) {
        issues.push({ path: ['attachments', i, 'id'], code: 'BASE_TYPE_REQUIRED', message: 'This field is required' });
        return;
      }
      const id = String(entry.id);
      const description = typeof entry.description === 'string' ? entry.description : null;
      if (description !== null && description.length > 1024) issues.push(maxLength(['attachments', i, 'description'], 1024));
      const upload = /^\d{1,3}$/.test(id) ? uploads.find((u) => u.index === Number(id)) : undefined;
      const kept = existing.find((a) => a.id === id);
      if (upload) {
        used.add(upload.index);
        const filename = typeof entry.filename === 'string' && entry.filename !== '' ? entry.filename : upload.filename;
        plan!.push({ kind: 'upload', upload, filename, description });
      } else if (kept) {
        plan!.push({ kind: 'keep', existing: kept, description: description ?? kept.description });
      } else {
        issues.push({ path: ['attachments', i, 'id'], code: 'ATTACHMENT_NOT_FOUND', message: `Attachment ${id} is neither an uploaded files[${id}] nor an attachment of this message.` });
      }
    });
    // Discord still attaches uploaded files that the attachments array forgot to list.
    for (const u of uploads) if (!used.has(u.index)) plan.push(fresh(u));
  }
  if (plan.length > 10) issues.push({ path: ['attachments'], code: 'BASE_TYPE_MAX_LENGTH', message: 'Must be 10 or fewer in length.' });
  return plan;
}

function checkEmbeds(embeds: unknown[], issues: FieldIssue[]): void {
  if (embeds.length > 10) issues.push({ path: ['embeds'], code: 'BASE_TYPE_MAX_LENGTH', message: 'Must be 10 or fewer in length.' });
  let total = 0;
  embeds.forEach((embed, i) => {
    const at = (...rest: (string | number)[]) => ['embeds', i, ...rest];
    if (!isRecord(embed)) {
      issues.push({ path: at(), code: 'DICT_TYPE_CONVERT', message: 'Only dictionaries may be used in a DictType' });
      return;
    }
    total += text(embed.title, at('title'), 256, issues);
    total += text(embed.description, at('description'), 4096, issues);
    if (embed.color !== undefined && embed.color !== null && !(Number.isInteger(embed.color) && (embed.color as number) >= 0 && (embed.color as number) <= 0xffffff)) {
      issues.push({ path: at('color'), code: 'NUMBER_TYPE_MAX', message: 'Color must be an integer from 0 to 16777215.' });
    }
    if (embed.timestamp !== undefined && embed.timestamp !== null && Number.isNaN(Date.parse(String(embed.timestamp)))) {
      issues.push({ path: at('timestamp'), code: 'DATE_TYPE_PARSE', message: 'Could not parse timestamp. Should be ISO8601.' });
    }
    if (embed.footer !== undefined) {
      if (!isRecord(embed.footer) || typeof embed.footer.text !== 'string') issues.push({ path: at('footer', 'text'), code: 'BASE_TYPE_REQUIRED', message: 'This field is required' });
      else total += text(embed.footer.text, at('footer', 'text'), 2048, issues);
    }
    if (embed.author !== undefined) {
      if (!isRecord(embed.author) || typeof embed.author.name !== 'string') issues.push({ path: at('author', 'name'), code: 'BASE_TYPE_REQUIRED', message: 'This field is required' });
      else total += text(embed.author.name, at('author', 'name'), 256, issues);
    }
    for (const media of ['image', 'thumbnail'] as const) {
      const value = embed[media];
      if (value !== undefined && (!isRecord(value) || typeof value.url !== 'string' || !/^(https?|attachment):\/\//.test(value.url))) {
        issues.push({ path: at(media, 'url'), code: 'URL_TYPE_INVALID_URL', message: 'Scheme must be one of (http, https, attachment).' });
      }
    }
    if (embed.fields !== undefined) {
      if (!Array.isArray(embed.fields)) issues.push(typeIssue(at('fields'), 'array'));
      else {
        if (embed.fields.length > 25) issues.push({ path: at('fields'), code: 'BASE_TYPE_MAX_LENGTH', message: 'Must be 25 or fewer in length.' });
        embed.fields.forEach((field, j) => {
          if (!isRecord(field) || typeof field.name !== 'string' || typeof field.value !== 'string') {
            issues.push({ path: at('fields', j), code: 'BASE_TYPE_REQUIRED', message: 'An embed field needs a name and a value.' });
            return;
          }
          total += text(field.name, at('fields', j, 'name'), 256, issues, 1);
          total += text(field.value, at('fields', j, 'value'), 1024, issues, 1);
        });
      }
    }
  });
  if (total > MAX_EMBED_CHARS) issues.push({ path: ['embeds'], code: 'MAX_EMBED_SIZE_EXCEEDED', message: `Embed size exceeds maximum size of ${MAX_EMBED_CHARS}` });
}

function checkAllowedMentions(value: unknown, issues: FieldIssue[], patch: MessagePatch): void {
  if (value === null) {
    patch.allowedMentions = null;
    return;
  }
  if (!isRecord(value)) {
    issues.push({ path: ['allowed_mentions'], code: 'DICT_TYPE_CONVERT', message: 'Only dictionaries may be used in a DictType' });
    return;
  }
  const parse = value.parse;
  if (parse !== undefined && (!Array.isArray(parse) || parse.some((p) => !['roles', 'users', 'everyone'].includes(p as string)))) {
    issues.push({ path: ['allowed_mentions', 'parse'], code: 'BASE_TYPE_CHOICES', message: 'Value must be one of {roles, users, everyone}.' });
  }
  for (const kind of ['users', 'roles'] as const) {
    const list = value[kind];
    if (list === undefined) continue;
    if (!Array.isArray(list) || list.length > 100 || list.some((id) => !isSnowflake(id))) {
      issues.push({ path: ['allowed_mentions', kind], code: 'BASE_TYPE_BAD_LENGTH', message: `${kind} must be a list of at most 100 snowflakes.` });
    } else if (list.length > 0 && Array.isArray(parse) && parse.includes(kind)) {
      issues.push({ path: ['allowed_mentions', kind], code: 'SET_TYPE_ALREADY_CONTAINS_VALUE', message: `parse:["${kind}"] and ${kind}: [...] are mutually exclusive.` });
    }
  }
  patch.allowedMentions = value;
}

function text(value: unknown, path: (string | number)[], max: number, issues: FieldIssue[], min = 0): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== 'string') {
    issues.push(typeIssue(path, 'string'));
    return 0;
  }
  if (value.length > max || value.length < min) {
    issues.push(min > 0 ? { path, code: 'BASE_TYPE_BAD_LENGTH', message: `Must be between ${min} and ${max} in length.` } : maxLength(path, max));
  }
  return value.length;
}

