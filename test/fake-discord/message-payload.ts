/**
 * Checks a message body the way Discord does (lengths, component layout, flags, attachments)
 * and turns it into a patch the store applies. Anything wrong becomes one 400 listing every issue.
 */
import { Errors, invalidFormBody, type FieldIssue } from './errors.ts';
import type { FormPart } from './multipart.ts';
import type { MessageContent, StoredAttachment } from './model.ts';
import { ButtonStyle, ComponentType, MessageFlags } from './protocol.ts';
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

const MAX_EMBED_CHARS = 6000;
const SELECT_TYPES = new Set<number>([
  ComponentType.StringSelect,
  ComponentType.UserSelect,
  ComponentType.RoleSelect,
  ComponentType.MentionableSelect,
  ComponentType.ChannelSelect,
]);
const V2_TOP_LEVEL = new Set<number>([
  ComponentType.ActionRow,
  ComponentType.Section,
  ComponentType.TextDisplay,
  ComponentType.MediaGallery,
  ComponentType.File,
  ComponentType.Separator,
  ComponentType.Container,
]);

export function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

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

function checkComponents(components: unknown[], v2: boolean, issues: FieldIssue[]): void {
  const customIds = new Map<string, (string | number)[]>();
  if (!v2 && components.length > 5) issues.push({ path: ['components'], code: 'BASE_TYPE_MAX_LENGTH', message: 'Must be 5 or fewer in length.' });
  let count = 0;
  const walk = (node: unknown, path: (string | number)[], allowed: ReadonlySet<number>): void => {
    count++;
    if (!isRecord(node) || !Number.isInteger(node.type)) {
      issues.push({ path: [...path, 'type'], code: 'BASE_TYPE_REQUIRED', message: 'This field is required' });
      return;
    }
    const type = node.type as number;
    if (!allowed.has(type)) {
      issues.push({ path: [...path, 'type'], code: 'UNION_TYPE_CHOICES', message: `Component type ${type} is not allowed here.` });
      return;
    }
    if ('custom_id' in node) {
      const id = node.custom_id;
      if (typeof id !== 'string' || id.length < 1 || id.length > 100) {
        issues.push({ path: [...path, 'custom_id'], code: 'BASE_TYPE_BAD_LENGTH', message: 'Must be between 1 and 100 in length.' });
      } else if (customIds.has(id)) {
        issues.push({ path: [...path, 'custom_id'], code: 'COMPONENT_CUSTOM_ID_DUPLICATED', message: `Component custom id "${id}" cannot be duplicated` });
      } else customIds.set(id, path);
    }
    switch (type) {
      case ComponentType.ActionRow:
        checkActionRow(node, path, issues, walk);
        break;
      case ComponentType.Button:
        checkButton(node, path, issues);
        break;
      case ComponentType.Section:
        children(node, path, 'components', new Set([ComponentType.TextDisplay]), 1, 3, issues, walk);
        if (node.accessory === undefined) issues.push({ path: [...path, 'accessory'], code: 'BASE_TYPE_REQUIRED', message: 'This field is required' });
        else walk(node.accessory, [...path, 'accessory'], new Set([ComponentType.Button, ComponentType.Thumbnail]));
        break;
      case ComponentType.TextDisplay:
        if (typeof node.content !== 'string' || node.content.length === 0) issues.push({ path: [...path, 'content'], code: 'BASE_TYPE_REQUIRED', message: 'This field is required' });
        break;
      case ComponentType.Container:
        children(node, path, 'components', new Set([ComponentType.ActionRow, ComponentType.Section, ComponentType.TextDisplay, ComponentType.MediaGallery, ComponentType.File, ComponentType.Separator]), 1, 40, issues, walk);
        break;
      default:
        if (SELECT_TYPES.has(type)) checkSelect(node, path, issues);
    }
  };
  const topLevel = v2 ? V2_TOP_LEVEL : new Set<number>([ComponentType.ActionRow]);
  components.forEach((c, i) => walk(c, ['components', i], topLevel));
  if (v2 && count > 40) issues.push({ path: ['components'], code: 'BASE_TYPE_MAX_LENGTH', message: 'A message may hold at most 40 components in total.' });
}

type Walker = (node: unknown, path: (string | number)[], allowed: ReadonlySet<number>) => void;

function children(node: Json, path: (string | number)[], key: string, allowed: ReadonlySet<number>, min: number, max: number, issues: FieldIssue[], walk: Walker): unknown[] {
  const list = node[key];
  if (!Array.isArray(list) || list.length < min || list.length > max) {
    issues.push({ path: [...path, key], code: 'BASE_TYPE_BAD_LENGTH', message: `Must be between ${min} and ${max} in length.` });
    return [];
  }
  list.forEach((child, i) => walk(child, [...path, key, i], allowed));
  return list;
}

function checkActionRow(node: Json, path: (string | number)[], issues: FieldIssue[], walk: Walker): void {
  const list = children(node, path, 'components', new Set([ComponentType.Button, ...SELECT_TYPES]), 1, 5, issues, walk);
  const types = list.map((c) => (isRecord(c) ? c.type : undefined));
  const selects = types.filter((t) => SELECT_TYPES.has(t as number)).length;
  if (selects > 0 && list.length > 1) {
    issues.push({ path: [...path, 'components'], code: 'COMPONENT_LAYOUT_WIDTH_EXCEEDED', message: 'A select menu must be alone in its action row.' });
  }
}

function checkButton(node: Json, path: (string | number)[], issues: FieldIssue[]): void {
  const style = node.style;
  if (!Number.isInteger(style) || (style as number) < 1 || (style as number) > 6) {
    issues.push({ path: [...path, 'style'], code: 'BASE_TYPE_CHOICES', message: 'Value must be one of {1, 2, 3, 4, 5, 6}.' });
    return;
  }
  if (style === ButtonStyle.Link) {
    if (typeof node.url !== 'string' || !/^(https?|discord):\/\//.test(node.url)) issues.push({ path: [...path, 'url'], code: 'BUTTON_COMPONENT_URL_REQUIRED', message: 'A link button needs a url.' });
    if ('custom_id' in node) issues.push({ path: [...path, 'custom_id'], code: 'BUTTON_COMPONENT_CUSTOM_ID_NOT_ALLOWED', message: 'A link button cannot have a custom_id.' });
  } else if (style === ButtonStyle.Premium) {
    if (!isSnowflake(node.sku_id)) issues.push({ path: [...path, 'sku_id'], code: 'BASE_TYPE_REQUIRED', message: 'A premium button needs a sku_id.' });
  } else if (!('custom_id' in node)) {
    issues.push({ path: [...path, 'custom_id'], code: 'BUTTON_COMPONENT_CUSTOM_ID_REQUIRED', message: 'A non-link button must have a custom_id.' });
  }
  if (node.label !== undefined && (typeof node.label !== 'string' || node.label.length > 80)) issues.push(maxLength([...path, 'label'], 80));
  if (style !== ButtonStyle.Premium && node.label === undefined && node.emoji === undefined) {
    issues.push({ path: [...path, 'label'], code: 'BUTTON_COMPONENT_LABEL_OR_EMOJI_REQUIRED', message: 'A button needs a label or an emoji.' });
  }
  if (node.disabled !== undefined && typeof node.disabled !== 'boolean') issues.push(typeIssue([...path, 'disabled'], 'boolean'));
}

function checkSelect(node: Json, path: (string | number)[], issues: FieldIssue[]): void {
  if (!('custom_id' in node)) issues.push({ path: [...path, 'custom_id'], code: 'BASE_TYPE_REQUIRED', message: 'This field is required' });
  if (node.placeholder !== undefined && (typeof node.placeholder !== 'string' || node.placeholder.length > 150)) issues.push(maxLength([...path, 'placeholder'], 150));
  const min = node.min_values ?? 1;
  const max = node.max_values ?? 1;
  if (!Number.isInteger(min) || (min as number) < 0 || (min as number) > 25) issues.push({ path: [...path, 'min_values'], code: 'NUMBER_TYPE_MAX', message: 'Must be between 0 and 25.' });
  if (!Number.isInteger(max) || (max as number) < 1 || (max as number) > 25) issues.push({ path: [...path, 'max_values'], code: 'NUMBER_TYPE_MAX', message: 'Must be between 1 and 25.' });
  if (node.type === ComponentType.StringSelect) {
    const options = node.options;
    if (!Array.isArray(options) || options.length < 1 || options.length > 25) {
      issues.push({ path: [...path, 'options'], code: 'BASE_TYPE_BAD_LENGTH', message: 'Must be between 1 and 25 in length.' });
      return;
    }
    options.forEach((o, i) => {
      if (!isRecord(o) || typeof o.label !== 'string' || typeof o.value !== 'string' || o.label.length > 100 || o.value.length > 100) {
        issues.push({ path: [...path, 'options', i], code: 'SELECT_COMPONENT_OPTION_INVALID', message: 'An option needs a label and a value of at most 100 characters.' });
      }
    });
    if (Number.isInteger(max) && (max as number) > options.length) issues.push({ path: [...path, 'max_values'], code: 'SELECT_COMPONENT_MAX_VALUES_EXCEEDED', message: 'max_values cannot exceed the number of options.' });
  }
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

function maxLength(path: (string | number)[], max: number): FieldIssue {
  return { path, code: 'BASE_TYPE_MAX_LENGTH', message: `Must be ${max} or fewer in length.` };
}

function typeIssue(path: (string | number)[], type: string): FieldIssue {
  return { path, code: `BASE_TYPE_${type.toUpperCase()}`, message: `Must be of type ${type}.` };
}

