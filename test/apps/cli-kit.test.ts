import { parseArgs } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isUsageError, negativeValuesJoined, parseCli, runCli } from '../../apps/cli-kit.ts';

const OPTIONS = { grant: { type: 'string' }, note: { type: 'string', short: 'n' }, json: { type: 'boolean' }, steps: { type: 'string', short: 's' } } as const;

describe('negativeValuesJoined', () => {
  it('joins a value starting with "-" to the string flag before it, so parseArgs takes it as the value', () => {
    const argv = ['budget', '--grant', '-450', '-n', '-5 for a test', '-s', '-1', '--json'];
    expect(() => parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })).toThrow(/ambiguous/);
    const joined = negativeValuesJoined(argv, OPTIONS);
    expect(joined).toEqual(['budget', '--grant=-450', '--note=-5 for a test', '--steps=-1', '--json']);
    expect(parseArgs({ args: joined, options: OPTIONS, allowPositionals: true, strict: true }).values).toEqual({ grant: '-450', note: '-5 for a test', steps: '-1', json: true });
  });

  it('leaves flags, boolean flags, inline values and everything after "--" alone', () => {
    expect(negativeValuesJoined(['--grant', '--json'], OPTIONS)).toEqual(['--grant', '--json']);
    expect(negativeValuesJoined(['--json', '-5'], OPTIONS)).toEqual(['--json', '-5']);
    expect(negativeValuesJoined(['--grant=-3', '-5'], OPTIONS)).toEqual(['--grant=-3', '-5']);
    expect(negativeValuesJoined(['--', '--grant', '-5'], OPTIONS)).toEqual(['--', '--grant', '-5']);
    expect(negativeValuesJoined(['--unknown', '-5'], OPTIONS)).toEqual(['--unknown', '-5']);
    expect(negativeValuesJoined(['--grant', '-n'], OPTIONS)).toEqual(['--grant', '-n']);
  });
});

describe('parseCli: the one argument parser of every CLI', () => {
  it('reads a value starting with "-" after a string flag as its value (parseArgs alone refuses it as ambiguous)', () => {
    expect(() => parseArgs({ args: ['x', '--steps', '-1'], options: OPTIONS, allowPositionals: true, strict: true })).toThrow(/ambiguous/);
    expect(parseCli(['x', '--steps', '-1', '-n', '-5', '--json'], OPTIONS)).toEqual({ values: { steps: '-1', note: '-5', json: true }, positionals: ['x'] });
  });

  it('is strict: an unknown flag or a flag without its value is a usage error', () => {
    for (const argv of [['--colour', 'red'], ['--steps']]) {
      let error: unknown;
      try {
        parseCli(argv, OPTIONS);
      } catch (e) {
        error = e;
      }
      expect(isUsageError(error), argv.join(' ')).toBe(true);
    }
  });
});

describe('runCli: a render that runs out of memory says what to change, as the worker does (isOutOfMemory, one rule)', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  });
  const run = async (err: Error, opts?: { outOfMemory?: string }) => {
    const written: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    const code = await runCli(() => Promise.reject(err), opts);
    vi.restoreAllMocks();
    return { code, stderr: written.join('') };
  };

  it('ONNX Runtime\'s allocation failure: pick a smaller --width/--height, with its first line (it was: the raw message alone)', async () => {
    const ort = new Error('Failed to allocate memory for requested buffer of size 4294967296\nstack of the runtime');
    const r = await run(ort);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('\nerror: the render ran out of memory: pick a smaller --width/--height (Failed to allocate memory for requested buffer of size 4294967296)\n');
    expect((await run(new RangeError('Array buffer allocation failed'), { outOfMemory: 'give a smaller picture' })).stderr).toBe(
      '\nerror: the render ran out of memory: give a smaller picture (Array buffer allocation failed)\n',
    );
  });

  it('other errors are shown as they are', async () => {
    expect((await run(new Error('something else'))).stderr).toBe('\nerror: something else\n');
  });
});

describe('runCli: the stack trace only with DEBUG (config/settings.ts `debug`)', () => {
  const saved = process.env.DEBUG;
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
    if (saved === undefined) delete process.env.DEBUG;
    else process.env.DEBUG = saved;
  });
  const traced = async (debug: string | undefined) => {
    if (debug === undefined) delete process.env.DEBUG;
    else process.env.DEBUG = debug;
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});
    const err = new Error('boom');
    await runCli(() => Promise.reject(err));
    return error.mock.calls.some(([first]) => first === err);
  };

  it('set (any value): printed; unset, empty or blank (the settings table\'s unset): not', async () => {
    expect(await traced('1')).toBe(true);
    expect(await traced('0')).toBe(true);
    expect(await traced(undefined)).toBe(false);
    expect(await traced('')).toBe(false);
    expect(await traced('  ')).toBe(false);
  });
});
