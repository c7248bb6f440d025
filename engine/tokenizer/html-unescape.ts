/**
 * Python's html.unescape, which CLIP runs on every prompt (twice). All numeric references and
 * every name HTML accepts without a semicolon are handled exactly; of the ~2000 names that need
 * the semicolon only a common typographic subset is known, the rest are left as written.
 */

const CHAR_REF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g;

/** Entity names of U+00A0..U+00FF, in code point order (HTML 4's Latin-1 set). */
const LATIN1_NAMES =
  'nbsp iexcl cent pound curren yen brvbar sect uml copy ordf laquo not shy reg macr deg plusmn sup2 sup3 ' +
  'acute micro para middot cedil sup1 ordm raquo frac14 frac12 frac34 iquest Agrave Aacute Acirc Atilde Auml ' +
  'Aring AElig Ccedil Egrave Eacute Ecirc Euml Igrave Iacute Icirc Iuml ETH Ntilde Ograve Oacute Ocirc Otilde ' +
  'Ouml times Oslash Ugrave Uacute Ucirc Uuml Yacute THORN szlig agrave aacute acirc atilde auml aring aelig ' +
  'ccedil egrave eacute ecirc euml igrave iacute icirc iuml eth ntilde ograve oacute ocirc otilde ouml divide ' +
  'oslash ugrave uacute ucirc uuml yacute thorn yuml';

/** Names valid without a trailing semicolon; "&ltfoo" means "<foo" via the longest such prefix. */
const LEGACY_NAMES: ReadonlyMap<string, string> = new Map([
  ...LATIN1_NAMES.split(' ').map((name, i) => [name, String.fromCharCode(0xa0 + i)] as const),
  ['amp', '&'], ['AMP', '&'], ['lt', '<'], ['LT', '<'], ['gt', '>'], ['GT', '>'],
  ['quot', '"'], ['QUOT', '"'], ['COPY', '\u00a9'], ['REG', '\u00ae'],
]);

const SEMICOLON_NAMES: ReadonlyMap<string, string> = new Map([
  ...[...LEGACY_NAMES].map(([name, text]) => [`${name};`, text] as const),
  ['apos;', "'"], ['hellip;', '\u2026'], ['mdash;', '\u2014'], ['ndash;', '\u2013'], ['lsquo;', '\u2018'],
  ['rsquo;', '\u2019'], ['ldquo;', '\u201c'], ['rdquo;', '\u201d'], ['trade;', '\u2122'], ['euro;', '\u20ac'],
  ['bull;', '\u2022'],
]);

/** Numeric references to C1 controls mean the Windows-1252 character, as browsers do. */
const WINDOWS_1252_C1: ReadonlyMap<number, string> = new Map([
  [0x80, '\u20ac'], [0x82, '\u201a'], [0x83, '\u0192'], [0x84, '\u201e'], [0x85, '\u2026'],
  [0x86, '\u2020'], [0x87, '\u2021'], [0x88, '\u02c6'], [0x89, '\u2030'], [0x8a, '\u0160'],
  [0x8b, '\u2039'], [0x8c, '\u0152'], [0x8e, '\u017d'], [0x91, '\u2018'], [0x92, '\u2019'],
  [0x93, '\u201c'], [0x94, '\u201d'], [0x95, '\u2022'], [0x96, '\u2013'], [0x97, '\u2014'],
  [0x98, '\u02dc'], [0x99, '\u2122'], [0x9a, '\u0161'], [0x9b, '\u203a'], [0x9c, '\u0153'],
  [0x9e, '\u017e'], [0x9f, '\u0178'],
]);

function numericRef(code: number): string {
  if (code === 0) return '\ufffd';
  if (code === 0x0d) return '\r';
  const c1 = WINDOWS_1252_C1.get(code);
  if (c1 !== undefined) return c1;
  if (code >= 0x80 && code <= 0x9f) return String.fromCharCode(code);
  if ((code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff) return '\ufffd';
  // Controls and noncharacters may not be referenced; HTML drops them.
  const isControl = (code >= 0x01 && code <= 0x08) || code === 0x0b || (code >= 0x0e && code <= 0x1f) || code === 0x7f;
  const isNonCharacter = (code >= 0xfdd0 && code <= 0xfdef) || (code & 0xfffe) === 0xfffe;
  if (isControl || isNonCharacter) return '';
  return String.fromCodePoint(code);
}

function replaceCharRef(whole: string, ref: string): string {
  if (ref[0] === '#') {
    const hex = ref[1] === 'x' || ref[1] === 'X';
    const digits = ref.slice(hex ? 2 : 1).replace(/;$/, '');
    return numericRef(parseInt(digits, hex ? 16 : 10));
  }
  const named = SEMICOLON_NAMES.get(ref) ?? LEGACY_NAMES.get(ref);
  if (named !== undefined) return named;
  for (let len = ref.length - 1; len >= 2; len--) {
    const legacy = LEGACY_NAMES.get(ref.slice(0, len));
    if (legacy !== undefined) return legacy + ref.slice(len);
  }
  return whole;
}

export function unescapeHtml(text: string): string {
  return text.includes('&') ? text.replace(CHAR_REF, replaceCharRef) : text;
}
