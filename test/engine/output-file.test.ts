// engine/output-file.ts writeWhole: a file written for a user (a CLI's picture, a joined movie) reaches its path whole or not at all.
import { readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeWhole } from '../../engine/output-file.ts';
import { useTempDir } from '../helpers/temp-dir.ts';

let dir: string;
useTempDir('blendfarm-write-whole-', (d) => (dir = d));

describe('writeWhole', () => {
  it('a write that fails halfway leaves the file already there and nothing beside it, in one line naming the file (sharp left a partial PNG and printed seven lines)', async () => {
    const out = join(dir, 'picture.png');
    await writeFile(out, 'the earlier picture');
    const error = (await writeWhole(out, async (partial) => {
      expect(partial.endsWith('.png')).toBe(true);
      await writeFile(partial, 'half a pic');
      throw new Error(`${partial}: unable to open for write\nsystem error: No space left on device\nvips2png: unable to write to target`);
    }).catch((e: unknown) => e)) as Error;
    expect(error.message).toBe(`could not write ${out}: ${out}: unable to open for write`);
    expect(await readFile(out, 'utf8')).toBe('the earlier picture');
    expect(readdirSync(dir)).toEqual(['picture.png']);
  });

  it('a write that succeeds replaces the file', async () => {
    const out = join(dir, 'picture.png');
    await writeFile(out, 'the earlier picture');
    await writeWhole(out, (partial) => writeFile(partial, 'the new picture'));
    expect(await readFile(out, 'utf8')).toBe('the new picture');
    expect(readdirSync(dir)).toEqual(['picture.png']);
  });
});
