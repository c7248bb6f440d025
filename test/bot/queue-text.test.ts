// /queue's wait text spells the queue timeout with bot/format.ts's duration, as /settings and
// /budget spell theirs: one spelling of a length of time in every bot message.
import { describe, expect, it } from 'vitest';
import { queueWaitText } from '../../bot/commands/queue.ts';
import { duration } from '../../bot/format.ts';

const farm = (queueTimeoutSeconds: number) => ({ config: { queueTimeoutSeconds } }) as Parameters<typeof queueWaitText>[0];

describe('/queue wait text', () => {
  it('spells the queue timeout as duration() does', () => {
    expect(queueWaitText(farm(21600))).toBe('up to 6h for one');
    expect(queueWaitText(farm(5400))).toBe('up to 90m for one');
    expect(queueWaitText(farm(45))).toBe('up to 45s for one');
    for (const s of [21600, 5400, 3700, 90000]) expect(queueWaitText(farm(s))).toBe(`up to ${duration(s)} for one`);
  });

  it('without a timeout, a job waits until one starts', () => {
    expect(queueWaitText(farm(0))).toBe('until one starts');
  });
});
