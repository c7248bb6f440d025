/**
 * The one rule for free text the farm stores (prompts, negative prompts, ledger notes, error
 * messages): Postgres cannot store U+0000 in text or jsonb ("unsupported Unicode escape
 * sequence"), and a lone UTF-16 surrogate is not Unicode at all (jsonb refuses it, text would
 * store a replacement character). User text with either is refused before anything is stored,
 * naming the field; text the farm writes itself (error messages from a renderer) is cleaned.
 */

/** A lone surrogate: a high one not followed by a low one, or a low one not after a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Undefined when `value` can be stored, else what is wrong with it and what to do, naming `field`. */
export function unstorableTextIssue(field: string, value: string): string | undefined {
  const nul = value.indexOf('\u0000');
  if (nul >= 0) return `${field} contains a NUL character (U+0000) at position ${nul + 1}; remove it and send the text again`;
  const lone = LONE_SURROGATE.exec(value);
  if (lone) return `${field} contains a broken character (a lone UTF-16 surrogate, U+${lone[0].charCodeAt(0).toString(16).toUpperCase()}) at position ${lone.index + 1}; retype or remove it and send the text again`;
  return undefined;
}

/** `value` with NUL characters removed and lone surrogates replaced by U+FFFD, for text the farm writes itself. */
export function storableText(value: string): string {
  return value.replace(/\u0000/g, '').replace(new RegExp(LONE_SURROGATE.source, 'g'), '\uFFFD');
}

/**
 * A length of time as people read it, exact to the second: "45s", "1m 05s", "90m", "2h 30m",
 * "24h", "1d 12h". Under two hours in minutes (an ETA, a render time), up to a day in hours, past
 * that in days; parts that are zero are left out, minutes and seconds after a larger unit have two
 * digits.
 */
export function durationText(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const units: Array<[string, number]> = s > 86400 ? [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] : s >= 7200 ? [['h', 3600], ['m', 60], ['s', 1]] : [['m', 60], ['s', 1]];
  const parts: string[] = [];
  let left = s;
  for (const [unit, size] of units) {
    const n = Math.floor(left / size);
    left -= n * size;
    if (n === 0) continue;
    const padded = parts.length > 0 && (unit === 'm' || unit === 's');
    parts.push(`${padded ? String(n).padStart(2, '0') : n}${unit}`);
  }
  return parts.join(' ');
}

/**
 * A size in bytes as every message shows it (the bot's and the farm's own): the engine's one
 * formatter (engine/file-size.ts: "300 bytes", "640 KiB" rounded up, "10 MiB", "1.5 MiB"), so the
 * same limit reads the same wherever it is named, the engine's own messages included.
 */
export { fileSize } from '../engine/index.ts';
