// within: a call the bot gives up on after a time, with the answer or error chosen for that case.
import { describe, expect, it } from 'vitest';
import { within } from '../../bot/within.ts';

const after = <T>(ms: number, value: T, fail = false) => new Promise<T>((resolve, reject) => setTimeout(() => (fail ? reject(new Error(String(value))) : resolve(value)), ms));

describe('within', () => {
  it('answers with the call when it is in time, its failure included', async () => {
    expect(await within(after(5, 'name'), 200, () => 'late')).toBe('name');
    await expect(within(after(5, 'refused', true), 200, () => 'late')).rejects.toThrow('refused');
  });

  it('answers with onTimeout past the time, or fails with what it throws', async () => {
    expect(await within(after(300, 'name'), 20, () => undefined)).toBeUndefined();
    await expect(
      within(after(300, 'name'), 20, (): never => {
        throw new Error('too slow');
      }),
    ).rejects.toThrow('too slow');
  });

  it('a call given up on that fails later is no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      expect(await within(after(40, 'gone', true), 5, () => 'late')).toBe('late');
      await after(80, null);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
