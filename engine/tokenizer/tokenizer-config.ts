/**
 * The optional Hugging Face tokenizer settings that change what the text encoder is fed:
 * the padding token (SD 1.x pads with <|endoftext|>, SD 2.x with "!") and the sequence length.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export const CLIP_BOS_TOKEN = '<|startoftext|>';
export const CLIP_EOS_TOKEN = '<|endoftext|>';
export const CLIP_MAX_LENGTH = 77;

/**
 * The longest prompt (or negative prompt), in characters, the front ends take: the text encoder
 * reads 75 CLIP tokens, about 300 characters of English, so more is cut off anyway.
 */
export const MAX_PROMPT_LENGTH = 500;

/**
 * transformers writes int(1e30) as model_max_length when a tokenizer has no limit; anything
 * this large means "unset", and CLIP text encoders then still take 77 positions.
 */
const UNSET_MAX_LENGTH = 1e9;

export interface TokenizerSettings {
  bosToken: string;
  eosToken: string;
  padToken: string;
  maxLength: number;
}

type JsonObject = Record<string, unknown>;

export class TokenizerFileError extends Error {
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'TokenizerFileError';
  }
}

/** Reads and parses a JSON file; undefined when it does not exist and `optional` is set. */
export async function readJsonFile(file: string, what: string, optional: boolean): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      if (optional) return undefined;
      throw new TokenizerFileError(file, `file not found (expected ${what}; copy the model's tokenizer/ folder completely)`);
    }
    throw new TokenizerFileError(file, `cannot be read: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new TokenizerFileError(file, `is not valid JSON (expected ${what}): ${(err as Error).message}`);
  }
}

function asObject(value: unknown, file: string, what: string): JsonObject | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TokenizerFileError(file, `expected a JSON object with ${what}`);
  }
  return value as JsonObject;
}

/** Special tokens are either a plain string or an AddedToken object with `content`. */
function tokenText(config: JsonObject | undefined, key: string, file: string): string | undefined {
  const value = config?.[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && typeof (value as JsonObject).content === 'string') {
    return (value as JsonObject).content as string;
  }
  throw new TokenizerFileError(file, `"${key}" must be a string or an object with a "content" string`);
}

function maxLengthFrom(config: JsonObject | undefined, file: string): number | undefined {
  const value = config?.model_max_length;
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 2) {
    throw new TokenizerFileError(file, `"model_max_length" must be an integer of at least 2, got ${JSON.stringify(value)}`);
  }
  return value >= UNSET_MAX_LENGTH ? undefined : value;
}

/**
 * Settings from tokenizer_config.json, overridden by special_tokens_map.json where both name a
 * token (that is the precedence transformers applies); CLIP defaults fill the gaps.
 */
export async function readTokenizerSettings(dir: string): Promise<TokenizerSettings> {
  const configFile = join(dir, 'tokenizer_config.json');
  const mapFile = join(dir, 'special_tokens_map.json');
  const config = asObject(await readJsonFile(configFile, 'tokenizer settings', true), configFile, 'tokenizer settings');
  const map = asObject(await readJsonFile(mapFile, 'special token names', true), mapFile, 'special token names');

  const pick = (key: string) => tokenText(map, key, mapFile) ?? tokenText(config, key, configFile);
  const bosToken = pick('bos_token') ?? CLIP_BOS_TOKEN;
  const eosToken = pick('eos_token') ?? CLIP_EOS_TOKEN;
  return {
    bosToken,
    eosToken,
    padToken: pick('pad_token') ?? eosToken,
    maxLength: maxLengthFrom(config, configFile) ?? CLIP_MAX_LENGTH,
  };
}
