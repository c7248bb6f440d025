// engine/output-file.ts writeWhole: a file written for a user (a CLI's picture, a joined movie) reaches its path whole or not at all.
import { execFile } from 'node:child_process';
import { readdirSync, symlinkSync } from 'node:fs';
import { promisify } from 'node:util';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeWhole } from '../../engine/output-file.ts';
import { ROOT, TSX } from '../helpers/cli.ts';
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

describe('a file being written when the process exits', () => {
  it('is removed: process.exit (a second Ctrl-C) during an encode leaves nothing beside --out (a whole hidden video was left)', async () => {
    const here = await mkdtemp(join(dir, 'exit-'));
    const out = join(here, 'stopped.mp4');
    // A child encoding an endless clip to `out`, which exits 130 half a second in.
    const script = `
      import { encodeVideo } from ${JSON.stringify(join(ROOT, 'engine/index.ts'))};
      async function* endless() { for (let i = 0; ; i++) { yield { data: new Uint8Array(32 * 32 * 3).fill(i % 256), width: 32, height: 32, channels: 3 }; await new Promise((r) => setTimeout(r, 5)); } }
      setTimeout(() => process.exit(130), 500);
      await encodeVideo(endless(), { format: 'mp4', fps: 12, width: 32, height: 32, out: ${JSON.stringify(out)} });
    `;
    const code = await promisify(execFile)(process.execPath, ['--import', TSX, '--input-type=module', '-e', script], { cwd: here }).then(
      () => 0,
      (e: { code?: number }) => e.code,
    );
    expect(code).toBe(130);
    expect(readdirSync(here)).toEqual([]);
  });
});

describe('a path that is no file', () => {
  it('is refused, not replaced: a symbolic link stays a link (the rename replaced the link itself)', async () => {
    const here = await mkdtemp(join(dir, 'link-'));
    const target = join(here, 'real.png');
    await writeFile(target, 'the linked picture');
    const link = join(here, 'link.png');
    symlinkSync(target, link);
    await expect(writeWhole(link, (partial) => writeFile(partial, 'new'))).rejects.toThrow(`${link} is a symbolic link, not a file; give the path of a file to write (a new one, or a file to replace)`);
    expect(await readFile(target, 'utf8')).toBe('the linked picture');
    expect(readdirSync(here).sort()).toEqual(['link.png', 'real.png']);
  });
});
