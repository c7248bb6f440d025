/**
 * ONNX Runtime's own Stable Diffusion optimizer (scripts/ort-optimize.sh, the command
 * models/README.md gives users) on the real-format fixture, and the check that renders its output
 * through the engine against diffusers (scripts/gpu-ort-optimized.ts), on the CPU. The check
 * always runs (the plain fixture as both folders). The optimizer runs with $PYTHON (else python3);
 * where that lacks onnx, onnxruntime and sympy, or has numpy 2.4 or later, the script says so and
 * those tests are skipped with its reason: scripts/gpu-run.sh runs the same steps on the device.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { useTempDir } from '../helpers/temp-dir.ts';
import { ROOT, runScript } from '../helpers/cli.ts';

const run = promisify(execFile);
const FIXTURE = join(ROOT, 'test/fixtures/tiny-sd-optimum');
const PYTHON = process.env.PYTHON ?? 'python3';

/**
 * Runs scripts/ort-optimize.sh; skips the calling test, with the script's own reason, when this
 * Python lacks the optimizer (exit 5) or has a numpy it fails on (exit 6).
 */
async function optimize(ctx: { skip: (note?: string) => void }, args: string[]): Promise<void> {
  try {
    await run('bash', ['scripts/ort-optimize.sh', ...args], { cwd: ROOT, env: { ...process.env, PYTHON }, timeout: 110_000 });
  } catch (err) {
    const { code, stdout } = err as { code?: number; stdout?: string };
    if (code === 5 || code === 6) return ctx.skip(String(stdout).trim().split('\n').pop());
    throw err;
  }
}

let dir: string;
useTempDir('ort-optimized-', (d) => (dir = d));

async function check(optimized: string, out: string, extra: string[] = []): Promise<{ code: number; report: any }> {
  let code = 0;
  try {
    await runScript('scripts/gpu-ort-optimized.ts', ['--ep', 'cpu', '--optimized', optimized, '--repeats', '1', '--out', out, ...extra]);
  } catch (err) {
    code = (err as { code?: number }).code ?? -1;
  }
  return { code, report: JSON.parse(await readFile(join(out, 'ort-optimized.json'), 'utf8')) };
}

describe('scripts/gpu-ort-optimized.ts', () => {
  it('renders diffusers\' DDIM case from a folder and reports how far each image is from diffusers\'', async () => {
    const { code, report } = await check(FIXTURE, join(dir, 'plain'));
    expect(code).toBe(0);
    expect(report).toMatchObject({ ep: 'cpu', case: 'ddim_64: DDIM 4 steps, guidance 7.5, 64x64' });
    expect(report.results.map((r: { label: string }) => r.label)).toEqual(['plain', 'optimized']);
    for (const r of report.results) {
      expect(r).toMatchObject({ ok: true, unetDtype: 'float32', finite: true });
      expect(r.maxLevels).toBeLessThanOrEqual(2);
      expect(r.latentsRelError).toBeLessThan(1e-3);
    }
    const md = await readFile(join(dir, 'plain', 'ort-optimized.md'), 'utf8');
    expect(md).toMatch(/\| optimized \| float32 \| [0-2] \|/);
  }, 120_000);

  it('fails, saying why, when an image is further from diffusers\' than allowed', async () => {
    // The same export with a wrong VAE scaling factor: its images are far from diffusers'.
    const wrong = join(dir, 'wrong-scale');
    await cp(FIXTURE, wrong, { recursive: true });
    const config = join(wrong, 'vae_decoder', 'config.json');
    await writeFile(config, (await readFile(config, 'utf8')).replace('"scaling_factor": 0.18215', '"scaling_factor": 0.5'));
    const { code, report } = await check(wrong, join(dir, 'wrong-check'));
    expect(code).toBe(1);
    expect(report.results[0].ok).toBe(true);
    expect(report.results[1]).toMatchObject({ label: 'optimized', ok: false });
    expect(report.results[1].error).toMatch(/^image is \d+ levels from diffusers' \(limit 2 for a float32 UNet\)$/);
    expect(await readFile(join(dir, 'wrong-check', 'ort-optimized.md'), 'utf8')).toMatch(/\| optimized \| .* \| failed: image is \d+ levels/);
  }, 120_000);
});

describe(`scripts/ort-optimize.sh (ONNX Runtime's SD optimizer via ${PYTHON}; skipped where it lacks the optimizer)`, () => {
  it('--target cpu: fuses attention and LayerNorm, and the engine renders it as diffusers does', async (ctx) => {
    const opt = join(dir, 'cpu');
    await optimize(ctx, ['--target', 'cpu', FIXTURE, opt, join(dir, 'stats.json')]);
    const stats = JSON.parse(await readFile(join(dir, 'stats.json'), 'utf8'));
    expect(Object.keys(stats.components).sort()).toEqual(['text_encoder', 'unet', 'vae_decoder', 'vae_encoder']);
    // A second run replaces its own earlier output (the stats went elsewhere; the folder is marked).
    await optimize(ctx, ['--target', 'cpu', FIXTURE, opt, join(dir, 'stats.json')]);
    expect(stats.components.unet.contrib.MultiHeadAttention).toBeGreaterThan(0);
    expect(stats.components.unet.contrib.SkipLayerNormalization).toBeGreaterThan(0);
    expect(stats.components.unet.contrib.NhwcConv).toBeUndefined();
    const { code, report } = await check(opt, join(dir, 'cpu-check'), ['--stats', join(dir, 'stats.json')]);
    expect(code, JSON.stringify(report.results)).toBe(0);
    expect(report.results[1]).toMatchObject({ label: 'optimized', ok: true, unetDtype: 'float32' });
    expect(report.results[1].maxLevels).toBeLessThanOrEqual(2);
    expect(await readFile(join(dir, 'cpu-check', 'ort-optimized.md'), 'utf8')).toMatch(/\| unet \| \d+ \| .*MultiHeadAttention \d+/);
  }, 120_000);

  it('--target cpu-fp16: the optimizer\'s fp16 conversion (fp16 inputs, timestep included) renders as diffusers does through the engine', async (ctx) => {
    const opt = join(dir, 'cpu-fp16');
    await optimize(ctx, ['--target', 'cpu-fp16', FIXTURE, opt]);
    const { code, report } = await check(opt, join(dir, 'cpu-fp16-check'));
    expect(code, JSON.stringify(report.results)).toBe(0);
    expect(report.results[1]).toMatchObject({ label: 'optimized', ok: true, unetDtype: 'float16' });
    expect(report.results[1].maxLevels).toBeLessThanOrEqual(2);
  }, 120_000);

  it('--target cuda (the README command, --float16): CUDA-only ops, which a CPU worker refuses with a clear reason', async (ctx) => {
    const opt = join(dir, 'cuda');
    await optimize(ctx, [FIXTURE, opt]);
    const stats = JSON.parse(await readFile(join(opt, 'optimizer-stats.json'), 'utf8'));
    for (const op of ['NhwcConv', 'GroupNorm', 'SkipGroupNorm', 'BiasSplitGelu', 'MultiHeadAttention']) expect(stats.components.unet.contrib[op], op).toBeGreaterThan(0);
    const { code, report } = await check(opt, join(dir, 'cuda-check'));
    expect(code).toBe(1);
    expect(report.results[0].ok).toBe(true);
    expect(report.results[1].error).toMatch(/uses \w+, an operator the cpu provider has no kernel for\. .*--ep cuda/);
  }, 120_000);
});
