// The bot end to end in one process: the real discord.js client against the fake Discord, a real
// farm on a test database (PGlite unless told otherwise), local render workers (quick fake renders,
// or the engine in a worker thread) and the bot with quick message edits and retries.
import { type BotOptions, type RunningBot, startBot } from '../../bot/bot.ts';
import { deployCommands } from '../../apps/bot/deploy-commands.ts';
import { createThreadRenderer, type FarmContext, type FarmDb, type LocalWorkers, type Renderer, startLocalWorkers, type ThreadRenderer, type ThreadRendererOptions } from '../../farm/index.ts';
import type { FarmConfigOverrides } from '../../farm/config.ts';
import { FakeRenderer, type FakeRendererOptions } from '../../farm/fake-renderer.ts';
import { ATTACHMENT_ROUTE, type FakeDiscord, type FakeUser, type GuildInit, type InteractionHandle, type RecordedRequest, type StoredMessage, startFakeDiscord } from '../fake-discord/index.ts';
import { type Backend, createTestDatabase, farmContext, GENEROUS_BUDGET, type TestDatabase } from './db.ts';

export interface BotFarm {
  fake: FakeDiscord;
  /** Members of the guild, by username, created before the bot started. */
  users: Record<string, FakeUser>;
  testDb: TestDatabase;
  db: FarmDb;
  farm: FarmContext;
  /** The engine's worker thread (renderer `{ engine }` only). */
  renderer?: ThreadRenderer;
  workers: LocalWorkers;
  bot: RunningBot;
}

/** A guild member made before the bot starts: a username alone joins the first server, without roles. */
export type BotFarmMember = string | { username: string; /** Server names (default the first). */ guilds?: string[]; /** Role names, given in each of its servers. */ roles?: string[] };

export interface BotFarmOptions {
  /** The fake Discord's servers (default one, "Blendfarm", with a "renders" channel); the commands are deployed to each. */
  guilds?: GuildInit[];
  /** Users created in this order, then made members. */
  members?: BotFarmMember[];
  /** The database back end (default pglite). */
  backend?: Backend;
  /** The farm's configuration (default a generous budget, GENEROUS_BUDGET). */
  config?: FarmConfigOverrides;
  /**
   * What renders: `{ fake }`, a FakeRenderer per worker with these options (the default, `{}`);
   * `{ engine }`, one engine worker thread (apps/worker/engine-renderer.ts) with these renderer
   * options, closed by stopBotFarm; or a factory giving each worker its own renderer.
   */
  renderer?: { fake: FakeRendererOptions } | { engine: ThreadRendererOptions['rendererOptions'] } | (() => Renderer | Promise<Renderer>);
  /** The bot's log (default none; the workers' is never kept). */
  log?: (line: string) => void;
  /** The bot's progress edits and delivery (default TEST_MESSENGER). */
  messenger?: BotOptions['messenger'];
}

/** A message that carries a rendered video (what a finished job's message has). */
/** The bot's downloads of the files attached to an interaction, from the fake CDN. */
export function downloadsOf(fake: FakeDiscord, handle: InteractionHandle): RecordedRequest[] {
  const ids = Object.keys(((handle.payload.data as { resolved?: { attachments?: object } }).resolved?.attachments ?? {}) as object);
  return fake.requests.filter((r) => r.route === ATTACHMENT_ROUTE && ids.some((id) => r.path.includes(`/${id}/`)));
}

export const hasVideo = (m: StoredMessage): boolean => m.attachments.some((a) => /\.(mp4|gif|webm|webp)$/.test(a.filename));

/** Quick message edits and retries. */
export const TEST_MESSENGER: NonNullable<BotOptions['messenger']> = { editIntervalMs: 150, retryDelayMs: 200 };

/** Starts the bot on `fake` and `farm` (default: no log, TEST_MESSENGER). */
export function startTestBot(fake: FakeDiscord, farm: FarmContext, options: Pick<BotFarmOptions, 'log' | 'messenger'> = {}): Promise<RunningBot> {
  return startBot({ token: fake.token, apiBase: fake.restBase, farm, log: options.log ?? (() => {}), messenger: options.messenger ?? TEST_MESSENGER });
}

/**
 * Starts the fake Discord with its servers and members, a test database and farm, the render
 * workers, deploys the commands to every server and starts the bot. What was started is stopped
 * again if a step fails.
 */
export async function startBotFarm(options: BotFarmOptions = {}): Promise<BotFarm> {
  const started: Partial<BotFarm> = {};
  try {
    const fake = (started.fake = await startFakeDiscord({ guilds: options.guilds ?? [{ name: 'Blendfarm', channels: ['renders'] }] }));
    const members = (options.members ?? []).map((m) => (typeof m === 'string' ? { username: m } : m));
    const users: Record<string, FakeUser> = {};
    for (const { username } of members) users[username] = fake.createUser({ username });
    for (const { username, guilds, roles } of members) {
      for (const guild of guilds ?? [fake.guild().name]) fake.addMember(users[username], { guildId: fake.guild(guild).id, roles });
    }
    const testDb = (started.testDb = await createTestDatabase(options.backend ?? 'pglite'));
    const db = await testDb.open();
    const farm = farmContext(db, options.config ?? { budget: GENEROUS_BUDGET });
    const choice = options.renderer ?? { fake: {} };
    let renderer: Renderer | (() => Renderer | Promise<Renderer>);
    if (typeof choice === 'function') renderer = choice;
    else if ('engine' in choice) renderer = started.renderer = await createThreadRenderer({ module: 'apps/worker/engine-renderer.ts', rendererOptions: choice.engine, threads: 1 });
    else renderer = () => new FakeRenderer(choice.fake);
    const workers = (started.workers = await startLocalWorkers(farm, { renderer, log: () => {} }));
    for (const guild of fake.guilds()) await deployCommands({ token: fake.token, guildId: guild.id, apiBase: fake.restBase });
    const bot = await startTestBot(fake, farm, options);
    return { fake, users, testDb, db, farm, renderer: started.renderer, workers, bot };
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
