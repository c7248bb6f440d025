// Issue 9, items 11 and 12: text Postgres cannot store and lax number/choice parsing are refused
// where input enters (the one validator, the operator CLI, the farm API), with a message that
// names the field, and nothing is stored — on real Postgres and PGlite.
import { describe, expect, it } from 'vitest';
import { farmCli } from '../../apps/farm-cli/main.ts';
import { choiceOption, numberOption, UsageError } from '../../apps/cli-kit.ts';
import type { FarmDb } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { FarmError, JobNotFoundError } from '../../farm/errors.ts';
import { parseJobId } from '../../farm/ids.ts';
import { JobParamsError, parseJobParams, QUALITY_PRESETS } from '../../farm/job-params.ts';
import { cancelJob, getArtifact, getJob, retryJob, submitJob } from '../../farm/jobs.ts';
import { grantBudget } from '../../farm/policy/budget.ts';
import { failAttempt, claimJob } from '../../farm/queue.ts';
import { queuePosition } from '../../farm/status.ts';
import { BACKENDS, CHEAP_BLEND, countRows, GENEROUS_BUDGET } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';
import { issuesOf } from '../helpers/job-params.ts';

describe('strict parsing of job parameters (item 12)', () => {
  it('reads own keys only: "__proto__" is neither a quality nor a way in', () => {
    expect(issuesOf(() => parseJobParams('blend', { prompts: ['a', 'b'], quality: '__proto__' }))).toEqual([
      'quality must be one of draft, standard, high, max (got "__proto__")',
    ]);
    expect(issuesOf(() => parseJobParams('blend', { prompts: ['a', 'b'], quality: 'toString' }))[0]).toMatch(/^quality must be one of/);
    // A "__proto__" key as JSON.parse makes it (an own key) is an unknown parameter.
    expect(issuesOf(() => parseJobParams('blend', JSON.parse('{"prompts":["a","b"],"__proto__":{"steps":1000}}')))).toEqual(['unknown parameter "__proto__"']);
    // Values inherited from a prototype are not read.
    const sneaky = Object.create({ steps: 1000, width: 3 });
    sneaky.prompts = ['a', 'b'];
    expect(issuesOf(() => parseJobParams('blend', sneaky))).toEqual(['parameters must be a plain object']);
  });

  it('refuses seeds past the 32-bit range instead of wrapping them', () => {
    expect(issuesOf(() => parseJobParams('blend', { prompts: ['a', 'b'], seeds: [2 ** 53, 1] }))).toEqual([
      `seed 1 must be an integer between 0 and ${0xffffffff} (got ${2 ** 53})`,
    ]);
    expect(issuesOf(() => parseJobParams('blend', { prompts: ['a', 'b'], seeds: [2 ** 32, 1] }))[0]).toMatch(/^seed 1 must be an integer/);
  });
});

describe('strict command-line numbers and choices (item 12)', () => {
  it('takes plain decimal digits only', () => {
    expect(numberOption('steps', '16', { integer: true })).toBe(16);
    expect(numberOption('depth', '0.5')).toBe(0.5);
    for (const raw of ['0x10', '1e1', ' 16', '16 ', '+16', '0b10', 'Infinity', '', '1_000', '16.0']) {
      expect(() => numberOption('steps', raw, { integer: true }), raw).toThrow(UsageError);
    }
    expect(() => numberOption('steps', '0x10', { integer: true })).toThrow('--steps must be a whole number (plain decimal digits), got "0x10"');
    // Past 2^53 a double cannot hold the integer: refused rather than rounded.
    expect(() => numberOption('seed', '9007199254740993', { integer: true })).toThrow(UsageError);
  });

  it('takes own choices only', () => {
    expect(choiceOption('quality', 'draft', QUALITY_PRESETS)).toBe('draft');
    expect(() => choiceOption('quality', '__proto__', QUALITY_PRESETS)).toThrow('--quality must be one of draft, standard, high, max, got "__proto__"');
    expect(() => choiceOption('quality', 'constructor', QUALITY_PRESETS)).toThrow(UsageError);
  });

  it('reads job ids as decimal integers a job id can be', () => {
    expect(parseJobId('42')).toBe(42);
    for (const raw of ['99999999999999999999', '0', '-1', '0x10', '1e3', '4.0', ' 4', '9007199254740992']) expect(parseJobId(raw), raw).toBeUndefined();
  });
});

describe.each(BACKENDS)('input hardening on %s (items 11, 12)', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;

  async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const env = { BLENDFARM_REFILL_GPU_SECONDS: '1000', BLENDFARM_MAX_ACTIVE_JOBS: '50' };
    const code = await farmCli(argv, { db, env, stdout: (t) => out.push(t), stderr: (t) => err.push(t) });
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  }

  useTestFarm(backend, { budget: GENEROUS_BUDGET }, (t) => ({ db, farm } = t));

  it('refuses NUL characters and lone surrogates in prompts, storing nothing (item 11)', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...CHEAP_BLEND, prompts: ['a red\u0000 fox', 'b'] }, /^prompt 1 contains a NUL character \(U\+0000\) at position 6; remove it/],
      [{ ...CHEAP_BLEND, prompts: ['a', 'broken \uD83D here'] }, /^prompt 2 contains a broken character \(a lone UTF-16 surrogate, U\+D83D\) at position 8/],
      [{ ...CHEAP_BLEND, prompts: ['a', 'b'], negativePrompt: '\uDC00' }, /^negativePrompt contains a broken character/],
    ];
    for (const [params, message] of cases) {
      const error = await submitJob(farm, { kind: 'blend', userId: 'nul-user', params }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(JobParamsError);
      expect((error as JobParamsError).issues).toHaveLength(1);
      expect((error as JobParamsError).issues[0]).toMatch(message);
    }
    // A valid pair (an emoji) is fine.
    const ok = await submitJob(farm, { kind: 'blend', userId: 'nul-user', params: { ...CHEAP_BLEND, prompts: ['a fox 🦊', 'b'] } });
    expect((await getJob(farm, ok.id))?.params.prompts[0]).toBe('a fox 🦊');
    expect(await countRows(db, 'jobs')).toBe(1);

    // Through the CLI: exit 1 with the reason, not "Something went wrong".
    const viaCli = await cli('submit', 'blend', 'x\u0000y', 'b', '--user', 'nul-user', '--json');
    expect(viaCli.code).toBe(1);
    expect(JSON.parse(viaCli.stdout).error).toMatchObject({ code: 'invalid_params', issues: [expect.stringMatching(/^prompt 1 contains a NUL character/)] });
    expect(await countRows(db, 'jobs')).toBe(1);

    // Operator notes on grants follow the same rule; a renderer's error text is cleaned instead.
    await expect(grantBudget(farm, 'nul-user', 5, 'bad\u0000note')).rejects.toThrow(/The note contains a NUL character/);
    const before = await countRows(db, 'budget_ledger');
    const claimed = await claimJob(farm, 'w-nul', { models: ['*'], maxPixels: 1 << 30, executionProvider: 'test' });
    expect(claimed?.id).toBe(ok.id);
    expect(await failAttempt(farm, claimed!, 'engine said \u0000 and \uD800', { permanent: true })).toBe('failed');
    expect((await getJob(farm, ok.id))?.error).toBe('engine said  and \uFFFD');
    expect(await countRows(db, 'budget_ledger')).toBe(before + 1);
  });

  it('answers ids out of range as "no such job", never with SQL (item 12)', async () => {
    const show = await cli('show', '99999999999999999999');
    expect(show.code).toBe(2);
    expect(show.stderr).toMatch(/^show needs a job id: a whole number from 1 to 9007199254740991 \(got "99999999999999999999"\)/);
    expect(show.stderr).not.toMatch(/select|Failed query/i);
    for (const raw of ['0x10', '1e3', '-4']) expect((await cli('cancel', raw)).code).toBe(2);

    const bad = [1e20, 2 ** 63, -1, 0, 1.5, Number.NaN];
    for (const id of bad) {
      expect(await getJob(farm, id)).toBeUndefined();
      expect(await getArtifact(farm, id)).toBeUndefined();
      expect(await queuePosition(farm, id)).toBeUndefined();
      await expect(cancelJob(farm, id)).rejects.toBeInstanceOf(JobNotFoundError);
      await expect(retryJob(farm, id)).rejects.toBeInstanceOf(JobNotFoundError);
      const parent = await submitJob(farm, { kind: 'reroll', userId: 'ids', params: { ...CHEAP_BLEND }, parentJobId: id }).catch((e: unknown) => e);
      expect(parent).toBeInstanceOf(FarmError);
      expect((parent as FarmError).code).toBe('not_found');
    }
  });

  it('refuses hex, exponents and inherited choices on the command line (item 12)', async () => {
    const jobsBefore = await countRows(db, 'jobs');
    const steps = await cli('submit', 'blend', 'a', 'b', '--user', 'strict', '--steps', '0x10');
    expect(steps.code).toBe(2);
    expect(steps.stderr).toContain('--steps must be a whole number (plain decimal digits), got "0x10"');
    const quality = await cli('submit', 'blend', 'a', 'b', '--user', 'strict', '--quality', '__proto__');
    expect(quality.code).toBe(2);
    expect(quality.stderr).toContain('--quality must be one of draft, standard, high, max, got "__proto__"');
    const seed = await cli('submit', 'blend', 'a', 'b', '--user', 'strict', '--seed', '9007199254740992', '--seed', '1');
    expect(seed.code).toBe(2);
    expect(seed.stderr).toContain(`--seed must be a whole number from 0 to ${0xffffffff}`);
    const format = await cli('submit', 'blend', 'a', 'b', '--user', 'strict', '--format', 'constructor');
    expect(format.code).toBe(2);
    const factor = await cli('submit', 'upscale', '--parent', '1', '--user', 'strict', '--factor', '0x2');
    expect(factor.code).toBe(2);
    expect(await countRows(db, 'jobs')).toBe(jobsBefore);
  });
});
