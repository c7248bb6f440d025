/**
 * Application command registration (checked like Discord checks it) and turning a test's
 * `{ from: 'a cat', seed: 7 }` into the options payload Discord would send for that command.
 */
import { invalidFormBody, type FieldIssue } from './errors.ts';
import { isRecord } from './checks.ts';
import type { CommandOption, FakeChannel, FakeRole, FakeUser, RegisteredCommand } from './model.ts';
import { ApplicationCommandType, CommandOptionType as T } from './protocol.ts';
import { nextSnowflake } from './snowflake.ts';

type Json = Record<string, unknown>;
type Path = (string | number)[];

const NAME = /^[-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$/u;
const VALUE_TYPES = new Set<number>([T.String, T.Integer, T.Number]);

/** Checks a bulk-overwrite body (PUT .../commands) and returns the commands as sent. */
export function validateCommandList(body: unknown): Json[] {
  if (!Array.isArray(body)) throw invalidFormBody([{ path: [], code: 'BASE_TYPE_ARRAY', message: 'Must be an array of application commands.' }]);
  const issues: FieldIssue[] = [];
  const seen = new Set<string>();
  body.forEach((command, i) => {
    checkCommand(command, [i], issues);
    if (isRecord(command)) {
      const key = `${command.type ?? 1}:${String(command.name)}`;
      if (seen.has(key)) issues.push({ path: [i, 'name'], code: 'APPLICATION_COMMANDS_DUPLICATE_NAME', message: `Application command names must be unique ("${String(command.name)}" appears twice).` });
      seen.add(key);
    }
  });
  const chatInput = body.filter((c) => isRecord(c) && (c.type ?? 1) === 1).length;
  if (chatInput > 100) issues.push({ path: [], code: 'BASE_TYPE_MAX_LENGTH', message: 'At most 100 slash commands per scope.' });
  if (issues.length) throw invalidFormBody(issues);
  return body as Json[];
}

export function validateCommand(body: unknown): Json {
  const issues: FieldIssue[] = [];
  checkCommand(body, [], issues);
  if (issues.length) throw invalidFormBody(issues);
  return body as Json;
}

function checkCommand(command: unknown, path: Path, issues: FieldIssue[]): void {
  if (!isRecord(command)) {
    issues.push({ path, code: 'DICT_TYPE_CONVERT', message: 'Only dictionaries may be used in a DictType' });
    return;
  }
  const type = command.type ?? ApplicationCommandType.ChatInput;
  if (!Number.isInteger(type) || (type as number) < 1 || (type as number) > 4) {
    issues.push({ path: [...path, 'type'], code: 'BASE_TYPE_CHOICES', message: 'Value must be one of {1, 2, 3, 4}.' });
    return;
  }
  const chatInput = type === ApplicationCommandType.ChatInput;
  checkName(command.name, [...path, 'name'], chatInput, issues);
  if (chatInput) checkDescription(command.description, [...path, 'description'], issues);
  else if (command.description !== undefined && command.description !== '') {
    issues.push({ path: [...path, 'description'], code: 'APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION', message: 'Context menu commands cannot have a description.' });
  }
  const dmp = command.default_member_permissions;
  if (dmp !== undefined && dmp !== null && !(typeof dmp === 'string' && /^\d+$/.test(dmp))) {
    issues.push({ path: [...path, 'default_member_permissions'], code: 'BASE_TYPE_BAD_INT', message: 'default_member_permissions must be a permission bitfield as a string of digits, or null.' });
  }
  for (const [key, allowed] of [['contexts', [0, 1, 2]], ['integration_types', [0, 1]]] as const) {
    const list = command[key];
    if (list !== undefined && list !== null && (!Array.isArray(list) || list.some((v) => !(allowed as readonly number[]).includes(v as number)))) {
      issues.push({ path: [...path, key], code: 'BASE_TYPE_CHOICES', message: `${key} values must be among {${allowed.join(', ')}}.` });
    }
  }
  if (command.options !== undefined && command.options !== null) {
    if (!chatInput) issues.push({ path: [...path, 'options'], code: 'APPLICATION_COMMAND_OPTIONS_NOT_ALLOWED', message: 'Only slash commands take options.' });
    else checkOptions(command.options, [...path, 'options'], 'top', issues);
  }
}

function checkOptions(options: unknown, path: Path, level: 'top' | 'group' | 'subcommand', issues: FieldIssue[]): void {
  if (!Array.isArray(options)) {
    issues.push({ path, code: 'BASE_TYPE_ARRAY', message: 'Must be an array.' });
    return;
  }
  if (options.length > 25) issues.push({ path, code: 'BASE_TYPE_MAX_LENGTH', message: 'Must be 25 or fewer in length.' });
  const names = new Set<string>();
  let sawOptional = false;
  const kinds = new Set<string>();
  options.forEach((option, i) => {
    const at: Path = [...path, i];
    if (!isRecord(option) || !Number.isInteger(option.type) || (option.type as number) < 1 || (option.type as number) > 11) {
      issues.push({ path: [...at, 'type'], code: 'BASE_TYPE_CHOICES', message: 'Option type must be an integer from 1 to 11.' });
      return;
    }
    const type = option.type as number;
    const isSub = type === T.Subcommand || type === T.SubcommandGroup;
    kinds.add(isSub ? 'sub' : 'value');
    checkName(option.name, [...at, 'name'], true, issues);
    checkDescription(option.description, [...at, 'description'], issues);
    if (typeof option.name === 'string') {
      if (names.has(option.name)) issues.push({ path: [...at, 'name'], code: 'APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS', message: `Option name "${option.name}" is used twice.` });
      names.add(option.name);
    }
    if (level === 'group' && type !== T.Subcommand) issues.push({ path: [...at, 'type'], code: 'APPLICATION_COMMAND_OPTION_TYPE_INVALID', message: 'A subcommand group may only hold subcommands.' });
    if (level === 'subcommand' && isSub) issues.push({ path: [...at, 'type'], code: 'APPLICATION_COMMAND_OPTION_TYPE_INVALID', message: 'A subcommand cannot hold subcommands.' });
    if (isSub) {
      checkOptions(option.options ?? [], [...at, 'options'], type === T.SubcommandGroup ? 'group' : 'subcommand', issues);
      return;
    }
    if (option.required === true && sawOptional) {
      issues.push({ path: [...at, 'required'], code: 'APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID', message: 'Required options must be placed before non-required options.' });
    }
    if (option.required !== true) sawOptional = true;
    checkValueRules(option, type, at, issues);
  });
  if (kinds.size > 1) issues.push({ path, code: 'APPLICATION_COMMAND_OPTIONS_TYPE_INVALID', message: 'Subcommands and plain options cannot be mixed at one level.' });
}

function checkValueRules(option: Json, type: number, at: Path, issues: FieldIssue[]): void {
  const choices = option.choices;
  if (choices !== undefined && choices !== null) {
    if (!VALUE_TYPES.has(type)) issues.push({ path: [...at, 'choices'], code: 'APPLICATION_COMMAND_OPTION_CHOICES_NOT_ALLOWED', message: 'Only string, integer and number options take choices.' });
    else if (!Array.isArray(choices) || choices.length > 25) issues.push({ path: [...at, 'choices'], code: 'BASE_TYPE_MAX_LENGTH', message: 'Must be 25 or fewer in length.' });
    else {
      choices.forEach((choice, j) => {
        const ok = isRecord(choice) && typeof choice.name === 'string' && choice.name.length >= 1 && choice.name.length <= 100 && valueFits(type, choice.value);
        if (!ok) issues.push({ path: [...at, 'choices', j], code: 'APPLICATION_COMMAND_OPTION_CHOICE_INVALID', message: `A choice needs a name (1-100 characters) and a value of the option's type.` });
      });
      if (option.autocomplete === true) issues.push({ path: [...at, 'autocomplete'], code: 'APPLICATION_COMMAND_AUTOCOMPLETE_WITH_CHOICES', message: 'Autocomplete cannot be used with choices.' });
    }
  }
  if (option.autocomplete === true && !VALUE_TYPES.has(type)) issues.push({ path: [...at, 'autocomplete'], code: 'APPLICATION_COMMAND_OPTION_TYPE_INVALID', message: 'Only string, integer and number options can autocomplete.' });
  for (const key of ['min_value', 'max_value'] as const) {
    if (option[key] === undefined) continue;
    if (type !== T.Integer && type !== T.Number) issues.push({ path: [...at, key], code: 'APPLICATION_COMMAND_OPTION_TYPE_INVALID', message: `${key} is only for integer and number options.` });
    else if (typeof option[key] !== 'number') issues.push({ path: [...at, key], code: 'BASE_TYPE_NUMBER', message: 'Must be a number.' });
  }
  if (typeof option.min_value === 'number' && typeof option.max_value === 'number' && option.min_value > option.max_value) {
    issues.push({ path: [...at, 'min_value'], code: 'NUMBER_TYPE_MAX', message: 'min_value cannot exceed max_value.' });
  }
  for (const key of ['min_length', 'max_length'] as const) {
    const v = option[key];
    if (v === undefined) continue;
    if (type !== T.String) issues.push({ path: [...at, key], code: 'APPLICATION_COMMAND_OPTION_TYPE_INVALID', message: `${key} is only for string options.` });
    else if (!Number.isInteger(v) || (v as number) < (key === 'min_length' ? 0 : 1) || (v as number) > 6000) {
      issues.push({ path: [...at, key], code: 'NUMBER_TYPE_MAX', message: `${key} must be an integer up to 6000.` });
    }
  }
  if (option.channel_types !== undefined && type !== T.Channel) {
    issues.push({ path: [...at, 'channel_types'], code: 'APPLICATION_COMMAND_OPTION_TYPE_INVALID', message: 'channel_types is only for channel options.' });
  }
}

function valueFits(type: number, value: unknown): boolean {
  if (type === T.String) return typeof value === 'string' && value.length >= 1 && value.length <= 100;
  if (type === T.Integer) return Number.isInteger(value);
  return typeof value === 'number' && Number.isFinite(value);
}

function checkName(name: unknown, path: Path, lowercase: boolean, issues: FieldIssue[]): void {
  if (typeof name !== 'string' || !NAME.test(name) || (lowercase && name !== name.toLowerCase())) {
    issues.push({ path, code: 'APPLICATION_COMMAND_INVALID_NAME', message: `Command name is invalid: ${JSON.stringify(name)} (1-32 lowercase letters, digits, - or _).` });
  }
}

function checkDescription(description: unknown, path: Path, issues: FieldIssue[]): void {
  if (typeof description !== 'string' || description.length < 1 || description.length > 100) {
    issues.push({ path, code: 'BASE_TYPE_BAD_LENGTH', message: 'Must be between 1 and 100 in length.' });
  }
}

/** What Discord stores and returns for a registered command; an existing id is kept on overwrite. */
export function toRegistered(input: Json, applicationId: string, guildId: string | null, existing?: RegisteredCommand): RegisteredCommand {
  const type = (input.type as number | undefined) ?? ApplicationCommandType.ChatInput;
  return {
    id: existing?.id ?? nextSnowflake(),
    application_id: applicationId,
    ...(guildId ? { guild_id: guildId } : {}),
    version: nextSnowflake(),
    type,
    name: input.name as string,
    description: type === ApplicationCommandType.ChatInput ? (input.description as string) : '',
    options: ((input.options as CommandOption[] | undefined) ?? []).map(stripNulls),
    default_member_permissions: (input.default_member_permissions as string | null | undefined) ?? null,
    nsfw: input.nsfw === true,
    contexts: (input.contexts as number[] | null | undefined) ?? null,
    integration_types: (input.integration_types as number[] | undefined) ?? [0],
    name_localizations: (input.name_localizations as Record<string, string> | null | undefined) ?? null,
    description_localizations: (input.description_localizations as Record<string, string> | null | undefined) ?? null,
  };
}

function stripNulls(option: CommandOption): CommandOption {
  const out: CommandOption = { type: option.type, name: option.name, description: option.description };
  for (const [key, value] of Object.entries(option)) {
    if (value === null || value === undefined || key in out) continue;
    out[key] = key === 'options' ? (value as CommandOption[]).map(stripNulls) : value;
  }
  return out;
}

export type SlashOptionValue = string | number | boolean | FakeUser | FakeChannel | FakeRole | FakeUpload;

/**
 * A file a user attaches to an ATTACHMENT option: Discord uploads it to its CDN first and sends the
 * interaction with its id in the option and its metadata (size, content type, CDN url) in
 * data.resolved.attachments. The fake serves the url with these bytes.
 */
export interface FakeUpload {
  filename: string;
  bytes: Buffer | Uint8Array;
  /** What the uploading client declared; unset: Discord guesses from the file name's extension. */
  contentType?: string;
  /**
   * The width and height Discord reports for a picture it could read. Unset: read from a PNG's
   * header (IHDR), none for anything else (as for a file Discord cannot read as a picture).
   */
  width?: number;
  height?: number;
  /** The fake CDN waits this long before it answers a download of the file (a slow CDN). */
  cdnDelayMs?: number;
  /** The fake CDN answers a download with this HTTP error status instead of the file (e.g. 404: gone). */
  cdnStatus?: number;
  /** The size the attachment object reports (default: the bytes' length); the CDN still serves every byte. */
  declaredSize?: number;
}

export function isFakeUpload(v: unknown): v is FakeUpload {
  return typeof v === 'object' && v !== null && typeof (v as FakeUpload).filename === 'string' && (v as FakeUpload).bytes instanceof Uint8Array;
}

export interface OptionResolver {
  user(id: string): FakeUser | undefined;
  memberJson(userId: string): Json | undefined;
  channel(id: string): FakeChannel | undefined;
  role(id: string): FakeRole | undefined;
  userJson(user: FakeUser): Json;
  channelJson(channel: FakeChannel): Json;
  roleJson(role: FakeRole): Json;
  /** Stores an uploaded file on the fake CDN; returns its attachment object. */
  upload(file: FakeUpload): Json & { id: string };
}

export interface SlashInput {
  subcommandGroup?: string;
  subcommand?: string;
  options?: Record<string, SlashOptionValue>;
}

/**
 * What a member is typing into an autocomplete option: the option's name and the text so far. As
 * Discord sends it, that option is `focused: true` with the typed text as a string value (whatever
 * the option's type), and options still missing are left out, required ones too.
 */
export interface FocusedInput {
  name: string;
  typed: string;
}

/**
 * Builds `data.options` and `data.resolved` for a chat-input interaction, refusing (with an
 * Error naming the problem) anything the Discord client would never let a user send.
 */
export function buildSlashOptions(command: RegisteredCommand, input: SlashInput, r: OptionResolver, focused?: FocusedInput): { options: Json[]; resolved: Json | undefined } {
  const resolved: Record<string, Record<string, Json>> = {};
  const where = `/${command.name}`;
  let level = command.options;
  const wrap: ((inner: Json[]) => Json[])[] = [];
  if (input.subcommandGroup !== undefined) {
    const group = level.find((o) => o.type === T.SubcommandGroup && o.name === input.subcommandGroup);
    if (!group) throw new Error(`${where} has no subcommand group "${input.subcommandGroup}"`);
    level = group.options ?? [];
    wrap.push((inner) => [{ type: T.SubcommandGroup, name: group.name, options: inner }]);
  }
  const hasSubs = level.some((o) => o.type === T.Subcommand);
  if (input.subcommand !== undefined || hasSubs) {
    const sub = level.find((o) => o.type === T.Subcommand && o.name === input.subcommand);
    if (!sub) throw new Error(`${where} needs one of its subcommands (${level.map((o) => o.name).join(', ')}); got ${JSON.stringify(input.subcommand)}`);
    level = sub.options ?? [];
    wrap.push((inner) => [{ type: T.Subcommand, name: sub.name, options: inner }]);
  }
  const given = input.options ?? {};
  for (const name of [...Object.keys(given), ...(focused ? [focused.name] : [])]) {
    if (!level.some((o) => o.name === name)) throw new Error(`${where} has no option "${name}" (it has: ${level.map((o) => o.name).join(', ') || 'none'})`);
  }
  if (focused) checkFocusable(level.find((o) => o.name === focused.name)!, focused, where);
  const values: Json[] = [];
  for (const option of level) {
    if (option.name === focused?.name) {
      values.push({ type: option.type, name: option.name, value: focused.typed, focused: true });
      continue;
    }
    const value = given[option.name];
    if (value === undefined) {
      if (option.required && !focused) throw new Error(`${where} requires the option "${option.name}"`);
      continue;
    }
    values.push({ type: option.type, name: option.name, value: optionValue(option, value, `${where} ${option.name}`, r, resolved) });
  }
  const options = wrap.reduceRight<Json[]>((inner, fn) => fn(inner), values);
  return { options, resolved: Object.keys(resolved).length ? resolved : undefined };
}

function optionValue(option: CommandOption, value: SlashOptionValue, where: string, r: OptionResolver, resolved: Record<string, Record<string, Json>>): string | number | boolean {
  const add = (kind: string, id: string, json: Json) => ((resolved[kind] ??= {})[id] = json);
  const idOf = (v: SlashOptionValue): string | undefined => (typeof v === 'string' ? v : typeof v === 'object' && v !== null && 'id' in v ? v.id : undefined);
  switch (option.type) {
    case T.String: {
      if (typeof value !== 'string') throw new Error(`${where}: expected a string, got ${JSON.stringify(value)}`);
      if (option.min_length !== undefined && value.length < option.min_length) throw new Error(`${where}: Discord refuses strings shorter than ${option.min_length}`);
      if (option.max_length !== undefined && value.length > option.max_length) throw new Error(`${where}: Discord refuses strings longer than ${option.max_length}`);
      if (value.length > 6000) throw new Error(`${where}: Discord refuses option strings longer than 6000`);
      checkChoice(option, value, where);
      return value;
    }
    case T.Integer:
    case T.Number: {
      if (typeof value !== 'number' || !Number.isFinite(value) || (option.type === T.Integer && !Number.isInteger(value))) {
        throw new Error(`${where}: expected ${option.type === T.Integer ? 'an integer' : 'a number'}, got ${JSON.stringify(value)}`);
      }
      if (option.min_value !== undefined && value < option.min_value) throw new Error(`${where}: Discord refuses values below ${option.min_value}`);
      if (option.max_value !== undefined && value > option.max_value) throw new Error(`${where}: Discord refuses values above ${option.max_value}`);
      checkChoice(option, value, where);
      return value;
    }
    case T.Boolean:
      if (typeof value !== 'boolean') throw new Error(`${where}: expected a boolean, got ${JSON.stringify(value)}`);
      return value;
    case T.User:
    case T.Mentionable: {
      const id = idOf(value);
      const user = id ? r.user(id) : undefined;
      if (user) {
        add('users', user.id, r.userJson(user));
        const member = r.memberJson(user.id);
        if (member) {
          const { user: _omitted, ...rest } = member;
          add('members', user.id, rest);
        }
        return user.id;
      }
      const role = option.type === T.Mentionable && id ? r.role(id) : undefined;
      if (role) {
        add('roles', role.id, r.roleJson(role));
        return role.id;
      }
      throw new Error(`${where}: ${JSON.stringify(id)} is not a user the fake knows`);
    }
    case T.Channel: {
      const id = idOf(value);
      const channel = id ? r.channel(id) : undefined;
      if (!channel) throw new Error(`${where}: ${JSON.stringify(id)} is not a channel of this server`);
      if (option.channel_types && !option.channel_types.includes(channel.type)) throw new Error(`${where}: channel type ${channel.type} is not among ${option.channel_types.join(', ')}`);
      add('channels', channel.id, { ...r.channelJson(channel), permissions: '0' });
      return channel.id;
    }
    case T.Role: {
      const id = idOf(value);
      const role = id ? r.role(id) : undefined;
      if (!role) throw new Error(`${where}: ${JSON.stringify(id)} is not a role of this server`);
      add('roles', role.id, r.roleJson(role));
      return role.id;
    }
    case T.Attachment: {
      if (!isFakeUpload(value)) throw new Error(`${where}: expected a file ({ filename, bytes, contentType? }), got ${JSON.stringify(value)}`);
      const json = r.upload(value);
      add('attachments', json.id, json);
      return json.id;
    }
    default:
      throw new Error(`${where}: option type ${option.type} is not supported by the fake's sendSlashCommand`);
  }
}

/** Discord sends an autocomplete interaction only for an option registered with autocomplete, while text is typed into it. */
function checkFocusable(option: CommandOption, focused: FocusedInput, where: string): void {
  if (option.autocomplete !== true) throw new Error(`${where} ${option.name} was not registered with autocomplete: Discord sends no autocomplete interaction for it`);
  if (typeof focused.typed !== 'string') throw new Error(`${where} ${option.name}: the typed text is a string, got ${JSON.stringify(focused.typed)}`);
  if (option.max_length !== undefined && focused.typed.length > option.max_length) throw new Error(`${where} ${option.name}: Discord lets nobody type more than ${option.max_length} characters`);
}

/**
 * What is wrong with an autocomplete result (callback type 8) for an option of `optionType`, as
 * Discord checks it: at most 25 choices, each a name of 1 to 100 characters and a value of the
 * option's type (a string of at most 100 characters); undefined when it is fine.
 */
export function autocompleteResultIssue(data: Json | null, optionType: number): FieldIssue | undefined {
  const choices = data?.choices;
  if (!Array.isArray(choices)) return { path: ['data', 'choices'], code: 'BASE_TYPE_REQUIRED', message: 'This field is required' };
  if (choices.length > 25) return { path: ['data', 'choices'], code: 'BASE_TYPE_MAX_LENGTH', message: 'Must be 25 or fewer in length.' };
  const bad = choices.findIndex((c) => !isRecord(c) || typeof c.name !== 'string' || c.name.length < 1 || c.name.length > 100 || !valueFits(optionType, c.value));
  if (bad >= 0) return { path: ['data', 'choices', bad], code: 'APPLICATION_COMMAND_OPTION_CHOICE_INVALID', message: "A choice needs a name (1-100 characters) and a value of the option's type." };
  return undefined;
}

function checkChoice(option: CommandOption, value: string | number, where: string): void {
  if (option.choices && !option.choices.some((c) => c.value === value)) {
    throw new Error(`${where}: ${JSON.stringify(value)} is not one of the choices (${option.choices.map((c) => JSON.stringify(c.value)).join(', ')})`);
  }
}

