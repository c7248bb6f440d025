/**
 * Text preparation as openai/CLIP's simple_tokenizer does it: Unicode NFC, html-unescape twice,
 * strip, collapse whitespace, lowercase, then split into pre-tokens that BPE works on one at a
 * time. Of ftfy's fix_text (which CLIP runs first) only the NFC step is taken: it is the one every
 * CLIP tokenizer agrees on (Hugging Face's normalizer starts with NFC too), and without it a
 * prompt typed or pasted in decomposed form ("e" + U+0301 for "é", Korean as separate jamo) gets
 * entirely different tokens. ftfy's other repairs (curly quotes, ligatures, full-width letters,
 * mojibake) are left out, as in the reference ids and in Hugging Face's CLIPTokenizer.
 */
import { unescapeHtml } from './html-unescape.ts';

/**
 * CLIP splits with the `regex` module, whose \s is the Unicode White_Space property. JS's \s
 * differs (it adds U+FEFF and lacks U+0085), so the property is named explicitly.
 */
const WHITESPACE_RUNS = /\p{White_Space}+/gu;

/**
 * Python's str.strip() uses str.isspace(), which is White_Space plus the four information
 * separators U+001C..U+001F. CLIP strips with it but collapses with the regex \s above, so a
 * leading U+001C disappears while an inner one survives as punctuation.
 */
const PY_STRIP = /^[\p{White_Space}\u001c-\u001f]+|[\p{White_Space}\u001c-\u001f]+$/gu;

/**
 * CLIP's pattern: its two special tokens, English contractions, letter runs, single digits,
 * runs of anything else that is not whitespace. CLIP compiles it case-insensitively; on
 * lowercased text that only matters in two places, reproduced here without the `i` flag
 * (which in JS would also pull U+0345 into \p{L}):
 *  - "ſ" (long s) case-folds to "s", so "'ſ" counts as the "'s" contraction;
 *  - U+0345 (combining ypogegrammeni) folds to a letter yet is not one, so it matches no
 *    alternative at all and is silently dropped.
 */
const CLIP_PRETOKEN =
  /<\|startoftext\|>|<\|endoftext\|>|'[sſ]|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\p{White_Space}\p{L}\p{N}\u0345]+/gu;

/** The normalised text CLIP actually tokenizes. */
export function cleanClipText(text: string): string {
  const unescaped = unescapeHtml(unescapeHtml(text.normalize('NFC'))).replace(PY_STRIP, '');
  return unescaped.replace(WHITESPACE_RUNS, ' ').replace(PY_STRIP, '').toLowerCase();
}

/** Pre-tokens of already cleaned text; whitespace is never part of one. */
export function splitClipWords(cleaned: string): string[] {
  return cleaned.match(CLIP_PRETOKEN) ?? [];
}

/**
 * The fewest tokens any CLIP byte-level BPE tokenizer makes of `text`, start and end not counted:
 * its pre-tokens, each of which becomes at least one token. Needs no vocabulary (no model).
 */
export function clipTokensAtLeast(text: string): number {
  return splitClipWords(cleanClipText(text)).length;
}
