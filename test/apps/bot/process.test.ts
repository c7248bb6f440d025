/**
 * `npm start` as a process: bot + embedded PGlite + a render worker (engine in a thread) in one
 * process, configured only through the environment, talking to the fake Discord.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startFakeDiscord, buttonsOf, type FakeDiscord } from '../../fake-discord/index.ts';
import { deployCommands } from '../../../apps/bot/deploy-commands.ts';
import { probeVideo } from '../../../engine/video/probe.ts';
import { testModelDir } from '../../../models/paths.ts';

const ROOT = new URL('../../..', import.meta.url).pathname;
const TSX = pathToFileURL(join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;

let fake: FakeDiscord;
let dir: string;
let child: ChildProcess;
let output = '';

beforeAll(async () => {
  fake = await startFakeDiscord({ guilds: [{ name: 'Blendfarm', channels: ['renders'] }] });
  dir = await mkdtemp(join(tmpdir(), 'blendfarm-start-'));
  await deployCommands({ token: fake.token, guildId: fake.guild().id, apiBase: fake.restBase });
  child = spawn(process.execPath, ['--import', TSX, join(ROOT, 'apps/bot/main.ts')], {
    cwd: dir,
    env: {
      ...process.env,
      DISCORD_TOKEN: fake.token,
      DISCORD_API_BASE: fake.restBase,
      DATABASE_URL: '',
      BLENDFARM_DATA_DIR: join(dir, 'pglite'),
      BLENDFARM_MODEL_DIR: testModelDir('demo'),
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
});

afterAll(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await fake?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('npm start (one-process mode)', () => {
  it('answers /blend with a finished video from its own worker, then shuts down cleanly on SIGTERM', async () => {
    const alice = fake.createUser({ username: 'alice' });
    fake.addMember(alice);
    const handle = fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: 'a red sunset', to: 'a green forest', quality: 'draft', duration: 1 } });
    expect((await handle.waitForResponse()).type).toBe(5);
    const done = await handle.waitForOriginal((m) => m.attachments.length > 0, 90_000);
    expect((await probeVideo(done.attachments[0].bytes)).frames).toBe(12);
    expect(buttonsOf(done).map((b) => b.customId?.split(':')[1])).toEqual(['upscale', 'reroll', 'extend']);
    expect(output).toMatch(/1 local render worker\(s\) on cpu/);

    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
  });
});
