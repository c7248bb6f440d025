/**
 * scripts/ort-optimize.sh's command line, as its header documents it: a bad command line is exit 2
 * with a line saying what is wrong and the usage, before (and whatever) the machine's Python has;
 * exit 5 is kept for a Python without the optimizer.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.ts';
import { useTempDir } from '../helpers/temp-dir.ts';

const run = promisify(execFile);
let dir: string;
useTempDir('ort-optimize-args-', (d) => (dir = d));

/** Runs the script with a Python that has nothing (so only the argument checks can pass or fail). */
async function optimize(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('bash', ['scripts/ort-optimize.sh', ...args], { cwd: ROOT, env: { ...process.env, PYTHON: '/bin/false' } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const USAGE = 'usage: bash scripts/ort-optimize.sh [--target cuda|cpu|cpu-fp16] IN OUT [STATS_JSON]';

describe('scripts/ort-optimize.sh arguments', () => {
  it.each([
    [[], 'ort-optimize: give the input folder and the output folder'],
    [['--target'], 'ort-optimize: --target needs a value: cuda, cpu or cpu-fp16'],
    [['--target', 'cpu', 'only-in'], 'ort-optimize: give the input folder and the output folder'],
    [['--target', 'tpu', 'a', 'b'], "ort-optimize: --target takes cuda, cpu or cpu-fp16, got 'tpu'"],
  ])('%j: exit 2, what is wrong and the usage', async (args, message) => {
    const r = await optimize(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain(message);
    expect(r.stdout).toContain(USAGE);
    expect(r.stderr).toBe('');
  });

  it('refuses an input that is not a folder with exit 2 even where Python lacks the optimizer', async () => {
    const r = await optimize(['--target', 'cpu', join(dir, 'missing'), join(dir, 'out')]);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('is not a folder (expected an Optimum export');
  });

  it('with good arguments, says what Python needs (exit 5)', async () => {
    const r = await optimize(['--target', 'cpu', 'test/fixtures/tiny-sd-optimum', join(dir, 'out')]);
    expect(r.code).toBe(5);
    expect(r.stdout).toContain('/bin/false with onnx, onnxruntime and sympy is needed');
  });
});
