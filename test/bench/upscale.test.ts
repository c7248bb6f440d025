/**
 * The upscale benchmark's documented command (npm run bench:upscale, bench/README.md) with small
 * numbers: on a fresh clone it measures the CC0 photos in the repository (test/fixtures/photos), as
 * bench/results/upscale.md was; a folder that is not there is one line and exit 1. Nothing about speed.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runTool } from '../helpers/cli.ts';

const bench = (args: string[]) => runTool('bench/upscale.ts', args);

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
