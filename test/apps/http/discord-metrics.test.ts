// The bot's Discord REST metrics are attached before login (startBot's onClient), so a 429 while
// logging in is counted: against the fake Discord, the first GET /gateway/bot is rate limited.
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { startBot, type RunningBot } from '../../../bot/bot.ts';
import { watchDiscordRest } from '../../../apps/http/ops.ts';
import { startFakeDiscord, type FakeDiscord } from '../../fake-discord/index.ts';
import { createTestDatabase, farmContext, GENEROUS_BUDGET, type TestDatabase } from '../../helpers/db.ts';
import { sample } from './helpers.ts';

describe('Discord REST metrics', () => {
  let fake: FakeDiscord | undefined;
  let testDb: TestDatabase | undefined;
  let bot: RunningBot | undefined;
  afterAll(async () => {
    await bot?.stop();
    await testDb?.drop();
    await fake?.close();
  });

  it('counts a rate limit the bot meets while logging in', async () => {
    fake = await startFakeDiscord({ guilds: [{ name: 'Blendfarm', channels: ['renders'] }] });
    testDb = await createTestDatabase('pglite');
    const farm = farmContext(await testDb.open(), { budget: GENEROUS_BUDGET });
    const registry = new Registry();
    fake.failNext({ route: '/gateway/bot', method: 'GET', status: 429, retryAfter: 0.1, scope: 'shared' });
    bot = await startBot({ token: fake.token, apiBase: fake.restBase, farm, log: () => {}, onClient: (client) => watchDiscordRest(client.rest, registry) });
    expect(bot.client.isReady()).toBe(true);
    const text = await registry.metrics();
    expect(sample(text, 'blendfarm_discord_rest_429_total', { scope: 'shared' })).toBe(1);
    expect(sample(text, 'blendfarm_discord_rest_429_total', { scope: 'user' })).toBe(0);
  });
});
