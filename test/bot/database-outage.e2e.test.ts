/**
 * The farm's database stops answering (its network blackholed: nothing refused, nothing answered)
 * while members use the bot: the real discord.js client against the fake Discord, the farm on a
 * real Postgres behind a FlakyProxy, whose queries give up after 4 s — longer than the 3 s Discord
 * gives a bot to answer an interaction. Every interaction is still answered in time, and what the
 * member is told says what happened and what to do.
 */
import { REST, Routes } from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type FarmDb } from '../../db/client.ts';
import type { RunningBot } from '../../bot/bot.ts';
import { deployCommands } from '../../apps/bot/deploy-commands.ts';
import { submitJob } from '../../farm/index.ts';
import { startFakeDiscord, type FakeDiscord, type FakeUser, type StoredMessage } from '../fake-discord/index.ts';
import { startTestBot } from '../helpers/bot-farm.ts';
import { createTestDatabase, farmContext, GENEROUS_BUDGET, type TestDatabase } from '../helpers/db.ts';
import { type FlakyProxy, proxyInFrontOf } from '../helpers/flaky-proxy.ts';

let fake: FakeDiscord;
let testDb: TestDatabase;
let proxy: FlakyProxy;
let db: FarmDb;
let bot: RunningBot;
let alice: FakeUser;
/** A message of the bot's to press buttons on. */
let message: StoredMessage;
let jobId: number;

beforeAll(async () => {
  fake = await startFakeDiscord({ guilds: [{ name: 'Blendfarm', channels: ['renders'] }] });
  alice = fake.createUser({ username: 'alice' });
  fake.addMember(alice);
  testDb = await createTestDatabase('postgres');
  const viaProxy = await proxyInFrontOf(testDb.url!);
  proxy = viaProxy.proxy;
  db = await openDatabase({ url: viaProxy.url, poolSize: 4, timeouts: { connectTimeoutMs: 4000, queryTimeoutMs: 4000, keepAliveSeconds: 1 }, log: () => {} });
  const farm = farmContext(db, { budget: GENEROUS_BUDGET });
  await deployCommands({ token: fake.token, guildId: fake.guild().id, apiBase: fake.restBase });
  bot = await startTestBot(fake, farm);
  const channelId = fake.channel('renders').id;
  jobId = (await submitJob(farm, { kind: 'blend', userId: alice.id, guildId: fake.guild().id, channelId, params: { prompts: ['a lighthouse', 'a harbour'], quality: 'draft' } })).id;
  const posted = (await bot.client.rest.post(Routes.channelMessages(channelId), { body: { content: 'a message to press on' } })) as { id: string };
  message = fake.message(posted.id)!;
}, 60_000);

afterAll(async () => {
  proxy?.restore();
  await bot?.stop();
  await db?.close().catch(() => {});
  await proxy?.close();
  await testDb?.drop();
  await fake?.close();
});

/** Runs `check` while the proxy drops every packet to Postgres, and lets the database answer again after it. */
async function whileDatabaseAway(check: () => Promise<void>): Promise<void> {
  proxy.blackhole();
  try {
    await check();
  } finally {
    proxy.restore();
  }
}

describe('the database stops answering', () => {
  it('a button is still answered within 3 s, privately, saying the farm is slow and nothing was done', async () => {
    await whileDatabaseAway(async () => {
      const press = fake.pressButton({ messageId: message.id, customId: `bf:cancel:${jobId}`, user: alice, replayed: true });
      const r = await press.waitForResponse(6000);
      expect(r.latencyMs).toBeLessThan(3000);
      expect([r.type, r.ephemeral]).toEqual([4, true]);
      expect(String(r.data?.content)).toBe('The render farm is slow to answer right now, so nothing was done; try again in a moment. If it keeps happening, tell the farm\'s operator.');
    });
  });

  it('a command (deferred at once) is told the database is not answering once it gives up, not "something went wrong"', async () => {
    await whileDatabaseAway(async () => {
      const run = fake.sendSlashCommand({ commandName: 'cancel', user: alice, options: { job: jobId } });
      expect((await run.waitForResponse()).latencyMs).toBeLessThan(3000);
      const answer = await run.waitForOriginal((m) => Boolean(m.content), 15_000);
      expect(answer.ephemeral).toBe(true);
      expect(answer.content).toBe("The render farm's database isn't answering right now; try again in a minute. If it keeps happening, tell the farm's operator.");
    });
  });

  it('a 🔍 on the bot\'s message is answered by DM, in the words a command gets, and nothing is done', async () => {
    await whileDatabaseAway(async () => {
      // What a command is told meanwhile: the one wording for this case.
      const command = fake.sendSlashCommand({ commandName: 'cancel', user: alice, options: { job: jobId } });
      const commandAnswer = (await command.waitForOriginal((m) => Boolean(m.content), 15_000)).content;
      const since = Date.now();
      expect(fake.addReaction({ messageId: message.id, emoji: '🔍', user: alice }).delivered).toBe(true);
      const dm = await fake.waitForMessage((m) => m.channelId === fake.dmChannel(alice)?.id && m.createdAt >= since, 15_000);
      expect(dm.content).toBe(`Your 🔍 on a video in <#${message.channelId}> did not upscale it. ${commandAnswer}`);
      expect(commandAnswer).toMatch(/^The render farm's database isn't answering right now/);
      // Taken off, so reacting again asks again.
      expect(fake.message(message.id)!.reactions.get('🔍')?.has(alice.id) ?? false).toBe(false);
    });
  });

  it('a 🔍 from a member whose DMs are closed posts nothing in the channel (the owner is unknown then: anyone could make the bot post one note per reaction)', async () => {
    await whileDatabaseAway(async () => {
      // Her DM channel, opened as the bot opens one (the refusal's DM to it is then refused).
      const dm = (await new REST({ api: fake.restBase }).setToken(fake.token).post(Routes.userChannels(), { body: { recipient_id: alice.id } })) as { id: string };
      const since = Date.now();
      fake.failNext({ route: `/channels/${dm.id}/messages`, method: 'POST', status: 403, code: 50007, message: 'Cannot send messages to this user' });
      expect(fake.addReaction({ messageId: message.id, emoji: '🔍', user: alice }).delivered).toBe(true);
      const deadline = Date.now() + 15_000;
      while (fake.message(message.id)!.reactions.get('🔍')?.has(alice.id)) {
        if (Date.now() > deadline) throw new Error('the reaction was not taken off');
        await new Promise((r) => setTimeout(r, 50));
      }
      // The DM is tried (and refused) after the reaction is taken off; a note would follow it.
      await new Promise((r) => setTimeout(r, 1500));
      expect(fake.messages(message.channelId, { includeDeleted: true }).filter((m) => m.createdAt >= since)).toEqual([]);
    });
  });
});
