// bot/errors.ts: what a member reads when something is refused.
import { describe, expect, it } from 'vitest';
import { BudgetExceededError, FarmError, JobParamsError, parseJobParams } from '../../farm/index.ts';
import { UserInputError, userMessage } from '../../bot/errors.ts';
import { OPTION_NAMES, toJobParamsInput } from '../../bot/render-options.ts';

function refusalOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a refusal');
}

describe('userMessage', () => {
  it('a JobParamsError lists every issue, naming the Discord options the member can change', () => {
    const err = refusalOf(() => parseJobParams('blend', toJobParamsInput(['', 'a dog'], { duration: 1000, depth: 2 })));
    expect(err).toBeInstanceOf(JobParamsError);
    const text = userMessage(err, () => {}, { ...OPTION_NAMES, 'prompt 1': 'from', 'prompt 2': 'to' });
    expect(text).toMatch(/^That request can't be rendered: /);
    expect(text).toMatch(/`from` must not be empty/);
    expect(text).toMatch(/`duration` must be a number between/);
    expect(text).toMatch(/`depth` must be a number between/);
    // Without names, the farm's own words.
    expect(userMessage(err, () => {})).toMatch(/prompt 1 must not be empty.*durationSeconds must be/);
  });

  it('the farm’s refusals and the bot’s own input errors are shown as they are', () => {
    expect(userMessage(new UserInputError('Unknown size "huge".'))).toBe('Unknown size "huge".');
    expect(userMessage(new FarmError('invalid_state', 'Job 3 is running.'))).toBe('Job 3 is running.');
    expect(userMessage(new FarmError('too_many_active_jobs', 'You already have 3 jobs.'))).toBe('You already have 3 jobs.');
    expect(userMessage(new FarmError('no_capable_worker', 'No render worker is online.'))).toMatch(/Try again in a few minutes/);
  });

  it('a budget refusal shows its refill time as a Discord timestamp (each reader’s own clock), never as an ISO string', () => {
    const budget = new BudgetExceededError(30, 5.04, new Date('2024-01-02T00:00:00Z'), 600);
    const text = userMessage(budget);
    expect(text).toBe(
      'This job needs about 30 GPU-seconds but only 5 are left; the budget refills to 600 <t:1704153600:R> (<t:1704153600:f>); or ask for a smaller, shorter or lower-quality render.',
    );
    expect(text).not.toContain('2024-01-02T');
  });

  it('anything else: a reference for the user, the details in the log', () => {
    const logged: string[] = [];
    const text = userMessage(new Error('connection reset'), (m) => logged.push(m));
    const ref = /reference `([0-9a-f]{8})`/.exec(text)?.[1];
    expect(ref).toBeDefined();
    expect(text).not.toMatch(/connection reset/);
    expect(logged.join()).toMatch(new RegExp(`ref ${ref}.*connection reset`));
  });
});
