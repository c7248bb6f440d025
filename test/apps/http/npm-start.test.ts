/**
 * `npm start` with its HTTP server, end to end: a /blend from the fake Discord renders on the
 * built-in worker (stand-in renderer), after which /metrics shows the job's wait and render in
 * the histograms and the queue gauge back at zero, /readyz is ready (database and gateway), and
 * stdout is JSON lines with job ids and without the bot token.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deployCommands } from '../../../apps/bot/deploy-commands.ts';
import { type FakeDiscord, startFakeDiscord } from '../../fake-discord/index.ts';
import { sample, until } from './helpers.ts';

const ROOT = new URL('../../..', import.meta.url).pathname;
const TSX = pathToFileURL(join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;

let fake: FakeDiscord;
let dir: string;
let child: ChildProcess;
let output = '';
let base = '';

const lines = () => output.split('\n').filter((l) => l.trim());

beforeAll(async () => {
  fake = await startFakeDiscord({ guilds: [{ name: 'Blendfarm', channels: ['renders'] }] });
  dir = await mkdtemp(join(tmpdir(), 'blendfarm-ops-start-'));
  await deployCommands({ token: fake.token, guildId: fake.guild().id, apiBase: fake.restBase });
  child = spawn(process.execPath, ['--import', TSX, join(ROOT, 'apps/bot/main.ts')], {
    cwd: dir,
    env: {
      ...process.env,
      DISCORD_TOKEN: fake.token,
      DISCORD_API_BASE: fake.restBase,
      DATABASE_URL: '',
      BLENDFARM_DATA_DIR: join(dir, 'pglite'),
      BLENDFARM_RENDERER: join(ROOT, 'farm/fake-renderer.ts'),
      BLENDFARM_HTTP_PORT: '0',
      BLENDFARM_LOG_FORMAT: 'auto',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  await until(() => {
    if (child.exitCode !== null) throw new Error(`npm start exited:\n${output}`);
    return /logged in as/.test(output);
  });
  const http = lines()
    .map((l) => JSON.parse(l) as { url?: string })
    .find((l) => l.url);
  base = http!.url!;
});

afterAll(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await fake?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('npm start with BLENDFARM_HTTP_PORT', () => {
  it('shows a rendered /blend in the metrics, is ready, and logs JSON lines with job ids', async () => {
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const alice = fake.createUser({ username: 'alice' });
    fake.addMember(alice);
    const handle = fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: 'a red sunset', to: 'a green forest', quality: 'draft', duration: 1 } });
    await handle.waitForOriginal((m) => m.attachments.length > 0, 60_000);

    let text = '';
    await until(async () => {
      text = await (await fetch(`${base}/metrics`)).text();
      return sample(text, 'blendfarm_job_render_seconds_count', { kind: 'blend' }) === 1;
    });
    expect(sample(text, 'blendfarm_job_wait_seconds_count', { kind: 'blend' })).toBe(1);
    // The bot's default model is the demo model; its queue is drained.
    expect(sample(text, 'blendfarm_jobs', { status: 'queued', model: 'demo' })).toBe(0);
    expect(sample(text, 'blendfarm_jobs', { status: 'running', model: 'demo' })).toBe(0);
    expect(sample(text, 'blendfarm_worker_attempt_seconds_count', { kind: 'blend', outcome: 'ok' })).toBe(1);
    expect(sample(text, 'blendfarm_discord_rest_429_total', { scope: 'user' })).toBe(0);
    const ready = (await (await fetch(`${base}/readyz`)).json()) as { ready: boolean; checks: Record<string, string> };
    expect(ready).toEqual({ ready: true, role: 'bot', checks: { database: 'ok', discord: 'ok' } });

    const events = lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.find((e) => e.event === 'done' && typeof e.jobId === 'number')).toMatchObject({ kind: 'blend', attempt: 1 });
    expect(output).not.toContain(fake.token);

    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
  });
});
