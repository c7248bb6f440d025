/**
 * The GPU upscale benchmark (scripts/gpu-upscale.ts), run on the CPU with small sizes so that it
 * cannot rot before a GPU runs it: a real esrgan-slim 4x conversion, every tile/batch row written,
 * and tiles batched give the same frame as tiles one at a time. Nothing about speed is asserted.
 */
import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureSuperResolutionModel } from '../../models/esrgan/catalog.ts';
import { useTempDir } from '../helpers/temp-dir.ts';
import { runScript } from '../helpers/cli.ts';


let dir: string;
useTempDir('gpu-upscale-', (d) => (dir = d));

describe('scripts/gpu-upscale.ts on the CPU', () => {
  it('times every tile side and batch, and batching changes no pixel', async () => {
    const model = await ensureSuperResolutionModel('esrgan-slim', 4);
    const args = ['--ep', 'cpu', '--models', model, '--size', '80', '--tiles', '32,48', '--batches', '1,3', '--repeats', '1', '--out', dir];
    const { stdout } = await runScript('scripts/gpu-upscale.ts', args);
    const report = JSON.parse(await readFile(join(dir, 'upscale-gpu.json'), 'utf8'));
    expect(report).toMatchObject({ ep: 'cpu', frame: '80x80', repeats: 1 });
    expect(report.gpu).toMatch(/^cpu: .+ x\d+$/);
    expect(report.rows.map((r: { tile: number; batch: number }) => [r.tile, r.batch])).toEqual([[32, 1], [32, 3], [48, 1], [48, 3]]);
    for (const row of report.rows) {
      expect(row).toMatchObject({ model: 'esrgan-slim', scale: 4 });
      expect(row.msPerFrame).toBeGreaterThan(0);
      expect(row.outputMegapixelsPerSecond).toBeGreaterThan(0);
      expect(row.maxDiffVsBatch1).toBeLessThanOrEqual(1);
    }
    // Smaller tiles: more of them per frame.
    expect(report.rows[0].tilesPerFrame).toBeGreaterThan(report.rows[2].tilesPerFrame);
    const md = await readFile(join(dir, 'upscale-gpu.md'), 'utf8');
    expect(md).toContain('| esrgan-slim x4 | 48 | 3 |');
    expect(stdout).toContain('max diff vs batch 1');
  }, 120_000);
});
