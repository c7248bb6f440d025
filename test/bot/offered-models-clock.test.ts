// bot/offered-models.ts sharedRecently measures a read's age on the monotonic clock by default, not
// the wall clock: with the wall clock stepped an hour back (NTP), a read is still kept only for
// maxAgeMs, not for an hour; stepped an hour ahead, it is still shared for maxAgeMs.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { sharedRecently } from '../../bot/offered-models.ts';

const HOUR_MS = 3_600_000;

afterEach(() => {
  vi.useRealTimers();
});

/** A shared read counting its loads, on the default clock. */
function countedRead() {
  const counter = { loads: 0 };
  const read = sharedRecently(async () => `read ${++counter.loads}`, { maxAgeMs: 2000, inFlightLimitMs: 1500 });
  return { read, counter };
}

describe('sharedRecently on the default clock', () => {
  it('loads again once maxAgeMs has passed, though the wall clock stepped an hour back meanwhile', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'performance'] });
    const { read } = countedRead();
    expect(await read()).toBe('read 1');
    vi.setSystemTime(Date.now() - HOUR_MS);
    vi.advanceTimersByTime(2001);
    expect(await read()).toBe('read 2');
  });

  it('shares a read for maxAgeMs, though the wall clock stepped an hour ahead meanwhile', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'performance'] });
    const { read } = countedRead();
    expect(await read()).toBe('read 1');
    vi.setSystemTime(Date.now() + HOUR_MS);
    vi.advanceTimersByTime(1000);
    expect(await read()).toBe('read 1');
  });
});
