// The bot's memory of reaction answers (ReactionNotices, bot/components/reactions.ts): a key is
// claimed once per window, forgotten after it, and each memory stays bounded however many
// members and jobs are reacted to.
import { describe, expect, it } from 'vitest';
import { DMS_CLOSED_MEMORY_MS, REACTION_MEMORY_MAX_ENTRIES, REACTION_NOTICE_WINDOW_MS, ReactionNotices } from '../../bot/components/reactions.ts';

describe('ReactionNotices', () => {
  it('claims a key once within the window, and again once it has passed', () => {
    const { refusals } = new ReactionNotices();
    expect(refusals.claim('u:1:reroll', 0)).toBe(true);
    expect(refusals.claim('u:1:reroll', REACTION_NOTICE_WINDOW_MS - 1)).toBe(false);
    expect(refusals.claim('u:1:upscale', 1)).toBe(true);
    expect(refusals.claim('u:1:reroll', REACTION_NOTICE_WINDOW_MS)).toBe(true);
  });

  it('remembers closed DMs for DMS_CLOSED_MEMORY_MS, and forget() drops all of a member', () => {
    const notices = new ReactionNotices();
    notices.closedDms.add('7:', 0);
    notices.notes.add('7:1', 0);
    notices.closedDms.add('70:', 0);
    expect(notices.closedDms.has('7:', DMS_CLOSED_MEMORY_MS - 1)).toBe(true);
    expect(notices.closedDms.has('7:', DMS_CLOSED_MEMORY_MS)).toBe(false);
    notices.closedDms.add('7:', 0);
    notices.forget('7');
    expect([notices.closedDms.has('7:', 1), notices.notes.has('7:1', 1), notices.closedDms.has('70:', 1)]).toEqual([false, false, true]);
  });

  it('keeps at most REACTION_MEMORY_MAX_ENTRIES keys, the oldest going first', () => {
    const { notes } = new ReactionNotices();
    for (let i = 0; i <= REACTION_MEMORY_MAX_ENTRIES + 500; i++) notes.add(`u${i}:1`, i);
    expect(notes.size).toBe(REACTION_MEMORY_MAX_ENTRIES);
    expect(notes.has('u0:1', REACTION_MEMORY_MAX_ENTRIES + 500)).toBe(false);
    expect(notes.has(`u${REACTION_MEMORY_MAX_ENTRIES + 500}:1`, REACTION_MEMORY_MAX_ENTRIES + 500)).toBe(true);
  });
});
