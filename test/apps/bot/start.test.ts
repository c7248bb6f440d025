/** Starting the bot without what it needs: one clear explanation and a non-zero exit. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { ROOT, TSX } from '../../helpers/cli.ts';
import { type FakeDiscord, startFakeDiscord } from '../../fake-discord/index.ts';
import { openDatabase } from '../../../db/client.ts';
import { getJob, submitJob } from '../../../farm/index.ts';
import { CHEAP_BLEND, createTestDatabase, farmContext } from '../../helpers/db.ts';


function run(script: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', TSX, join(ROOT, script)], { cwd: tmpdir(), env: { ...process.env, DISCORD_TOKEN: '', DATABASE_URL: '', ...env }, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('npm start / npm run deploy-commands without a token', () => {
  it('explains how to create a bot application and exits non-zero', async () => {
    for (const script of ['apps/bot/main.ts', 'apps/bot/deploy-commands.ts']) {
      const r = await run(script, {});
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/DISCORD_TOKEN is not set/);
      expect(r.stderr).toMatch(/discord\.com\/developers\/applications/);
      expect(r.stderr).toMatch(/npm run deploy-commands/);
    }
  });

  it('names every bad setting at start-up, without echoing secrets', async () => {
    const r = await run('apps/bot/main.ts', { DISCORD_TOKEN: 'not-a-token', BLENDFARM_MAX_ATTEMPTS: 'zero' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/DISCORD_TOKEN=\(value hidden\) does not look like a bot token/);
    expect(r.stderr).toMatch(/BLENDFARM_MAX_ATTEMPTS="zero" must be a whole number of at least 1/);
    expect(r.stderr).not.toContain('not-a-token');
  });
});

describe('npm start when it cannot log in to Discord', () => {
  // Nothing but the login can fail: an in-memory database, no HTTP server, no worker.
  const QUIET = { BLENDFARM_DATA_DIR: 'memory://', BLENDFARM_HTTP_PORT: 'off', BLENDFARM_LOCAL_WORKERS: '0', DEBUG: '' };
  let fake: FakeDiscord;
  beforeAll(async () => {
    fake = await startFakeDiscord();
  });
  afterAll(() => fake?.close());

  it('says in one line that Discord refused the token, and what to do', async () => {
    const r = await run('apps/bot/main.ts', { ...QUIET, DISCORD_TOKEN: 'not.the.token', DISCORD_API_BASE: fake.restBase });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      `error: the Discord API at ${fake.restBase} refused DISCORD_TOKEN (401 Unauthorized): copy the bot's token again from the developer portal ("Bot" page) into DISCORD_TOKEN.`,
    ]);
    expect(r.stdout + r.stderr).not.toContain('not.the.token');
  });

  it('says in one line that the API cannot be reached, and what to check', async () => {
    const r = await run('apps/bot/main.ts', { ...QUIET, DISCORD_TOKEN: 'MTAx.abcdef.ghijklmnop', DISCORD_API_BASE: 'http://127.0.0.1:1/api' });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      "error: could not reach the Discord API at http://127.0.0.1:1/api (ECONNREFUSED): check DISCORD_API_BASE (unset = Discord's own) and that the API is reachable from here.",
    ]);
  });
});

describe('npm start stopped while it is still logging in', () => {
  // A Discord API that accepts connections and never answers: the login waits.
  let silent: Server;
  let sockets: Socket[] = [];
  beforeAll(async () => {
    silent = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    sockets = [];
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it('SIGTERM hands the local worker\'s running job back and closes the database, exit 0 (it was killed with the job claimed)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bf-start-signal-'));
    const dataDir = join(dir, 'pglite');
    try {
      // A job waiting before the bot starts: its local worker claims it while the login waits.
      const before = await openDatabase({ url: '', dataDir });
      const job = await submitJob(farmContext(before), { kind: 'blend', userId: 'early', params: { ...CHEAP_BLEND, prompts: ['[fake ms=5000] a', 'b'] } });
      await before.close();

      const child = spawn(process.execPath, ['--import', TSX, join(ROOT, 'apps/bot/main.ts')], {
        cwd: dir,
        env: { ...process.env, DISCORD_TOKEN: 'a.b.c', DISCORD_API_BASE: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/api`, DATABASE_URL: '', BLENDFARM_DATA_DIR: dataDir, BLENDFARM_RENDERER: join(ROOT, 'farm/fake-renderer.ts') },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout!.on('data', (d) => (output += d));
      child.stderr!.on('data', (d) => (output += d));
      const exited = once(child, 'exit');
      const deadline = Date.now() + 60_000;
      // Up to the login (the API has a connection), with the job running on the local worker.
      while (sockets.length === 0 || !output.includes(`job ${job.id} claimed`)) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not reach its login with the job running:\n${output}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      child.kill('SIGTERM');
      const [code, signal] = await exited;
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      expect(output).toContain('[main] SIGTERM: stopping');

      const after = await openDatabase({ url: '', dataDir });
      try {
        const row = await getJob(farmContext(after), job.id);
        expect(row?.status).toBe('queued');
      } finally {
        await after.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it('a local worker whose model does not load claims no job on it (as npm run worker), says why, and stops cleanly', async () => {
    // Postgres: the job is submitted from here while npm start runs (PGlite is one process's).
    const testDb = await createTestDatabase('postgres');
    try {
      const child = spawn(process.execPath, ['--import', TSX, join(ROOT, 'apps/bot/main.ts')], {
        cwd: tmpdir(),
        env: {
          ...process.env,
          ...testDb.env,
          DISCORD_TOKEN: 'a.b.c',
          DISCORD_API_BASE: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/api`,
          BLENDFARM_LOCAL_WORKERS: '1',
          BLENDFARM_RENDERER: join(ROOT, 'farm/fake-renderer.ts'),
          BLENDFARM_RENDERER_OPTIONS: JSON.stringify({ warmUpFailures: 1_000 }),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout!.on('data', (d) => (output += d));
      child.stderr!.on('data', (d) => (output += d));
      const exited = once(child, 'exit');
      const deadline = Date.now() + 60_000;
      // Up to the login, with the model's first load failed.
      while (sockets.length === 0 || !output.includes('the model did not load (try 1)')) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not reach its login with the model load failed:\n${output}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(output).toMatch(/\[local workers\] the model did not load \(try 1\): fake model load failure/);
      const db = await testDb.open();
      const job = await submitJob(farmContext(db), { kind: 'blend', userId: 'early', params: { ...CHEAP_BLEND, prompts: ['a', 'b'] } });
      // The local worker polls meanwhile; the job stays queued for a worker whose model loads.
      await new Promise((r) => setTimeout(r, 3_000));
      expect(output).not.toContain(`job ${job.id} claimed`);
      child.kill('SIGTERM');
      const [code, signal] = await exited;
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      const row = await getJob(farmContext(db), job.id);
      expect([row?.status, row?.attempts]).toEqual(['queued', 0]);
    } finally {
      await testDb.drop();
    }
  }, 90_000);
});
