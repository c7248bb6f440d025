/**
 * scripts/gpu-ort-vs-builder.ts on the CPU with the tiny shape: ONNX Runtime's own SD optimizer
 * and the project's fused builder on the same synthetic UNet, timed and checked against the plain
 * graph, so the script cannot rot before a GPU runs it. The optimizer's row needs a Python with it
 * ($PYTHON, else python3); without one the row says it was skipped and the builder's rows still
 * run. Nothing about speed is asserted.
 */
import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useTempDir } from '../helpers/temp-dir.ts';
import { runScript } from '../helpers/cli.ts';


let dir: string;
useTempDir('ort-vs-builder-', (d) => (dir = d));

describe('scripts/gpu-ort-vs-builder.ts on the CPU', () => {
  it('times the plain graph, the builder\'s fused one and the optimizer\'s, and checks each against the plain output', async () => {
    const args = ['--ep', 'cpu', '--shape', 'tiny', '--batches', '1,2', '--latent', '8', '--repeats', '1', '--out', dir, '--work', join(dir, 'work')];
    await runScript('scripts/gpu-ort-vs-builder.ts', args);
    const report = JSON.parse(await readFile(join(dir, 'ort-vs-builder.json'), 'utf8'));
    expect(report).toMatchObject({ ep: 'cpu', dtype: 'float32', shape: 'tiny', batches: [1, 2], tolerance: 1e-4 });
    const [plain, builder, optimizer] = report.rows;
    expect(plain).toMatchObject({ graph: 'plain (float32)', ok: true, contrib: {} });
    expect(builder).toMatchObject({ graph: "project builder, 'cpu-safe' fusion", ok: true, contrib: { MultiHeadAttention: 8, SkipLayerNormalization: 8, Gelu: 4 } });
    expect(builder.nodes).toBeLessThan(plain.nodes);
    expect(builder.relVsPlain).toBeLessThan(1e-4);
    for (const row of [plain, builder]) for (const b of ['1', '2']) expect(row.ms[b]).toBeGreaterThan(0);
    if (report.ortOptimizer === null) {
      expect(optimizer).toMatchObject({ graph: "ONNX Runtime's optimizer", ok: true });
      expect(optimizer.note).toMatch(/^skipped: ort-optimize: /);
    } else {
      expect(optimizer.graph).toBe(`ONNX Runtime ${report.ortOptimizer} optimizer, --target cpu`);
      expect(optimizer.ok).toBe(true);
      expect(optimizer.relVsPlain).toBeLessThan(1e-4);
      expect(optimizer.contrib.SkipLayerNormalization).toBeGreaterThan(0);
    }
    const md = await readFile(join(dir, 'ort-vs-builder.md'), 'utf8');
    expect(md).toMatch(/^\| project builder, 'cpu-safe' fusion \| \d+ \| MultiHeadAttention 8, SkipLayerNormalization 8, Gelu 4 \| [\d.]+ \| [\d.]+ \| [\d.e-]+ \| ok \|$/m);
  }, 120_000);

  it('fp16 as on a GPU: every graph is judged against the plain fp32 one, within the fp16 limit', async () => {
    const out = join(dir, 'fp16');
    const args = ['--ep', 'cpu', '--dtype', 'float16', '--shape', 'tiny', '--batches', '2', '--latent', '8', '--repeats', '1', '--out', out, '--work', join(dir, 'work16')];
    await runScript('scripts/gpu-ort-vs-builder.ts', args);
    const report = JSON.parse(await readFile(join(out, 'ort-vs-builder.json'), 'utf8'));
    expect(report.dtype).toBe('float16');
    const [reference, plain16, builder] = report.rows;
    expect([reference.graph, plain16.graph, builder.graph]).toEqual(['plain (float32)', 'plain (float16)', "project builder, 'cpu-safe' fusion"]);
    // fp16 rounding shows, and sets the limit (at least 1e-2).
    expect(plain16.relVsPlain).toBeGreaterThan(0);
    expect(report.tolerance).toBe(Math.max(1e-2, 2 * plain16.relVsPlain));
    expect(builder).toMatchObject({ ok: true });
    expect(builder.relVsPlain).toBeLessThan(report.tolerance);
  }, 120_000);
});

