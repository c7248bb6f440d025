import { parseArgs } from 'node:util';
import { describe, expect, it } from 'vitest';
import { negativeValuesJoined } from '../../apps/cli-kit.ts';

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
