/**
 * scripts/gpu-check-fusion.ts in fp16 on the CPU (--dtype float16): the precision the device run
 * checks in, for the fusions and CPU stand-ins that have CPU kernels, so an fp16-only fault in the
 * builder shows before a GPU session spends its time on it. (gpu-run.test.ts runs it in fp32.)
 */
import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useTempDir } from '../helpers/temp-dir.ts';
import { runScript } from '../helpers/cli.ts';


let dir: string;
useTempDir('check-fusion-', (d) => (dir = d));

describe('scripts/gpu-check-fusion.ts --dtype float16 on the CPU', () => {
  it('passes every CPU-capable fusion and stand-in in fp16, within the fp16 tolerance', async () => {
    await runScript('scripts/gpu-check-fusion.ts', ['--ep', 'cpu', '--shape', 'tiny', '--dtype', 'float16', '--out', dir]);
    const report = JSON.parse(await readFile(join(dir, 'fusion-check.json'), 'utf8'));
    expect(report).toMatchObject({ ep: 'cpu', dtype: 'float16', tolerance: 1e-2 });
    expect(report.checks.map((c: { model: string; ops: string }) => `${c.model} ${c.ops}`)).toEqual(
      expect.arrayContaining(['unet cpu-safe', 'unet stand-ins', 'vae cpu-safe', 'vae stand-ins']),
    );
    for (const c of report.checks) {
      expect(c.pass, `${c.model} ${c.ops}: ${c.error ?? c.rel}`).toBe(true);
      expect(c.rel).toBeLessThan(1e-2);
    }
    expect(report.benchOps).toEqual(['MultiHeadAttention', 'SkipLayerNormalization', 'Gelu']);
  }, 120_000);
});
