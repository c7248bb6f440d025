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
