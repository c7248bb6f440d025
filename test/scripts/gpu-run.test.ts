/**
 * The device script itself (scripts/gpu-run.sh), dry-run on the CPU as its header describes: the
 * bundles built by scripts/gpu-bundle.sh, a stand-in kit (bin/node and env.sh), EP=cpu and the
 * tiny shape with small sizes. It checks the steps' order and hand-over (the fusion check's
 * benchOps become the benchmark's --ops), the result files and the exit code, so that the script
 * a GPU session runs once cannot rot unnoticed. Nothing about speed is asserted.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { useTempDir } from '../helpers/temp-dir.ts';
import { ROOT } from '../helpers/cli.ts';

const run = promisify(execFile);

let dir: string;
useTempDir('gpu-run-', (d) => (dir = d));

let log: string;
let code: number;
beforeAll(async () => {
  await run('bash', ['scripts/gpu-bundle.sh'], { cwd: ROOT, timeout: 240_000 });
  const kit = join(dir, 'kit');
  await mkdir(join(kit, 'bin'), { recursive: true });
  await symlink(process.execPath, join(kit, 'bin', 'node'));
  await writeFile(join(kit, 'env.sh'), `export PATH="${join(kit, 'bin')}:$PATH"\n`);
  const env = {
    ...process.env,
    BLENDKIT: kit,
    EP: 'cpu',
    SHAPE: 'tiny',
    OUT: join(dir, 'out'),
    BENCH_ARGS: `--latent 8 --batches 1,2 --repeats 1 --size 64 --steps 4 --branches 4 --cache ${join(dir, 'cache')}`,
    UPSCALE_ARGS: '--size 64 --tiles 32 --batches 1,2 --repeats 1',
    ORT_OPT_DIR: join(dir, 'tiny-sd-ort'),
    ORT_CHECK_ARGS: '--repeats 1',
    ORT_VS_ARGS: `--batches 1,2 --latent 8 --repeats 1 --work ${join(dir, 'ort-vs-builder')}`,
  };
  try {
    await run('bash', ['scripts/gpu-run.sh'], { cwd: ROOT, env, timeout: 400_000 });
    code = 0;
  } catch (err) {
    code = (err as { code?: number }).code ?? -1;
  }
  log = await readFile(join(dir, 'out', 'run.log'), 'utf8');
}, 600_000);

describe('scripts/gpu-run.sh, dry-run on the CPU', () => {
  it('checks the fused kernels and the gap metric first, then benchmarks with the ops that passed, then the upscaler, then ONNX Runtime\'s optimizer output and its race with the builder', async () => {
    expect(code, log).toBe(0);
    const order = ['== fusion check exit 0', '== benchmarking fused ops: MultiHeadAttention,SkipLayerNormalization,Gelu', '== perceptual metric exit 0', '== bench:gpu exit 0', '== upscale bench exit 0', '== ORT optimizer check', '== ORT optimizer vs builder exit 0'];
    const at = order.map((line) => log.indexOf(line));
    for (const [i, pos] of at.entries()) expect(pos, order[i]).toBeGreaterThanOrEqual(0);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    const check = JSON.parse(await readFile(join(dir, 'out', 'fusion-check.json'), 'utf8'));
    const bench = JSON.parse(await readFile(join(dir, 'out', 'gpu.json'), 'utf8'));
    expect(bench.fused_ops).toEqual(check.benchOps);
    expect(bench.transition.ratio).toBeGreaterThan(0);
    const upscale = JSON.parse(await readFile(join(dir, 'out', 'upscale-gpu.json'), 'utf8'));
    expect(upscale.rows).toHaveLength(2);
    // Step 6: ONNX Runtime's optimizer on the real-format fixture, where this Python has it.
    const python = process.env.PYTHON ?? 'python3';
    if (log.includes('== ORT optimizer check skipped:')) {
      expect(log).toMatch(/== ORT optimizer check skipped: ort-optimize: (\S+ with onnx, onnxruntime and sympy is needed|numpy \S+ is too new)/);
    } else {
      expect(log, `${python} has onnxruntime, so step 6 should have run`).toContain('== ORT optimizer check exit 0');
      const ort = JSON.parse(await readFile(join(dir, 'out', 'ort-optimized.json'), 'utf8'));
      expect(ort.results.every((r: { ok: boolean }) => r.ok)).toBe(true);
      expect(ort.optimizer.components.unet.contrib.MultiHeadAttention).toBeGreaterThan(0);
    }
    const versus = JSON.parse(await readFile(join(dir, 'out', 'ort-vs-builder.json'), 'utf8'));
    expect(versus.rows.map((r: { ok: boolean }) => r.ok)).toEqual([true, true, true]);
    const perceptual = JSON.parse(await readFile(join(dir, 'out', 'perceptual.json'), 'utf8'));
    expect(perceptual.maxRelDiff).toBeLessThanOrEqual(1e-4);
    // gpu.md starts from the committed one and gains (or replaces) this run's section.
    expect(await readFile(join(dir, 'out', 'gpu.md'), 'utf8')).toContain('<!-- bench:gpu cpu tiny begin -->');
  });

  it('keeps within TOTAL_TIMEOUT: with no time left every step is skipped with a line saying so, and the script still ends cleanly', async () => {
    const kit = join(dir, 'kit');
    const env = { ...process.env, BLENDKIT: kit, EP: 'cpu', SHAPE: 'tiny', OUT: join(dir, 'out-late'), TOTAL_TIMEOUT: '8' };
    const { stdout } = await run('bash', ['scripts/gpu-run.sh'], { cwd: ROOT, env, timeout: 60_000 });
    for (const step of ['fusion check', 'perceptual metric', 'bench:gpu', 'upscale bench', 'ORT optimizer check', 'ORT optimizer vs builder']) {
      expect(stdout).toContain(`== ${step} skipped: no time left of TOTAL_TIMEOUT=8 s`);
    }
    expect(stdout).not.toMatch(/== \S.* exit \d+ after/);
  });
});

