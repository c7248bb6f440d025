/** Discord's layout rules for message components (action rows, buttons, selects, Components V2). */
import type { FieldIssue } from './errors.ts';
import { isRecord, maxLength, typeIssue } from './checks.ts';
import { ButtonStyle, ComponentType } from './protocol.ts';
import { isSnowflake } from './snowflake.ts';

type Json = Record<string, unknown>;

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

/** Adds an issue for each component rule broken; custom_ids must be unique across the message. */
export function checkComponents(components: unknown[], v2: boolean, issues: FieldIssue[]): void {
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

