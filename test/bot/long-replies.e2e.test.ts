/**
 * Replies that list things (/budget's active jobs, /queue's workers) stay within Discord's 2000
 * characters however much there is to list: the real discord.js client against the fake Discord
 * (which refuses longer content with 50035, as Discord does), a farm on PGlite whose one worker is
 * held by a slow render, so the member's other jobs stay queued.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buttonsOf, type FakeDiscord, type FakeUser, type StoredMessage } from '../fake-discord/index.ts';
import { type BotFarm, startBotFarm, stopBotFarm } from '../helpers/bot-farm.ts';

let running: BotFarm | undefined;
let fake: FakeDiscord;
let alice: FakeUser;
const logs: string[] = [];
const JOBS = 14;

const isQueued = (m: StoredMessage) => buttonsOf(m).some((b) => b.customId?.startsWith('bf:cancel:'));
/** The longest prompt a member may type: the title shows 77 characters of each, and an ellipsis. */
const long = (word: string) => `${word} `.repeat(100).slice(0, 500).trim();

beforeAll(async () => {
  running = await startBotFarm({ members: ['alice'], log: (l) => logs.push(l), renderer: { fake: { models: ['demo'], steps: 2, stepMs: 5 } } });
  ({ fake } = running);
  alice = running.users.alice;
  // One slow render holds the worker; the others stay queued.
  await fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: '[fake ms=120000] slow', to: 'b', quality: 'draft', duration: 1 } }).waitForOriginal(isQueued, 10_000);
  for (let i = 1; i < JOBS; i++) {
    await fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: long(`lighthouse${i}`), to: long(`harbour${i}`), quality: 'draft', duration: 1 } }).waitForOriginal(isQueued, 10_000);
  }
}, 120_000);

afterAll(() => stopBotFarm(running ?? {}));

describe('replies that list things fit in one message', () => {
  it('/budget with more active jobs than fit: as many as fit, then how many more', async () => {
    const reply = await fake.sendSlashCommand({ commandName: 'budget', user: alice }).waitForOriginal((m) => Boolean(m.content), 10_000);
    expect(reply.ephemeral).toBe(true);
    expect(reply.content.length).toBeLessThanOrEqual(2000);
    expect(reply.content).toMatch(/GPU-seconds\*\* available/);
    const listed = reply.content.split('\n').filter((l) => l.startsWith('• '));
    expect(listed.length).toBeGreaterThan(3);
    expect(listed.length).toBeLessThan(JOBS);
    expect(reply.content.split('\n').at(-1)).toBe(`…and ${JOBS - listed.length} more.`);
    expect(logs.filter((l) => l.includes('unexpected error'))).toEqual([]);
  });
});
