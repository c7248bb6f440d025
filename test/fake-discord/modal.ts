/** The modal (callback type 9) checks Discord applies, so a bad form fails at the callback, not in a user's face. */
import { invalidFormBody, type FieldIssue } from './errors.ts';
import { isRecord } from './checks.ts';
import { ComponentType } from './protocol.ts';
import type { Json } from './serialize.ts';

/** Checks a modal (callback type 9) the way Discord does, and returns it for submitModal. */
export function validateModal(data: Json | null): Json {
  const issues: FieldIssue[] = [];
  const at = (...p: (string | number)[]) => ['data', ...p];
  if (!data) throw invalidFormBody([{ path: ['data'], code: 'BASE_TYPE_REQUIRED', message: 'This field is required' }]);
  if (typeof data.custom_id !== 'string' || data.custom_id.length < 1 || data.custom_id.length > 100) {
    issues.push({ path: at('custom_id'), code: 'BASE_TYPE_BAD_LENGTH', message: 'Must be between 1 and 100 in length.' });
  }
  if (typeof data.title !== 'string' || data.title.length < 1 || data.title.length > 45) issues.push({ path: at('title'), code: 'BASE_TYPE_BAD_LENGTH', message: 'Must be between 1 and 45 in length.' });
  const components = data.components;
  if (!Array.isArray(components) || components.length < 1 || components.length > 5) {
    issues.push({ path: at('components'), code: 'BASE_TYPE_BAD_LENGTH', message: 'Must be between 1 and 5 in length.' });
  } else {
    const ids = new Set<string>();
    components.forEach((c, i) => {
      if (isRecord(c) && c.type === ComponentType.ActionRow && Array.isArray(c.components) && c.components.length === 1 && isRecord(c.components[0]) && c.components[0].type === ComponentType.TextInput) {
        checkTextInput(c.components[0], at('components', i, 'components', 0), true, ids, issues);
      } else if (isRecord(c) && c.type === ComponentType.Label && isRecord(c.component)) {
        if (typeof c.label !== 'string' || c.label.length < 1 || c.label.length > 45) issues.push({ path: at('components', i, 'label'), code: 'BASE_TYPE_BAD_LENGTH', message: 'Must be between 1 and 45 in length.' });
        const inner = c.component;
        if (inner.type === ComponentType.TextInput) checkTextInput(inner, at('components', i, 'component'), false, ids, issues);
        else if (inner.type === ComponentType.StringSelect) {
          if (typeof inner.custom_id !== 'string' || ids.has(inner.custom_id)) issues.push({ path: at('components', i, 'component', 'custom_id'), code: 'COMPONENT_CUSTOM_ID_DUPLICATED', message: 'Each modal field needs its own custom_id.' });
          else ids.add(inner.custom_id);
          if (!Array.isArray(inner.options) || inner.options.length < 1 || inner.options.length > 25) issues.push({ path: at('components', i, 'component', 'options'), code: 'BASE_TYPE_BAD_LENGTH', message: 'Must be between 1 and 25 in length.' });
        } else issues.push({ path: at('components', i, 'component', 'type'), code: 'UNION_TYPE_CHOICES', message: 'The fake accepts text inputs and string selects inside labels.' });
      } else if (!(isRecord(c) && c.type === ComponentType.TextDisplay && typeof c.content === 'string')) {
        issues.push({ path: at('components', i), code: 'MODAL_COMPONENT_INVALID', message: 'A modal row must be an action row holding one text input, a label, or a text display.' });
      }
    });
  }
  if (issues.length) throw invalidFormBody(issues);
  return data;
}

function checkTextInput(input: Json, path: (string | number)[], legacy: boolean, ids: Set<string>, issues: FieldIssue[]): void {
  if (typeof input.custom_id !== 'string' || input.custom_id.length < 1 || input.custom_id.length > 100) {
    issues.push({ path: [...path, 'custom_id'], code: 'BASE_TYPE_BAD_LENGTH', message: 'Must be between 1 and 100 in length.' });
  } else if (ids.has(input.custom_id)) {
    issues.push({ path: [...path, 'custom_id'], code: 'COMPONENT_CUSTOM_ID_DUPLICATED', message: `Component custom id "${input.custom_id}" cannot be duplicated` });
  } else ids.add(input.custom_id);
  if (input.style !== 1 && input.style !== 2) issues.push({ path: [...path, 'style'], code: 'BASE_TYPE_CHOICES', message: 'Value must be one of {1, 2}.' });
  if (legacy && (typeof input.label !== 'string' || input.label.length < 1 || input.label.length > 45)) {
    issues.push({ path: [...path, 'label'], code: 'BASE_TYPE_BAD_LENGTH', message: 'Must be between 1 and 45 in length.' });
  }
  if (!legacy && input.label !== undefined) issues.push({ path: [...path, 'label'], code: 'TEXT_INPUT_LABEL_IN_LABEL_COMPONENT', message: 'A text input inside a label component takes its label from the label.' });
  for (const [key, lo, hi] of [['min_length', 0, 4000], ['max_length', 1, 4000]] as const) {
    const v = input[key];
    if (v !== undefined && (!Number.isInteger(v) || (v as number) < lo || (v as number) > hi)) issues.push({ path: [...path, key], code: 'NUMBER_TYPE_MAX', message: `Must be between ${lo} and ${hi}.` });
  }
  if (input.value !== undefined && (typeof input.value !== 'string' || input.value.length > 4000)) issues.push({ path: [...path, 'value'], code: 'BASE_TYPE_MAX_LENGTH', message: 'Must be 4000 or fewer in length.' });
  if (input.placeholder !== undefined && (typeof input.placeholder !== 'string' || input.placeholder.length > 100)) issues.push({ path: [...path, 'placeholder'], code: 'BASE_TYPE_MAX_LENGTH', message: 'Must be 100 or fewer in length.' });
}
