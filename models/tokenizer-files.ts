/**
 * Builds CLIP's tokenizer from the merge list openai/CLIP ships (bpe_simple_vocab_16e6.txt.gz)
 * and writes it in the Hugging Face layout Stable Diffusion ONNX exports carry in tokenizer/.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { END_OF_WORD, type MergePair, BYTE_SYMBOLS, CLIP_BOS_TOKEN, CLIP_EOS_TOKEN, CLIP_MAX_LENGTH } from '../engine/index.ts';
import { MODELS_ROOT } from './paths.ts';

export const CLIP_MERGES_GZ = join(MODELS_ROOT, 'assets', 'clip-bpe-merges.txt.gz');

/**
 * CLIP keeps only the first 49152 - 256 - 2 merges of the file, so that 512 byte tokens, the
 * merges and two special tokens make its 49408-entry vocabulary.
 */
export const CLIP_MERGE_COUNT = 49152 - 256 - 2;
export const CLIP_VOCAB_SIZE = 2 * 256 + CLIP_MERGE_COUNT + 2;

export interface ClipVocabulary {
  /** tokens[id] is the token string for that id. */
  tokens: string[];
  merges: MergePair[];
}

/** CLIP's vocabulary and merges, in id and rank order, from the gzipped merge list. */
export async function buildClipVocabulary(gzPath: string = CLIP_MERGES_GZ): Promise<ClipVocabulary> {
  const text = (await promisify(gunzip)(await readFile(gzPath))).toString('utf8');
  // The first line names the file/version; it is not a merge.
  const lines = text.split('\n').slice(1, 1 + CLIP_MERGE_COUNT);
  if (lines.length < CLIP_MERGE_COUNT) {
    throw new Error(`${gzPath}: has ${lines.length} merges, expected at least ${CLIP_MERGE_COUNT} (is this CLIP's bpe_simple_vocab_16e6.txt.gz?)`);
  }
  const merges = lines.map((line, index): MergePair => {
    const parts = line.split(' ');
    if (parts.length !== 2) throw new Error(`${gzPath}: line ${index + 2} is not a "left right" merge: ${JSON.stringify(line)}`);
    return [parts[0], parts[1]];
  });
  const tokens = [
    ...BYTE_SYMBOLS.vocabOrder,
    ...BYTE_SYMBOLS.vocabOrder.map((symbol) => symbol + END_OF_WORD),
    ...merges.map(([left, right]) => left + right),
    CLIP_BOS_TOKEN,
    CLIP_EOS_TOKEN,
  ];
  return { tokens, merges };
}

export interface ClipTokenizerFileOptions {
  /** SD 1.x pads with "<|endoftext|>" (the default); SD 2.x tokenizers pad with "!". */
  padToken?: string;
  modelMaxLength?: number;
}

function addedToken(content: string) {
  return { content, lstrip: false, normalized: true, rstrip: false, single_word: false };
}

/** Writes vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json into `dir`. */
export async function writeClipTokenizerFiles(dir: string, options: ClipTokenizerFileOptions = {}): Promise<void> {
  const vocabulary = await buildClipVocabulary();
  const padToken = options.padToken ?? CLIP_EOS_TOKEN;
  if (!vocabulary.tokens.includes(padToken)) throw new Error(`Pad token ${JSON.stringify(padToken)} is not in the CLIP vocabulary`);

  // Written by hand, not JSON.stringify(object): JS objects put integer-like keys ("1", "2"…)
  // first, and the file reads best in id order like the ones transformers writes.
  const vocabJson = `{\n${vocabulary.tokens.map((token, id) => `  ${JSON.stringify(token)}: ${id}`).join(',\n')}\n}\n`;
  const mergesTxt = `#version: 0.2\n${vocabulary.merges.map(([left, right]) => `${left} ${right}`).join('\n')}\n`;
  const specialTokens = {
    bos_token: addedToken(CLIP_BOS_TOKEN),
    eos_token: addedToken(CLIP_EOS_TOKEN),
    pad_token: padToken,
    unk_token: addedToken(CLIP_EOS_TOKEN),
  };
  const withType = (token: object) => ({ __type: 'AddedToken', ...token });
  const tokenizerConfig = {
    add_prefix_space: false,
    bos_token: withType(specialTokens.bos_token),
    do_lower_case: true,
    eos_token: withType(specialTokens.eos_token),
    errors: 'replace',
    model_max_length: options.modelMaxLength ?? CLIP_MAX_LENGTH,
    pad_token: padToken,
    special_tokens_map_file: './special_tokens_map.json',
    tokenizer_class: 'CLIPTokenizer',
    unk_token: withType(specialTokens.unk_token),
  };

  await mkdir(dir, { recursive: true });
  await Promise.all([
    writeFile(join(dir, 'vocab.json'), vocabJson),
    writeFile(join(dir, 'merges.txt'), mergesTxt),
    writeFile(join(dir, 'tokenizer_config.json'), `${JSON.stringify(tokenizerConfig, null, 2)}\n`),
    writeFile(join(dir, 'special_tokens_map.json'), `${JSON.stringify(specialTokens, null, 2)}\n`),
  ]);
}
