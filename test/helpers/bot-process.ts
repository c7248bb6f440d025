// `npm start` as a child process against the fake Discord: the slash commands deployed, the bot
// (apps/bot/main.ts) started from a temporary folder on an embedded PGlite database in it, and
// waited for until it has logged in.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deployCommands } from '../../apps/bot/deploy-commands.ts';
import { type FakeDiscord, startFakeDiscord } from '../fake-discord/index.ts';
import { ROOT, TSX } from './cli.ts';

export interface BotProcess {
  fake: FakeDiscord;
  /** The process's working folder (its PGlite data lives in pglite/ under it). */
  dir: string;
  child: ChildProcess;
  /** Everything the process has written so far, stdout and stderr together. */
  readonly output: string;
  /** Kills the process if it still runs, closes the fake Discord and removes the folder. */
  stop(): Promise<void>;
}

/**
 * Starts a fake Discord (one guild, "Blendfarm", with a "renders" channel), deploys the commands
 * to it and starts the bot process with `env(dir)` added to its environment; resolves once the
 * bot says it logged in. Fails, cleaning up, if the process exits or is not up within 60 s.
 */
export async function startBotProcess(tmpPrefix: string, env: (dir: string) => Record<string, string>): Promise<BotProcess> {
  const fake = await startFakeDiscord({ guilds: [{ name: 'Blendfarm', channels: ['renders'] }] });
  const dir = await mkdtemp(join(tmpdir(), tmpPrefix));
  let child: ChildProcess | undefined;
  let output = '';
  const stop = async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await deployCommands({ token: fake.token, guildId: fake.guild().id, apiBase: fake.restBase });
    child = spawn(process.execPath, ['--import', TSX, join(ROOT, 'apps/bot/main.ts')], {
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
    const deadline = Date.now() + 60_000;
    while (!/logged in as/.test(output)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not come up:\n${output}`);
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
    stop,
  };
}
