// The bot as a child process against the fake Discord: the slash commands deployed to every
// server, the bot started from a temporary folder (`npm start`, apps/bot/main.ts, on an embedded
// PGlite database in it unless the environment says otherwise; or `npm run start:sharded`,
// apps/bot/shards.ts), and waited for until it is up.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deployCommands } from '../../apps/bot/deploy-commands.ts';
import { type FakeDiscord, type FakeDiscordOptions, startFakeDiscord } from '../fake-discord/index.ts';
import { ROOT, TSX } from './cli.ts';

export interface BotProcess {
  fake: FakeDiscord;
  /** The process's working folder (its PGlite data lives in pglite/ under it). */
  dir: string;
  child: ChildProcess;
  /** Everything the process (and, sharded, its shard processes) has written so far, stdout and stderr together. */
  readonly output: string;
  /** Shard processes the sharding manager has reported starting, by shard id (empty for npm start). */
  shardPids(): Map<number, number>;
  /**
   * Stops the process if it still runs (SIGTERM, SIGKILL after 20 s), kills any shard process
   * it left behind, closes the fake Discord and removes the folder.
   */
  stop(): Promise<void>;
}

export interface BotProcessOptions {
  /** The entry point in apps/bot: main.ts (npm start, the default) or shards.ts (npm run start:sharded). */
  script?: 'main.ts' | 'shards.ts';
  /** The fake Discord's options; by default one server, "Blendfarm", with a "renders" channel. */
  discord?: FakeDiscordOptions;
  /** Whether the process is up, from its output so far; by default: it says it logged in. */
  ready?: (output: string, fake: FakeDiscord) => boolean;
  /** How long it may take to be up (default 60 s). */
  readyTimeoutMs?: number;
}

/** A pid that still names a running process (not one that has exited and been reaped). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts a fake Discord, deploys the commands to each of its servers and starts the bot process
 * with `env(dir)` added to its environment; resolves once it is up (`options.ready`). Fails,
 * cleaning up, if the process exits or is not up in time.
 */
export async function startBotProcess(tmpPrefix: string, env: (dir: string) => Record<string, string>, options: BotProcessOptions = {}): Promise<BotProcess> {
  const script = options.script ?? 'main.ts';
  const ready = options.ready ?? ((text: string) => /logged in as/.test(text));
  const fake = await startFakeDiscord(options.discord ?? { guilds: [{ name: 'Blendfarm', channels: ['renders'] }] });
  const dir = await mkdtemp(join(tmpdir(), tmpPrefix));
  let child: ChildProcess | undefined;
  let output = '';
  const shardPids = () => new Map([...output.matchAll(/shard (\d+) of \d+ started \(pid (\d+)\)/g)].map((m) => [Number(m[1]), Number(m[2])]));
  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child?.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    // Shard processes whose manager could not stop them (each also stops when its manager is gone).
    for (const pid of shardPids().values()) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const guild of fake.guilds()) await deployCommands({ token: fake.token, guildId: guild.id, apiBase: fake.restBase });
    child = spawn(process.execPath, ['--import', TSX, join(ROOT, 'apps/bot', script)], {
      cwd: dir,
      env: {
        ...process.env,
        DISCORD_TOKEN: fake.token,
        DISCORD_API_BASE: fake.restBase,
        DATABASE_URL: '',
        BLENDFARM_DATA_DIR: join(dir, 'pglite'),
        ...env(dir),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
    while (!ready(output, fake)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`apps/bot/${script} did not come up:\n${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    fake,
    dir,
    child,
    get output() {
      return output;
    },
    shardPids,
    stop,
  };
}
