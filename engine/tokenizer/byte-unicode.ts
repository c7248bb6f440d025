/**
 * Byte-level BPE (GPT-2, CLIP) works on unicode strings, not bytes: every byte of the UTF-8
 * text is swapped for a visible, non-whitespace character so merges files stay readable text.
 * Printable Latin-1 bytes stand for themselves; the rest (controls, space, soft hyphen…) are
 * moved up to U+0100 and beyond, in ascending byte order.
 */

/** Bytes that are their own symbol: '!'..'~', '¡'..'¬', '®'..'ÿ'. */
const SELF_MAPPED_RANGES: ReadonlyArray<readonly [number, number]> = [
  [0x21, 0x7e],
  [0xa1, 0xac],
  [0xae, 0xff],
];

export interface ByteSymbols {
  /** byteToSymbol[b] is the one-character symbol for byte b. */
  readonly byteToSymbol: readonly string[];
  readonly symbolToByte: ReadonlyMap<string, number>;
  /**
   * The 256 symbols in the order CLIP's vocabulary lists them (ids 0..255): the self-mapped
   * bytes first, then the relocated ones. This is not byte order.
   */
  readonly vocabOrder: readonly string[];
}

function buildByteSymbols(): ByteSymbols {
  const byteToSymbol: string[] = new Array(256);
  const vocabOrder: string[] = [];
  for (const [lo, hi] of SELF_MAPPED_RANGES) {
    for (let b = lo; b <= hi; b++) {
      byteToSymbol[b] = String.fromCharCode(b);
      vocabOrder.push(byteToSymbol[b]);
    }
  }
  let relocated = 0;
  for (let b = 0; b < 256; b++) {
    if (byteToSymbol[b] !== undefined) continue;
    byteToSymbol[b] = String.fromCharCode(256 + relocated++);
    vocabOrder.push(byteToSymbol[b]);
  }
  const symbolToByte = new Map(byteToSymbol.map((s, b) => [s, b] as const));
  return { byteToSymbol, symbolToByte, vocabOrder };
}

export const BYTE_SYMBOLS: ByteSymbols = buildByteSymbols();

const utf8 = new TextEncoder();

/** UTF-8 encodes `text` and spells each byte as its symbol. */
export function toByteSymbols(text: string): string {
  const bytes = utf8.encode(text);
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += BYTE_SYMBOLS.byteToSymbol[bytes[i]];
  return out;
}
