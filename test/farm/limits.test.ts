// The limits table (farm/limits.ts): every limit is enforced by parseJobParams, at both ends, with
// a message naming the field, the range and the value; and each narrows what the engine accepts.
import { describe, expect, it } from 'vitest';
import { MAX_BRANCHES, MAX_MOVIE_PROMPTS, MAX_SEED, MIN_MOVIE_PROMPTS, VIDEO_FORMATS } from '../../engine/index.ts';
import { JobParamsError, parseJobParams } from '../../farm/job-params.ts';
import { JOB_VIDEO_FORMATS, LIMITS, type Range } from '../../farm/limits.ts';

function issuesOf(input: Record<string, unknown>, kind: Parameters<typeof parseJobParams>[0] = 'blend'): string[] {
  try {
    parseJobParams(kind, { prompts: ['a', 'b'], ...input });
  } catch (error) {
    if (error instanceof JobParamsError) return error.issues;
    throw error;
  }
  return [];
}

/** The parameters each numeric limit applies to, with how to put a value into the input. */
const NUMERIC: Array<[keyof typeof LIMITS, string, (v: number) => Record<string, unknown>]> = [
  ['durationSeconds', 'durationSeconds', (v) => ({ durationSeconds: v })],
  ['fps', 'fps', (v) => ({ fps: v })],
  ['side', 'width', (v) => ({ width: v })],
  ['side', 'height', (v) => ({ height: v })],
  ['steps', 'steps', (v) => ({ steps: v })],
  ['maxBranches', 'maxBranches', (v) => ({ maxBranches: v })],
  ['depthStrength', 'depthStrength', (v) => ({ depthStrength: v })],
  ['guidance', 'guidance', (v) => ({ guidance: v })],
  ['maxBytes', 'maxBytes', (v) => ({ maxBytes: v })],
  ['seed', 'seed 1', (v) => ({ seeds: [v, 1] })],
];

const kindOf = (range: Range) => `${range.integer ? 'an integer' : 'a number'}${range.multipleOf ? ` that is a multiple of ${range.multipleOf}` : ''}`;

describe('the limits table', () => {
  it.each(NUMERIC)('enforces %s on %s at both ends, naming the field, the range and the value', (limit, field, input) => {
    const range: Range = LIMITS[limit];
    expect(issuesOf(input(range.min))).toEqual([]);
    expect(issuesOf(input(range.max))).toEqual([]);
    const step = range.integer ? (range.multipleOf ?? 1) : 0.01;
    for (const outside of [range.min - step, range.max + step]) {
      const value = Math.round(outside * 100) / 100;
      expect(issuesOf(input(value))).toEqual([`${field} must be ${kindOf(range)} between ${range.min} and ${range.max} (got ${value})`]);
    }
    if (range.integer) expect(issuesOf(input(range.min + 0.5))[0]).toMatch(new RegExp(`^${field} must be an integer`));
  });

  it('refuses the values the issue named: depth 0.97, one branch, a 53-bit seed', () => {
    expect(issuesOf({ depthStrength: 0.97 })).toEqual(['depthStrength must be a number between 0.05 and 0.95 (got 0.97)']);
    expect(issuesOf({ maxBranches: 1 })).toEqual(['maxBranches must be an integer between 2 and 256 (got 1)']);
    expect(issuesOf({ seeds: [2 ** 40, 1] })).toEqual([`seed 1 must be an integer between 0 and ${0xffffffff} (got ${2 ** 40})`]);
    expect(issuesOf({ durationSeconds: 0.5 })).toEqual(['durationSeconds must be a number between 1 and 30 (got 0.5)']);
  });

  it('refuses one denoising step at submission: latent blending needs two, so it would fail only on a worker', () => {
    expect(issuesOf({ steps: 1 })).toEqual(['steps must be an integer between 2 and 150 (got 1)']);
    expect(issuesOf({ steps: 2 })).toEqual([]);
  });

  it('checks prompt text once: not empty, at most promptLength characters, the negative prompt may be empty', () => {
    const { max } = LIMITS.promptLength;
    expect(issuesOf({ prompts: ['a', 'x'.repeat(max)], negativePrompt: '' })).toEqual([]);
    expect(issuesOf({ prompts: ['   ', 'x'.repeat(max + 1)], negativePrompt: 'y'.repeat(max + 1) })).toEqual([
      'prompt 1 must not be empty',
      `prompt 2 must be at most ${max} characters (got ${max + 1})`,
      `negativePrompt must be at most ${max} characters (got ${max + 1})`,
    ]);
  });

  it('enforces the prompt count per kind from LIMITS.prompts', () => {
    const { min, max } = LIMITS.prompts;
    const prompts = (n: number) => ({ prompts: Array.from({ length: n }, (_, i) => `p${i}`) });
    expect(issuesOf(prompts(max), 'movie')).toEqual([]);
    expect(issuesOf(prompts(max + 1), 'movie')).toEqual([`a movie needs ${min} to ${max} prompts (got ${max + 1})`]);
    expect(issuesOf(prompts(min - 1), 'reroll')).toEqual([`a reroll needs ${min} to ${max} prompts (got ${min - 1})`]);
    expect(issuesOf(prompts(3), 'blend')).toEqual(['a blend needs exactly 2 prompts (got 3)']);
    // An extension lists its new prompts only: at least one, and room for the movie it continues.
    expect(issuesOf(prompts(1), 'extend')).toEqual([]);
    expect(issuesOf(prompts(0), 'extend')).toEqual([`an extension needs 1 to ${max - min} new prompts (got 0)`]);
    expect(issuesOf(prompts(max - min + 1), 'extend')).toEqual([`an extension needs 1 to ${max - min} new prompts (got ${max - min + 1})`]);
  });

  it('offers a subset of the engine formats', () => {
    expect(issuesOf({ format: 'avi' })).toEqual([`format must be one of ${JOB_VIDEO_FORMATS.join(', ')} (got "avi")`]);
    for (const format of JOB_VIDEO_FORMATS) expect(issuesOf({ format })).toEqual([]);
  });

  it('narrows what the engine accepts, never widens it', () => {
    expect(LIMITS.seed.max).toBe(MAX_SEED);
    expect(MAX_SEED).toBe(0xffffffff);
    expect(LIMITS.seed.min).toBe(0);
    expect(LIMITS.prompts.min).toBeGreaterThanOrEqual(MIN_MOVIE_PROMPTS);
    expect(LIMITS.prompts.max).toBeLessThanOrEqual(MAX_MOVIE_PROMPTS);
    for (const format of JOB_VIDEO_FORMATS) expect(VIDEO_FORMATS).toContain(format);
    // The engine renders branch budgets of 2 to MAX_BRANCHES and splits between 0.05 and 0.95 of the schedule.
    expect(LIMITS.maxBranches.min).toBeGreaterThanOrEqual(2);
    expect(LIMITS.maxBranches.max).toBeLessThanOrEqual(MAX_BRANCHES);
    for (const range of Object.values(LIMITS) as Range[]) expect(range.min).toBeLessThan(range.max);
  });
});
