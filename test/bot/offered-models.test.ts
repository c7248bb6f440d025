// bot/offered-models.ts: one shared recent read of the offered models for every keystroke of every
// member's `model` autocomplete, bounded both ways: a result answers for a while, and a read under
// way answers new callers only for a while (a hung query must not answer every autocomplete with
// nothing until it settles).
import { describe, expect, it } from 'vitest';
import { OFFERED_MODELS_IN_FLIGHT_LIMIT_MS, sharedRecently } from '../../bot/offered-models.ts';
import { LOOKUP_BEFORE_ANSWER_MS } from '../../bot/submit.ts';

describe('one read for many keystrokes', () => {
  it('shares a load under way and its result for maxAgeMs, then loads again; a failure is not kept', async () => {
    let clock = 0;
    let loads = 0;
    let fail = false;
    const read = sharedRecently(
      async () => {
        loads++;
        if (fail) throw new Error('database down');
        return loads;
      },
      { maxAgeMs: 2000, inFlightLimitMs: 1500, now: () => clock },
    );
    expect(await Promise.all([read(), read(), read()])).toEqual([1, 1, 1]);
    clock = 2000;
    expect(await read()).toBe(1);
    clock = 2001;
    expect(await read()).toBe(2);
    clock = 5000;
    fail = true;
    await expect(read()).rejects.toThrow('database down');
    fail = false;
    expect(await read()).toBe(4);
    expect(loads).toBe(4);
  });

  it('gives up on a load under way for longer than inFlightLimitMs: the next caller starts another, which answers', async () => {
    let clock = 0;
    // The first read hangs (a query the database never answers); the later ones answer.
    const started: number[] = [];
    const read = sharedRecently(
      () => {
        started.push(clock);
        return started.length === 1 ? new Promise<string>(() => {}) : Promise.resolve(`read ${started.length}`);
      },
      { maxAgeMs: 2000, inFlightLimitMs: 1500, now: () => clock },
    );
    const hung = read();
    clock = 1500;
    // Still young enough to wait for: the same read, no new one.
    expect(read()).toBe(hung);
    expect(started).toEqual([0]);
    clock = 1501;
    expect(await read()).toBe('read 2');
    expect(started).toEqual([0, 1501]);
    // Its result is shared as any is; the hung read is not waited for again.
    clock = 3000;
    expect(await read()).toBe('read 2');
    expect(started).toEqual([0, 1501]);
  });

  it('starts no more than maxInFlight reads while they hang: later callers share the newest', () => {
    let clock = 0;
    let started = 0;
    const read = sharedRecently(
      () => {
        started++;
        return new Promise<string>(() => {});
      },
      { maxAgeMs: 2000, inFlightLimitMs: 1500, now: () => clock, maxInFlight: 2 },
    );
    read();
    clock = 1501;
    const second = read();
    // Every keystroke after: the second hung read, not a third, fourth, ... connection.
    for (clock = 3002; clock < 30_000; clock += 1501) expect(read()).toBe(second);
    expect(started).toBe(2);
  });

  it('gives up on a hung read before an autocomplete stops waiting for one', () => {
    // A keystroke after the limit gets a fresh read with the whole of its own wait still ahead.
    expect(OFFERED_MODELS_IN_FLIGHT_LIMIT_MS).toBeLessThan(LOOKUP_BEFORE_ANSWER_MS);
  });
});
