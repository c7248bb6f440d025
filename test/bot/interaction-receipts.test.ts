// Whether a job's interaction token still works is measured from when this process received the
// interaction, on its monotonic clock (bot/interaction-receipts.ts), not from Discord's time against
// this machine's wall clock: a bot whose clock is off by more than the margin used to edit through a
// dead token, or give up a live one for the channel message. An interaction from before a restart
// (no receipt) is still judged by its expiry against the wall clock; a dead token falls back to the
// bot's own edit of the channel message.
import { EventEmitter } from 'node:events';
import { Events, type Client } from 'discord.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { FarmContext, Job } from '../../farm/index.ts';
import { editJobMessage } from '../../bot/job-message.ts';
import { INTERACTION_RECEIPTS_KEPT_MS, InteractionReceipts } from '../../bot/interaction-receipts.ts';

const MINUTE_MS = 60_000;
const LIFETIME_MS = 15 * MINUTE_MS;
const APP = '800000000000000003';

/** discord.js's REST client recording the routes edited. */
function stub(routes: string[]): Client {
  const rest = {
    async patch(route: string) {
      routes.push(route);
      return {};
    },
  };
  return { rest, application: { id: APP }, user: { id: APP } } as unknown as Client;
}

/** A job asked for by a command created at `createdAt` (Discord's clock), with its message. */
function commandJob(token: string, createdAt: number): Job {
  return { id: 9, userId: '400000000000000003', channelId: '700000000000000003', messageId: '500000000000000003', interactionToken: token, interactionExpiresAt: new Date(createdAt + LIFETIME_MS) } as unknown as Job;
}

/** This machine's wall clock `offMs` off Discord's (the true time). */
function wallClockOff(offMs: number): void {
  const real = Date.now.bind(Date);
  vi.spyOn(Date, 'now').mockImplementation(() => real() + offMs);
}

/** Which way editJobMessage took: 'token' (the interaction webhook) or 'channel' (the bot's own edit). */
async function wayTaken(job: Job, receipts: InteractionReceipts): Promise<'token' | 'channel'> {
  const routes: string[] = [];
  await editJobMessage({ client: stub(routes), farm: {} as FarmContext, log: () => {}, receipts }, job, { content: 'done', components: [] }, { reopenThread: false });
  expect(routes).toHaveLength(1);
  return routes[0].startsWith(`/webhooks/${APP}/`) ? 'token' : 'channel';
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('an interaction token’s age, from its receipt here', () => {
  it('a bot 20 minutes fast still edits through a token received a moment ago', async () => {
    let mono = 50_000;
    const receipts = new InteractionReceipts(() => mono);
    const createdAt = Date.now();
    receipts.received({ token: 'tok-fast', createdTimestamp: createdAt });
    wallClockOff(20 * MINUTE_MS);
    mono += MINUTE_MS;
    expect(await wayTaken(commandJob('tok-fast', createdAt), receipts)).toBe('token');
  });

  it('a bot 20 minutes slow edits the channel message once the token received 15 minutes ago has expired', async () => {
    let mono = 50_000;
    const receipts = new InteractionReceipts(() => mono);
    const createdAt = Date.now();
    receipts.received({ token: 'tok-slow', createdTimestamp: createdAt });
    mono += LIFETIME_MS - 5_000; // within the margin: not risked
    wallClockOff(-20 * MINUTE_MS);
    expect(await wayTaken(commandJob('tok-slow', createdAt), receipts)).toBe('channel');
  });

  it('without a receipt (received before a restart, or by another process) the expiry is compared with the wall clock', async () => {
    const receipts = new InteractionReceipts(() => 0);
    expect(await wayTaken(commandJob('tok-old', Date.now() - MINUTE_MS), receipts)).toBe('token');
    expect(await wayTaken(commandJob('tok-older', Date.now() - LIFETIME_MS), receipts)).toBe('channel');
  });

  it('records the interactions its client receives (repliable ones), until untracked; old receipts are let go', async () => {
    let mono = 0;
    const receipts = new InteractionReceipts(() => mono);
    const client = new EventEmitter();
    const untrack = receipts.track(client as unknown as Client);
    const createdAt = Date.now() - 20 * MINUTE_MS; // Discord's time, 20 minutes before this machine's
    client.emit(Events.InteractionCreate, { token: 'tok-live', createdTimestamp: createdAt, isRepliable: () => true });
    client.emit(Events.InteractionCreate, { token: 'tok-autocomplete', createdTimestamp: createdAt, isRepliable: () => false });
    expect(receipts.tokenLeftMs(commandJob('tok-live', createdAt))).toBe(LIFETIME_MS);
    expect(receipts.tokenLeftMs(commandJob('tok-autocomplete', createdAt))).toBeLessThan(0); // no receipt: the wall clock's answer
    untrack();
    client.emit(Events.InteractionCreate, { token: 'tok-after', createdTimestamp: createdAt, isRepliable: () => true });
    expect(receipts.tokenLeftMs(commandJob('tok-after', createdAt))).toBeLessThan(0);
    mono += INTERACTION_RECEIPTS_KEPT_MS + 1;
    receipts.received({ token: 'tok-new', createdTimestamp: Date.now() });
    expect(receipts.tokenLeftMs(commandJob('tok-live', createdAt))).toBeLessThan(0);
  });
});
