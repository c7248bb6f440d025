/** Small readers for what the bot sent, so tests can assert on buttons without walking raw JSON. */
import { isRecord } from './checks.ts';
import type { MessageContent } from './model.ts';
import { ComponentType } from './protocol.ts';

export interface ButtonInfo {
  customId: string | null;
  label: string | null;
  style: number;
  disabled: boolean;
  url: string | null;
}

/** Every button in a message (rows, sections and containers included), in display order. */
export function buttonsOf(message: MessageContent): ButtonInfo[] {
  const out: ButtonInfo[] = [];
  const walk = (list: unknown[]) => {
    for (const c of list) {
      if (!isRecord(c)) continue;
      if (c.type === ComponentType.Button) {
        out.push({
          customId: typeof c.custom_id === 'string' ? c.custom_id : null,
          label: typeof c.label === 'string' ? c.label : null,
          style: c.style as number,
          disabled: c.disabled === true,
          url: typeof c.url === 'string' ? c.url : null,
        });
      }
      walk([...(Array.isArray(c.components) ? c.components : []), ...(c.accessory ? [c.accessory] : [])]);
    }
  };
  walk(message.components);
  return out;
}

/** Finds a component by custom_id anywhere in a component tree (rows, sections, containers). */
export function findComponent(components: unknown[], customId: string): Record<string, unknown> | undefined {
  for (const c of components) {
    if (!isRecord(c)) continue;
    if (c.custom_id === customId) return c;
    const nested = [...(Array.isArray(c.components) ? c.components : []), ...(c.accessory ? [c.accessory] : []), ...(c.component ? [c.component] : [])];
    const found = findComponent(nested, customId);
    if (found) return found;
  }
  return undefined;
}

export function customIdsOf(components: unknown[]): string[] {
  const out: string[] = [];
  const walk = (list: unknown[]) => {
    for (const c of list) {
      if (!isRecord(c)) continue;
      if (typeof c.custom_id === 'string') out.push(c.custom_id);
      walk([...(Array.isArray(c.components) ? c.components : []), ...(c.accessory ? [c.accessory] : []), ...(c.component ? [c.component] : [])]);
    }
  };
  walk(components);
  return out;
}
