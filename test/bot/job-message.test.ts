// bot/job-message.ts: a job's text reaches its Discord message within Discord's 2000 characters,
// also with its owner's mention put before it. A stand-in for discord.js's REST client records the edits.
import type { Client } from 'discord.js';
import { describe, expect, it } from 'vitest';
import type { FarmContext, Job } from '../../farm/index.ts';
import { CUT_MARK, JOB_TEXT_LENGTH, MAX_MESSAGE_LENGTH } from '../../bot/format.ts';
import { editJobMessage } from '../../bot/job-message.ts';

function stub(sent: string[]): Client {
  const rest = {
    async patch(_route: string, options?: { body?: { content?: string } }) {
      sent.push(options?.body?.content ?? '');
      return {};
    },
  };
  return { rest, application: { id: '800000000000000001' }, user: { id: '800000000000000001' } } as unknown as Client;
}

/** A job whose message was made by a 🔍/🔁 reaction (no interaction token): edits start with its owner's mention. */
const job = (userId: string) => ({ id: 7, userId, channelId: '700000000000000001', messageId: '500000000000000001', interactionToken: null, interactionExpiresAt: null }) as unknown as Job;

describe('editJobMessage', () => {
  it('the mention and a text as long as a job text may be fit one message; a longer id cuts the longest line, marked', async () => {
    const text = `**Blend** #7: a cat → a dog\n${'w'.repeat(JOB_TEXT_LENGTH - 28)}`;
    expect(text.length).toBe(JOB_TEXT_LENGTH);
    const sent: string[] = [];
    const ctx = { client: stub(sent), farm: {} as FarmContext, log: () => {} };
    // A Discord user id (20 digits at most): the room JOB_TEXT_LENGTH leaves is enough, nothing cut.
    await editJobMessage(ctx, job('9'.repeat(20)), { content: text, components: [] }, { reopenThread: false });
    expect(sent[0]).toBe(`<@${'9'.repeat(20)}> ${text}`);
    expect(sent[0].length).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
    // An id the farm allows from another front end (up to 64 characters): the long line is cut.
    await editJobMessage(ctx, job('u'.repeat(64)), { content: text, components: [] }, { reopenThread: false });
    expect(sent[1].length).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
    expect(sent[1].startsWith(`<@${'u'.repeat(64)}> **Blend** #7: a cat → a dog\nwww`)).toBe(true);
    expect(sent[1].endsWith(`w${CUT_MARK}`)).toBe(true);
  });
});
