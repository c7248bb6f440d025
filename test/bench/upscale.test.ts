/**
 * The upscale benchmark's documented command (npm run bench:upscale, bench/README.md) with small
 * numbers: on a fresh clone it measures the CC0 photos in the repository (test/fixtures/photos), as
 * bench/results/upscale.md was; a folder that is not there is one line and exit 1. Nothing about speed.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ROOT, TSX } from '../helpers/cli.ts';

const run = promisify(execFile);

async function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', TSX, join(ROOT, 'bench/upscale.ts'), ...args], { cwd: ROOT, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('npm run bench:upscale', () => {
  it('measures the photos in the repository by default', async () => {
    const r = await bench(['--size', '32', '--scales', '2', '--models', 'esrgan-slim']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('photos: chelsea.png, coffee.png in test/fixtures/photos');
    for (const photo of ['chelsea.png', 'coffee.png']) expect(r.stdout).toMatch(new RegExp(`^\\| ${photo} \\| 2x \\| esrgan-slim \\| [\\d.]+ \\|`, 'm'));
  });

  it('says in one line when --photos is not a folder', async () => {
    const r = await bench(['--photos', join(ROOT, 'no-such-photos'), '--size', '32', '--scales', '2', '--models', 'esrgan-slim']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error: --photos ${join(ROOT, 'no-such-photos')}: no such folder; give a folder of PNG, JPEG or WebP photographs`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
