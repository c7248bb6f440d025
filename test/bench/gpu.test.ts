/**
 * The GPU benchmark's one command, run as CI runs it: tiny shape, CPU provider, into a temporary
 * folder. It checks the report's schema and that both transition orders rendered the same
 * transition; it asserts nothing about speed.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FUSED_OPS } from '../../models/synthetic-unet.ts';
import { runScript } from '../helpers/cli.ts';
import { useTempDir } from '../helpers/temp-dir.ts';

const BATCHES = ['1', '2', '4'];

let dir: string;
let stdout: string;
useTempDir('bench-gpu-', (d) => (dir = d));
beforeAll(async () => {
  const args = ['--ep', 'cpu', '--shape', 'tiny', '--out', join(dir, 'out'), '--cache', join(dir, 'cache')];
  // Small sizes keep CI fast; the full tiny preset is `npm run bench:gpu -- --ep cpu --shape tiny`.
  const small = ['--latent', '8', '--batches', BATCHES.join(','), '--repeats', '1', '--size', '64', '--steps', '6', '--branches', '5'];
  ({ stdout } = await runScript('bench/gpu.ts', [...args, ...small]));
});

describe('npm run bench:gpu on the CPU (tiny shape)', () => {
  it('writes gpu.json in the schema the issue fixes', async () => {
    const json = JSON.parse(await readFile(join(dir, 'out', 'gpu.json'), 'utf8'));
    // The keys, and which contrib ops the fused graphs used (the CPU's full set here).
    expect(Object.keys(json).sort()).toEqual(['date', 'fused_ops', 'gpu', 'peak_gpu_mib', 'transition', 'unet_ms', 'vae_decode_ms']);
    expect(json.fused_ops).toEqual([...FUSED_OPS['cpu-safe']]);
    expect(json.gpu).toMatch(/^cpu: /);
    expect(new Date(json.date).toISOString()).toBe(json.date);
    expect(Object.keys(json.unet_ms).sort()).toEqual(['fused', 'plain']);
    for (const variant of ['plain', 'fused']) {
      expect(Object.keys(json.unet_ms[variant])).toEqual(BATCHES);
      for (const ms of Object.values(json.unet_ms[variant])) expect(ms).toBeGreaterThan(0);
    }
    expect(json.vae_decode_ms).toBeGreaterThan(0);
    expect(Object.keys(json.transition).sort()).toEqual(['batched_s', 'ratio', 'sequential_s']);
    const { sequential_s, batched_s, ratio } = json.transition;
    expect(sequential_s).toBeGreaterThan(0);
    expect(batched_s).toBeGreaterThan(0);
    // The file rounds each figure to 3 decimals, so the ratio of the rounded times may differ from
    // the rounded ratio by what rounding each time can move it.
    const slack = (sequential_s / batched_s) * (0.0005 / sequential_s + 0.0005 / batched_s) * 1.01 + 0.0005;
    expect(Math.abs(ratio - sequential_s / batched_s)).toBeLessThanOrEqual(slack);
    expect(json.peak_gpu_mib).toBeNull();
    expect(stdout).toContain(JSON.stringify(json));
  });

  it('renders the same transition in both orders, batched in no more UNet calls, and reports it in gpu.md', async () => {
    const md = await readFile(join(dir, 'out', 'gpu.md'), 'utf8');
    expect(md).toContain('<!-- bench:gpu cpu tiny begin -->');
    const row = (order: string) => {
      const m = md.match(new RegExp(`^\\| ${order} \\| ([\\d.]+) s \\| (\\d+) \\| (\\d+) \\| ([^|]+) \\| ([\\d.]+) s \\| ([\\d.]+) s \\| (-?[\\d.]+) s \\| ([\\d.]+) s \\((\\d+) pairs\\) \\|$`, 'm'));
      expect(m, `${order} row in gpu.md`).not.toBeNull();
      const [wall, unet, vae, rest, gaps, pairs] = [m![1], m![5], m![6], m![7], m![8], m![9]].map(Number);
      // The split adds up to the wall time (each figure rounded to 0.01 s), and the models took some of it.
      expect(Math.abs(unet + vae + rest - wall)).toBeLessThanOrEqual(0.03);
      expect(unet).toBeGreaterThan(0);
      // Gap measuring is part of "everything else": one pair per branch boundary at least.
      expect(gaps).toBeLessThanOrEqual(rest + 0.01);
      expect(pairs).toBeGreaterThanOrEqual(4);
      return { frames: Number(m![2]), calls: Number(m![3]), stages: m![4].trim() };
    };
    const seq = row('sequential');
    const bat = row('batched');
    expect(seq.frames).toBe(5);
    expect(bat.frames).toBe(seq.frames);
    expect(bat.stages).toBe(seq.stages);
    expect(bat.calls).toBeLessThanOrEqual(seq.calls);
    // The UNet's runs by batch: the calls add up to the table's, one branch at a time is batch 2
    // (a guided item; the two keyframes run together in both orders), and both orders denoise the
    // same items, batched in fewer, larger calls.
    const byBatch = (order: string) => {
      const line = md.match(new RegExp(`^UNet runs by batch, ${order}: (.+)\\.$`, 'm'));
      expect(line, `${order} runs-by-batch line in gpu.md`).not.toBeNull();
      return line![1].split('; ').map((part) => {
        const m = part.match(/^batch (\d+): (\d+) calls, ([\d.]+) ms each$/);
        expect(m, part).not.toBeNull();
        return { batch: Number(m![1]), calls: Number(m![2]), ms: Number(m![3]) };
      });
    };
    const items = (runs: Array<{ batch: number; calls: number }>) => runs.reduce((n, r) => n + r.batch * r.calls, 0);
    const seqRuns = byBatch('sequential');
    const batRuns = byBatch('batched');
    expect(seqRuns.map((r) => r.batch)).toEqual([2, 4]);
    expect(seqRuns.reduce((n, r) => n + r.calls, 0)).toBe(seq.calls);
    expect(batRuns.reduce((n, r) => n + r.calls, 0)).toBe(bat.calls);
    expect(items(batRuns)).toBe(items(seqRuns));
    // Fused and plain graphs agree (relative difference column).
    for (const b of BATCHES) expect(md).toMatch(new RegExp(`^\\| ${b} \\| [\\d.]+ \\| [\\d.]+ \\| [\\d.]+x \\| \\d\\.\\de-([5-9]|\\d\\d) \\|$`, 'm'));
  });

  it('runs its fp16 paths too, as the sd15 shape does on a GPU (tiny-fp16 on the CPU): fused agrees with plain, both orders render', async () => {
    const out = join(dir, 'out-fp16');
    const args = ['--ep', 'cpu', '--shape', 'tiny-fp16', '--out', out, '--cache', join(dir, 'cache')];
    await runScript('bench/gpu.ts', args);
    const json = JSON.parse(await readFile(join(out, 'gpu.json'), 'utf8'));
    for (const variant of ['plain', 'fused']) for (const ms of Object.values(json.unet_ms[variant])) expect(ms).toBeGreaterThan(0);
    expect(json.transition.ratio).toBeGreaterThan(0);
    const md = await readFile(join(out, 'gpu.md'), 'utf8');
    expect(md).toContain('<!-- bench:gpu cpu tiny-fp16 begin -->');
    expect(md).toMatch(/UNet: [\d.]+M parameters, float16,/);
    expect(md).toMatch(/VAE decoder \([\d.]+M parameters, float16\)/);
    // fp16 rounding, not a wrong graph: fused vs plain within fp16 tolerance at every batch.
    for (const b of ['1', '2']) {
      const m = md.match(new RegExp(`^\\| ${b} \\| [\\d.]+ \\| [\\d.]+ \\| [\\d.]+x \\| ([\\d.]+e-\\d+) \\|$`, 'm'));
      expect(m, `batch ${b} row`).not.toBeNull();
      expect(Number(m![1])).toBeLessThan(1e-2);
    }
  }, 120_000);
});

