// Every benchmark and `npm run models` answers --help (and -h) with its usage, exit 0, without
// building or measuring anything, and refuses an unknown option or a bad value with one `error:`
// line and exit status 2, no stack trace (README.md: "Every command prints `--help`"). Before,
// --help was an unknown option (a stack trace, or for bench:queue an error) and `npm run models --
// --help` built the models.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEMO_MODEL_DIR, TEST_MODELS_DIR } from '../../models/paths.ts';
import { runTool } from '../helpers/cli.ts';
import { useTempDir } from '../helpers/temp-dir.ts';

/** script, the command its usage names, and one bad value it refuses. */
const COMMANDS: [script: string, usage: string, bad: string[], message: string][] = [
  ['bench/queue.ts', 'npm run bench:queue', ['--users', 'many'], '--users must be a whole number'],
  ['bench/unet.ts', 'npm run bench:unet', ['--shape', 'huge'], '--shape must be one of tiny, sd15, sd15-fp32, got "huge"'],
  ['bench/gpu.ts', 'npm run bench:gpu', ['--latent', 'big'], '--latent must be a whole number of at least 1, got "big"'],
  ['bench/upscale.ts', 'npm run bench:upscale', ['--scales', '5'], '--scales must be one of 2, 3, 4, 8, got "5"'],
  ['bench/perceptual.ts', 'npx tsx bench/perceptual.ts', ['--ep', 'tpu'], '--ep must be one of cpu, cuda, got "tpu"'],
  ['bench/bot-ack.ts', 'npx tsx bench/bot-ack.ts', ['--db', 'mysql'], '--db must be one of pglite, postgres, got "mysql"'],
  ['models/build-test-models.ts', 'npm run models', ['rebuild'], 'Unexpected argument'],
];

const run = (script: string, args: string[], cwd?: string) => runTool(script, args, { cwd, env: { DEBUG: '' }, timeoutMs: 60_000 });

/** Every file and folder under `dirs` with its modification time. */
function mtimes(...dirs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  const walk = (path: string) => {
    const s = statSync(path, { throwIfNoEntry: false });
    if (!s) return;
    out[path] = s.mtimeMs;
    if (s.isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
  };
  for (const dir of dirs) walk(dir);
  return out;
}

/** Asserts the one-line refusal: exit 2, one `error:` line, no stack trace, nothing on stdout. */
function expectRefused(r: { code: number | null; stdout: string; stderr: string }, message: string): void {
  expect(r.code, r.stderr).toBe(2);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('npm warn'));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toContain(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stdout).toBe('');
}

describe('benchmark and model-building command lines', () => {
  // The commands run here, so anything they wrote relative to where they run would show.
  let cwd = '';
  useTempDir('blendfarm-bench-help-', (dir) => (cwd = dir));

  it.each(COMMANDS)('%s: --help prints the usage without doing any work; a bad command line is one error line, exit 2', async (script, usage, bad, message) => {
    const models = mtimes(DEMO_MODEL_DIR, TEST_MODELS_DIR);
    for (const flag of ['--help', '-h']) {
      const r = await run(script, [flag], cwd);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.startsWith(`Usage: ${usage}`)).toBe(true);
      // Its defaults (a benchmark) or where the models go (npm run models).
      expect(r.stdout).toContain(script.startsWith('bench/') ? '(default' : DEMO_MODEL_DIR);
      expect(r.stderr).toBe('');
    }
    // Nothing built, nothing written where it ran, no model folder touched.
    expect(readdirSync(cwd)).toEqual([]);
    expect(mtimes(DEMO_MODEL_DIR, TEST_MODELS_DIR)).toEqual(models);

    expectRefused(await run(script, ['--no-such-option'], cwd), "Unknown option '--no-such-option'");
    expectRefused(await run(script, bad, cwd), message);
    expect(readdirSync(cwd)).toEqual([]);
  }, 120_000);
});
