import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer, type ClipTokenizer } from '../../../engine/tokenizer/clip-tokenizer.ts';
import { clipTokensAtLeast } from '../../../engine/tokenizer/clip-text.ts';
import { promptLengthNotices } from '../../../engine/index.ts';
import { CLIP_VOCAB_SIZE, writeClipTokenizerFiles } from '../../../models/tokenizer-files.ts';

interface ReferenceCase {
  text: string;
  ids: number[];
}

const reference = JSON.parse(
  await readFile(new URL('../../fixtures/clip-tokenizer-reference.json', import.meta.url), 'utf8'),
) as { cases: ReferenceCase[] };

let root: string;
let sd15Dir: string;
let sd2Dir: string;
let sd15: ClipTokenizer;
let sd2: ClipTokenizer;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'blendfarm-tokenizer-'));
  sd15Dir = join(root, 'sd15', 'tokenizer');
  sd2Dir = join(root, 'sd2', 'tokenizer');
  await writeClipTokenizerFiles(sd15Dir);
  await writeClipTokenizerFiles(sd2Dir, { padToken: '!' });
  [sd15, sd2] = await Promise.all([loadTokenizer(sd15Dir), loadTokenizer(sd2Dir)]);
});

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/** Prompt ids without BOS/EOS, from the tokenizer itself. */
const bodyOf = (tok: ClipTokenizer, text: string) => tok.encode(text).slice(1, -1);

describe('tokenizer files', () => {
  it('writes the Hugging Face layout with the full CLIP vocabulary', async () => {
    const vocab = JSON.parse(await readFile(join(sd15Dir, 'vocab.json'), 'utf8')) as Record<string, number>;
    expect(Object.keys(vocab)).toHaveLength(49408);
    expect(CLIP_VOCAB_SIZE).toBe(49408);
    expect(vocab['<|startoftext|>']).toBe(49406);
    expect(vocab['<|endoftext|>']).toBe(49407);
    expect(vocab['!']).toBe(0);
    expect(new Set(Object.values(vocab)).size).toBe(49408);

    const merges = (await readFile(join(sd15Dir, 'merges.txt'), 'utf8')).trimEnd().split('\n');
    expect(merges[0]).toBe('#version: 0.2');
    expect(merges).toHaveLength(1 + 48894);
    expect(merges[1]).toBe('i n');

    const config = JSON.parse(await readFile(join(sd15Dir, 'tokenizer_config.json'), 'utf8'));
    expect(config.model_max_length).toBe(77);
    expect(config.pad_token).toBe('<|endoftext|>');
    const sd2Map = JSON.parse(await readFile(join(sd2Dir, 'special_tokens_map.json'), 'utf8'));
    expect(sd2Map.pad_token).toBe('!');
    expect(sd2Map.bos_token.content).toBe('<|startoftext|>');
  });

  it('loads with the vocabulary size, special ids and pad id from the config', () => {
    expect(sd15.vocabSize).toBe(49408);
    expect(sd15.bosId).toBe(49406);
    expect(sd15.eosId).toBe(49407);
    expect(sd15.padId).toBe(49407);
    expect(sd15.maxLength).toBe(77);
    expect(sd2.padId).toBe(0);
    expect(sd2.eosId).toBe(49407);
  });
});

describe('encode', () => {
  it.each(reference.cases.map((c) => [JSON.stringify(c.text), c] as const))('matches openai/CLIP for %s', (_, c) => {
    expect(sd15.encode(c.text)).toEqual(c.ids);
    expect(sd15.encodeWithInfo(c.text)).toEqual({ ids: c.ids, truncated: false, tokenCount: c.ids.length });
  });

  it('pads to 77 with <|endoftext|> for SD 1.x and with "!" for SD 2.x', () => {
    const text = 'a photo of a cat';
    const plain = sd15.encode(text);
    for (const [tok, padId] of [[sd15, 49407], [sd2, 0]] as const) {
      const padded = tok.encode(text, { pad: true });
      expect(padded).toHaveLength(77);
      expect(padded.slice(0, plain.length)).toEqual(plain);
      expect(padded.slice(plain.length)).toEqual(new Array(77 - plain.length).fill(padId));
    }
    expect(sd2.encode(text)).toEqual(plain);
  });

  it('truncates a long prompt to 77 ids with EOS last and says so', () => {
    const phrase = bodyOf(sd15, 'a photo of a cat');
    const repeats = 20;
    const info = sd15.encodeWithInfo('a photo of a cat '.repeat(repeats), { pad: true });
    const allTokens = Array.from({ length: repeats }, () => phrase).flat();
    expect(info.truncated).toBe(true);
    expect(info.tokenCount).toBe(allTokens.length + 2);
    expect(info.ids).toHaveLength(77);
    expect(info.ids).toEqual([49406, ...allTokens.slice(0, 75), 49407]);
  });

  it('does not truncate a prompt of exactly 75 tokens', () => {
    const phrase = bodyOf(sd15, 'a photo of a cat');
    const text = 'a photo of a cat '.repeat(75 / phrase.length);
    const info = sd15.encodeWithInfo(text);
    expect(info.truncated).toBe(false);
    expect(info.tokenCount).toBe(77);
    expect(info.ids.at(-1)).toBe(49407);
    expect(sd15.encodeWithInfo(`${text} cat`).truncated).toBe(true);
  });

  it('unescapes html entities the way CLIP does', () => {
    expect(sd15.encode('fish &amp; chips')).toEqual(sd15.encode('fish & chips'));
    expect(sd15.encode('fish &amp;amp; chips')).toEqual(sd15.encode('fish & chips'));
    expect(sd15.encode('&#233;t&eacute;')).toEqual(sd15.encode('été'));
  });

  it('composes decomposed text first (NFC), as CLIP and Hugging Face do', () => {
    const composed = reference.cases.find((c) => c.text === 'café crème brûlée');
    expect(composed).toBeDefined();
    const decomposed = composed!.text.normalize('NFD');
    expect(decomposed).not.toBe(composed!.text);
    expect(sd15.encode(decomposed)).toEqual(composed!.ids);
    // Hangul typed as separate jamo; ids from transformers 5.17's CLIPTokenizer on these files.
    const hangul = '한국어';
    expect(sd15.encode(hangul.normalize('NFD'))).toEqual([49406, 15197, 250, 31871, 255, 31625, 368, 49407]);
    expect(sd15.encode(hangul)).toEqual([49406, 15197, 250, 31871, 255, 31625, 368, 49407]);
  });

  it('follows model_max_length from tokenizer_config.json', async () => {
    const dir = join(root, 'short', 'tokenizer');
    await mkdir(dir, { recursive: true });
    await copyFile(join(sd15Dir, 'vocab.json'), join(dir, 'vocab.json'));
    await copyFile(join(sd15Dir, 'merges.txt'), join(dir, 'merges.txt'));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ model_max_length: 8, pad_token: '!' }));
    const short = await loadTokenizer(dir);
    expect(short.maxLength).toBe(8);
    const ids = short.encode('a photo of a very surreal dreamscape', { pad: true });
    expect(ids).toEqual([...sd15.encode('a photo of a very surreal dreamscape').slice(0, 7), 49407]);
    expect(short.encode('a cat', { pad: true })).toEqual([49406, ...bodyOf(sd15, 'a cat'), 49407, 0, 0, 0, 0]);
  });
});

describe('prompt length without a model', () => {
  it('never counts more tokens than CLIP makes (openai/CLIP references and a long prompt)', () => {
    for (const c of reference.cases) expect(clipTokensAtLeast(c.text)).toBeLessThanOrEqual(c.ids.length - 2);
    const long = Array.from({ length: 40 }, (_, i) => `a breathtaking, hyperrealistic landscape ${i}`).join(' ');
    expect(clipTokensAtLeast(long)).toBeLessThanOrEqual(sd15.encodeWithInfo(long).tokenCount - 2);
    expect(clipTokensAtLeast('a photo of a cat, 8k')).toBe(8); // a, photo, of, a, cat, ",", 8, k
  });

  it('names each prompt certainly longer than the text encoder reads, as the render warnings do; none that may fit', () => {
    const long = Array.from({ length: 80 }, () => 'cat').join(' ');
    const fits = Array.from({ length: 75 }, () => 'cat').join(' ');
    expect(sd15.encodeWithInfo(fits).truncated).toBe(false);
    expect(promptLengthNotices(['a', long], long)).toEqual([
      'Prompt B is at least 80 CLIP tokens long; the text encoder reads 75, so its end will be cut off: shorten it to keep every word.',
      'The negative prompt is at least 80 CLIP tokens long; the text encoder reads 75, so its end will be cut off: shorten it to keep every word.',
    ]);
    expect(promptLengthNotices([fits, 'b', long], undefined).map((n) => n.split(' is ')[0])).toEqual(['Prompt 3']);
    expect(promptLengthNotices([fits, fits], fits)).toEqual([]);
  });
});

describe('decode', () => {
  it('round-trips a plain lowercase sentence, padded or not', () => {
    const text = 'an astronaut riding a horse on mars in the style of a watercolor painting';
    expect(sd15.decode(sd15.encode(text))).toBe(text);
    expect(sd2.decode(sd2.encode(text, { pad: true }))).toBe(text);
  });

  it('puts a space after every word, punctuation included, as CLIP does', () => {
    expect(sd15.decode(sd15.encode('Mars, at Night!'))).toBe('mars , at night !');
  });

  it('shows what survived truncation', () => {
    const ids = sd15.encode('one two three four five six seven eight nine ten '.repeat(12));
    const kept = sd15.decode(ids);
    expect(kept.startsWith('one two three')).toBe(true);
    expect(sd15.encode(kept)).toEqual(ids);
  });

  it('rejects ids outside the vocabulary', () => {
    expect(() => sd15.decode([49406, 60000, 49407])).toThrow(/60000/);
  });
});

describe('loading errors', () => {
  it('names vocab.json when it is missing', async () => {
    const dir = join(root, 'no-vocab');
    await mkdir(dir, { recursive: true });
    await copyFile(join(sd15Dir, 'merges.txt'), join(dir, 'merges.txt'));
    await expect(loadTokenizer(dir)).rejects.toThrow(/vocab\.json: file not found/);
  });

  it('names merges.txt and the line when a merge is malformed', async () => {
    const dir = join(root, 'bad-merges');
    await mkdir(dir, { recursive: true });
    await copyFile(join(sd15Dir, 'vocab.json'), join(dir, 'vocab.json'));
    await writeFile(join(dir, 'merges.txt'), '#version: 0.2\ni n\nthis line is wrong\n');
    await expect(loadTokenizer(dir)).rejects.toThrow(/merges\.txt: line 3 /);
  });

  it('names vocab.json when it is not JSON', async () => {
    const dir = join(root, 'bad-vocab');
    await mkdir(dir, { recursive: true });
    await copyFile(join(sd15Dir, 'merges.txt'), join(dir, 'merges.txt'));
    await writeFile(join(dir, 'vocab.json'), '{"a": 1,');
    await expect(loadTokenizer(dir)).rejects.toThrow(/vocab\.json: is not valid JSON/);
  });
});
