// The bot end to end in one process: the real discord.js client against the fake Discord (one
// guild, "Blendfarm", with a "renders" channel), a real farm on PGlite, and one render worker
// running the engine in a worker thread.
import { type RunningBot, startBot } from '../../bot/bot.ts';
import { deployCommands } from '../../apps/bot/deploy-commands.ts';
import { createThreadRenderer, type FarmContext, type FarmDb, type LocalWorkers, startLocalWorkers, type ThreadRenderer, type ThreadRendererOptions } from '../../farm/index.ts';
import { type FakeDiscord, type FakeUser, type StoredMessage, startFakeDiscord } from '../fake-discord/index.ts';
import { createTestDatabase, farmContext, GENEROUS_BUDGET, type TestDatabase } from './db.ts';

export interface BotFarm {
  fake: FakeDiscord;
  /** Members of the guild, by username, created before the bot started. */
  users: Record<string, FakeUser>;
  testDb: TestDatabase;
  db: FarmDb;
  farm: FarmContext;
  renderer: ThreadRenderer;
  workers: LocalWorkers;
  bot: RunningBot;
}

/** A message that carries a rendered video (what a finished job's message has). */
export const hasVideo = (m: StoredMessage): boolean => m.attachments.some((a) => /\.(mp4|gif|webm|webp)$/.test(a.filename));

/** Starts the bot on `fake` and `farm` with quick message edits and retries. */
export function startTestBot(fake: FakeDiscord, farm: FarmContext): Promise<RunningBot> {
  return startBot({ token: fake.token, apiBase: fake.restBase, farm, log: () => {}, messenger: { editIntervalMs: 150, retryDelayMs: 200 } });
}

/**
 * Starts the fake Discord with `usernames` as guild members, a PGlite farm with a generous budget,
 * one engine worker thread (apps/worker/engine-renderer.ts with `rendererOptions`), deploys the
 * commands and starts the bot.
 */
export async function startBotFarm(options: { usernames: string[]; rendererOptions: ThreadRendererOptions['rendererOptions'] }): Promise<BotFarm> {
  const started: Partial<BotFarm> = {};
  try {
    const fake = (started.fake = await startFakeDiscord({ guilds: [{ name: 'Blendfarm', channels: ['renders'] }] }));
    const users: Record<string, FakeUser> = {};
    for (const username of options.usernames) users[username] = fake.createUser({ username });
    for (const username of options.usernames) fake.addMember(users[username]);
    const testDb = (started.testDb = await createTestDatabase('pglite'));
    const db = await testDb.open();
    const farm = farmContext(db, { budget: GENEROUS_BUDGET });
    const renderer = (started.renderer = await createThreadRenderer({ module: 'apps/worker/engine-renderer.ts', rendererOptions: options.rendererOptions, threads: 1 }));
    const workers = (started.workers = await startLocalWorkers(farm, { renderer, log: () => {} }));
    await deployCommands({ token: fake.token, guildId: fake.guild().id, apiBase: fake.restBase });
    const bot = await startTestBot(fake, farm);
    return { fake, users, testDb, db, farm, renderer, workers, bot };
  } catch (error) {
    await stopBotFarm(started);
    throw error;
  }
}

/** Stops what startBotFarm started (the bot and workers as they are now), in reverse order. */
export async function stopBotFarm(parts: Partial<Pick<BotFarm, 'bot' | 'workers' | 'renderer' | 'testDb' | 'fake'>>): Promise<void> {
  await parts.bot?.stop();
  await parts.workers?.stop('release');
  await parts.renderer?.close();
  await parts.testDb?.drop();
  await parts.fake?.close();
}
