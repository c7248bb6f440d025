// npm run bench:blend checks its command line as the other CLIs do (apps/cli-kit.ts): one line and
// exit status 2 for a bad one, before any model is built or loaded.
import { describe, expect, it } from 'vitest';
import { runTool } from '../helpers/cli.ts';

const bench = (args: string[]) => runTool('bench/blend.ts', args, { env: { DEBUG: '' }, timeoutMs: 30_000 });

describe('npm run bench:blend command line', () => {
  it.each([
    [['--model', '/nowhere', '--synthetic-unet', 'tiny'], '--model and --synthetic-unet each choose the model: give one of them'],
    [['--branches', 'lots'], '--branches must be a whole number of at least 1, got "lots"'],
    [['--size', 'big'], '--size must be a whole number from 1 to'],
    [['--steps', '1'], '--steps must be a whole number of at least 2, got "1"'],
    [['--repeats', '0'], '--repeats must be a whole number of at least 1'],
    [['--synthetic-unet', 'huge'], '--synthetic-unet must be one of tiny, sd15, got "huge"'],
    [['--ep', 'tpu'], '--ep must be one of cpu, cuda, webgpu'],
  ])('%j is refused with exit status 2 and one line', async (args, message) => {
    const r = await bench(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error: ${message}`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stdout).not.toContain('median');
  }, 40_000);

  it('--help prints the usage; a small run on the demo model measures both orders', async () => {
    const help = await bench(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: npm run bench:blend');
    const run = await bench(['--branches', '3', '--steps', '2', '--repeats', '1']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/sequential median [\d.]+s {2}UNet calls 3/);
    expect(run.stdout).toMatch(/batched {4}median [\d.]+s {2}UNet calls 3/);
  }, 60_000);
});
