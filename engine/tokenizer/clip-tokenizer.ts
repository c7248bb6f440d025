/**
 * Offline CLIP tokenizer for Stable Diffusion text encoders, reading the Hugging Face files a
 * model ships in tokenizer/ (and tokenizer_2/ for SDXL): vocab.json, merges.txt and, when
 * present, tokenizer_config.json / special_tokens_map.json. Produces the same ids as
 * openai/CLIP's simple_tokenizer (of ftfy's repairs only NFC: engine/tokenizer/clip-text.ts).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BpeMerger, END_OF_WORD, type MergePair } from './bpe.ts';
import { BYTE_SYMBOLS, toByteSymbols } from './byte-unicode.ts';
import { cleanClipText, splitClipWords } from './clip-text.ts';
import {
  CLIP_BOS_TOKEN,
  CLIP_EOS_TOKEN,
  CLIP_MAX_LENGTH,
  TokenizerFileError,
  readJsonFile,
  readTokenizerSettings,
  type TokenizerSettings,
} from './tokenizer-config.ts';

export { TokenizerFileError } from './tokenizer-config.ts';
export type { TokenizerSettings } from './tokenizer-config.ts';
export type { MergePair } from './bpe.ts';

export interface TokenizeOptions {
  /** Fill up to maxLength with the configured pad id (what the text encoder expects). */
  pad?: boolean;
}

export interface TokenizeResult {
  ids: number[];
  /** True when prompt tokens were dropped to fit maxLength. */
  truncated: boolean;
  /** Length before truncation and padding, BOS and EOS included. */
  tokenCount: number;
}

export interface ClipTokenizerParts {
  vocab: ReadonlyMap<string, number>;
  /** In rank order: earlier merges are applied first. */
  merges: readonly MergePair[];
  settings?: Partial<TokenizerSettings>;
  /** Names used in error messages; the loader passes the real paths. */
  files?: { vocab?: string; merges?: string };
}

/** Distinct words are few in practice; the bound only stops a long-running bot growing forever. */
const WORD_CACHE_LIMIT = 50_000;

export class ClipTokenizer {
  readonly maxLength: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly vocabSize: number;

  private readonly vocab: ReadonlyMap<string, number>;
  private readonly idToToken: string[] = [];
  private readonly bpe: BpeMerger;
  private readonly wordCache = new Map<string, readonly number[]>();

  constructor(parts: ClipTokenizerParts) {
    const vocabFile = parts.files?.vocab ?? 'vocab.json';
    const mergesFile = parts.files?.merges ?? 'merges.txt';
    this.vocab = parts.vocab;
    this.vocabSize = parts.vocab.size;
    for (const [token, id] of parts.vocab) {
      if (!Number.isInteger(id) || id < 0) {
        throw new TokenizerFileError(vocabFile, `token ${JSON.stringify(token)} has id ${JSON.stringify(id)}; ids must be non-negative integers`);
      }
      this.idToToken[id] = token;
    }

    const idOf = (token: string, role: string): number => {
      const id = parts.vocab.get(token);
      if (id === undefined) throw new TokenizerFileError(vocabFile, `has no id for the ${role} token ${JSON.stringify(token)}`);
      return id;
    };
    const eosToken = parts.settings?.eosToken ?? CLIP_EOS_TOKEN;
    this.bosId = idOf(parts.settings?.bosToken ?? CLIP_BOS_TOKEN, 'start (bos)');
    this.eosId = idOf(eosToken, 'end (eos)');
    this.padId = idOf(parts.settings?.padToken ?? eosToken, 'padding');
    this.maxLength = parts.settings?.maxLength ?? CLIP_MAX_LENGTH;
    if (!Number.isInteger(this.maxLength) || this.maxLength < 2) {
      throw new RangeError(`Tokenizer maxLength must be an integer of at least 2 (room for start and end tokens), got ${this.maxLength}`);
    }

    // With every byte symbol and every merge result in the vocabulary, any BPE output has an id.
    for (const symbol of BYTE_SYMBOLS.vocabOrder) {
      for (const token of [symbol, symbol + END_OF_WORD]) {
        if (!parts.vocab.has(token)) {
          throw new TokenizerFileError(vocabFile, `lacks the byte-level token ${JSON.stringify(token)}; this is not a CLIP byte-level BPE vocabulary`);
        }
      }
    }
    parts.merges.forEach(([left, right], index) => {
      if (!parts.vocab.has(left + right)) {
        throw new TokenizerFileError(
          mergesFile,
          `merge ${index + 1} ("${left} ${right}") makes ${JSON.stringify(left + right)}, which the vocabulary lacks; vocab.json and merges.txt must come from the same tokenizer`,
        );
      }
    });
    this.bpe = new BpeMerger(parts.merges);
  }

  /** Ids with BOS/EOS, truncated to maxLength (EOS kept last), padded only when asked. */
  encode(text: string, opts?: TokenizeOptions): number[] {
    return this.encodeWithInfo(text, opts).ids;
  }

  encodeWithInfo(text: string, opts?: TokenizeOptions): TokenizeResult {
    const body = this.promptIds(text);
    const room = this.maxLength - 2;
    const truncated = body.length > room;
    const ids = [this.bosId, ...(truncated ? body.slice(0, room) : body), this.eosId];
    if (opts?.pad) while (ids.length < this.maxLength) ids.push(this.padId);
    return { ids, truncated, tokenCount: body.length + 2 };
  }

  /**
   * The prompt text the ids stand for, as CLIP sees it: lowercase, and every pre-token
   * followed by a space ("mars , at night !"), since word ends are all BPE records.
   * BOS is skipped and decoding stops at the first EOS, so padding never shows up.
   */
  decode(ids: readonly number[]): string {
    let symbols = '';
    for (const id of ids) {
      if (id === this.eosId) break;
      if (id === this.bosId) continue;
      const token = this.idToToken[id];
      if (token === undefined) {
        throw new RangeError(`Cannot decode id ${id}: not in this tokenizer's vocabulary (${this.vocabSize} tokens)`);
      }
      symbols += token;
    }
    const bytes: number[] = [];
    for (const ch of symbols) {
      const byte = BYTE_SYMBOLS.symbolToByte.get(ch);
      if (byte !== undefined) bytes.push(byte);
      else bytes.push(...Buffer.from(ch, 'utf8'));
    }
    return new TextDecoder('utf-8').decode(Uint8Array.from(bytes)).split(END_OF_WORD).join(' ').trimEnd();
  }

  /** Token ids of the prompt alone, before BOS/EOS and truncation. */
  private promptIds(text: string): number[] {
    const ids: number[] = [];
    for (const word of splitClipWords(cleanClipText(text))) {
      let wordIds = this.wordCache.get(word);
      if (wordIds === undefined) {
        wordIds = this.wordIds(word);
        if (this.wordCache.size >= WORD_CACHE_LIMIT) this.wordCache.clear();
        this.wordCache.set(word, wordIds);
      }
      for (const id of wordIds) ids.push(id);
    }
    return ids;
  }

  private wordIds(word: string): number[] {
    // The pre-tokenizer lets "<|startoftext|>" / "<|endoftext|>" through whole; they map directly.
    if (word === CLIP_BOS_TOKEN || word === CLIP_EOS_TOKEN) {
      const special = this.vocab.get(word);
      if (special !== undefined) return [special];
    }
    return this.bpe.apply(toByteSymbols(word)).map((token) => this.vocab.get(token) as number);
  }
}

function parseVocab(json: unknown, file: string): Map<string, number> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new TokenizerFileError(file, 'expected a JSON object mapping each token to its integer id');
  }
  const vocab = new Map<string, number>();
  for (const [token, id] of Object.entries(json)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw new TokenizerFileError(file, `token ${JSON.stringify(token)} has id ${JSON.stringify(id)}; expected a non-negative integer`);
    }
    vocab.set(token, id);
  }
  if (vocab.size === 0) throw new TokenizerFileError(file, 'is empty; expected the CLIP vocabulary (token → id)');
  return vocab;
}

/** merges.txt: an optional "#version" header, then one "left right" pair per line, in rank order. */
export function parseMerges(text: string, file = 'merges.txt'): MergePair[] {
  const lines = text.split(/\r?\n/);
  const merges: MergePair[] = [];
  lines.forEach((line, index) => {
    if (line === '' || (index === 0 && line.startsWith('#version'))) return;
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new TokenizerFileError(file, `line ${index + 1} should be two symbols separated by one space, got ${JSON.stringify(line.slice(0, 60))}`);
    }
    merges.push([parts[0], parts[1]]);
  });
  if (merges.length === 0) throw new TokenizerFileError(file, 'has no merges; expected one "left right" pair per line');
  return merges;
}

async function readMergesFile(file: string): Promise<MergePair[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new TokenizerFileError(file, "file not found (expected the CLIP BPE merge list; copy the model's tokenizer/ folder completely)");
    }
    throw new TokenizerFileError(file, `cannot be read: ${(err as Error).message}`);
  }
  return parseMerges(text, file);
}

/** Loads the tokenizer stored in a model's tokenizer/ (or tokenizer_2/) folder. */
export async function loadTokenizer(dir: string): Promise<ClipTokenizer> {
  const vocabFile = join(dir, 'vocab.json');
  const mergesFile = join(dir, 'merges.txt');
  const vocab = parseVocab(await readJsonFile(vocabFile, 'the CLIP vocabulary, a JSON object of token → id', false), vocabFile);
  const merges = await readMergesFile(mergesFile);
  const settings = await readTokenizerSettings(dir);
  return new ClipTokenizer({ vocab, merges, settings, files: { vocab: vocabFile, merges: mergesFile } });
}
