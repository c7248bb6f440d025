/**
 * `npm run start:sharded` as processes: the ShardingManager asks the fake Discord (at
 * DISCORD_API_BASE, not discord.com) how many shards to run, starts one bot process per shard on
 * one fresh Postgres, and each server's /blend is answered by the process whose gateway session
 * carries that server; a render worker in this process finishes the jobs and the bot posts both
 * videos. SIGTERM stops the manager and every shard process; a shard that exits is started again;
 * shards stop by themselves when the manager is killed. Start-up failures are one line.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows, type FarmDb } from '../../../db/client.ts';
import { decodeFakeVideo, FakeRenderer } from '../../../farm/fake-renderer.ts';
import { FarmWorker } from '../../../farm/index.ts';
import { type FakeDiscord, type InteractionHandle, startFakeDiscord } from '../../fake-discord/index.ts';
import { type BotProcess, isRunning, startBotProcess } from '../../helpers/bot-process.ts';
import { ROOT, TSX } from '../../helpers/cli.ts';
import { createTestDatabase, farmContext, GENEROUS_BUDGET, TEST_PG_URL, type TestDatabase } from '../../helpers/db.ts';

// Generous limits throughout: a 2-core CI machine starts each shard process (tsx, migrations,
// login) in seconds, and the shards start one after another.
const SHARDS = 2;
/** Server ids on shard 0 and shard 1: Discord routes a server to shard (id >> 22) % count. */
const SERVER_ON = [String(300_000_000_000n << 22n), String(300_000_000_001n << 22n)];

let testDb: TestDatabase;
let db: FarmDb;
let bot: BotProcess | undefined;
let worker: FarmWorker | undefined;

const sessionsUp = (fake: FakeDiscord) =>
  fake.gateway
    .liveSessions()
    .map((s) => s.shard.join('/'))
    .sort()
    .join(' ') === '0/2 1/2';

// One fresh Postgres database: the shard processes migrate it at start-up.
beforeAll(async () => {
  testDb = await createTestDatabase('postgres');
});

afterAll(async () => {
  await testDb?.drop();
});

describe('npm run start:sharded', () => {
  beforeAll(async () => {
    bot = await startBotProcess('blendfarm-sharded-', () => ({ ...testDb.env, BLENDFARM_HTTP_PORT: 'off', BLENDFARM_LOG_FORMAT: 'json' }), {
      script: 'shards.ts',
      discord: {
        guilds: SERVER_ON.map((id, shard) => ({ id, name: `Server on shard ${shard}`, channels: ['renders'] })),
        recommendedShards: SHARDS,
        maxConcurrency: SHARDS,
      },
      // Both gateway sessions open and both processes done starting (job messages are delivered
      // once a process says it logged in).
      ready: (output, fake) => sessionsUp(fake) && (output.match(/logged in as/g) ?? []).length === SHARDS,
      readyTimeoutMs: 240_000,
    });
    db = await testDb.open();
  }, 300_000);

  afterAll(async () => {
    await worker?.stop('release', 0);
    await bot?.stop();
  });

  it('runs one bot process per recommended shard, each answering its own servers, and stops them all on SIGTERM', async () => {
    const { fake, child } = bot!;
    expect(SERVER_ON.map((id) => fake.gateway.shardOf(id, SHARDS))).toEqual([0, 1]);
    // The shard count came from the fake's GET /gateway/bot, and each process identified as its shard.
    expect(fake.requests.some((r) => r.method === 'GET' && r.path === '/gateway/bot')).toBe(true);
    expect(bot!.output).toMatch(/2 shard\(s\) \(2 recommended by http:\/\/127\.0\.0\.1:\d+\/api\); max_concurrency 2/);
    expect(fake.identifies.map((i) => i.shard.join('/')).sort()).toEqual(['0/2', '1/2']);
    const pids = bot!.shardPids();
    expect([...pids.keys()].sort()).toEqual([0, 1]);
    const sessionOfShard = new Map(fake.gateway.liveSessions().map((s) => [s.shard[0], s.id]));

    // A render worker elsewhere (here) on the same database: the bot takes only jobs some worker can run.
    worker = new FarmWorker({ farm: farmContext(db, { budget: GENEROUS_BUDGET }), renderer: new FakeRenderer({ models: ['demo'], maxPixels: 4096 * 4096, steps: 2, stepMs: 5 }), id: 'sharded-test-worker', log: () => {} });
    await worker.start();

    const handles: InteractionHandle[] = [];
    for (const [shard, guildId] of SERVER_ON.entries()) {
      const user = fake.createUser({ username: `user${shard}` });
      fake.addMember(user, { guildId });
      const handle = fake.sendSlashCommand({ commandName: 'blend', user, guildId, options: { from: `shard ${shard} sunset`, to: 'a green forest', quality: 'draft', duration: 1 } });
      // Deferred: answered by the process that got the interaction...
      expect((await handle.waitForResponse(30_000)).type).toBe(5);
      // ...which is the one holding the session of the server's shard: the fake sent it nowhere else.
      const dispatched = fake.gatewayLog.filter((e) => e.direction === 'out' && e.t === 'INTERACTION_CREATE');
      expect(dispatched.at(-1)?.sessionId).toBe(sessionOfShard.get(shard));
      handles.push(handle);
    }

    // One job per server, with that server's id, in the shared database.
    type Row = { id: string | number; guild_id: string; status: string; delivered_at: Date | null; delivery_claimed_by: string | null };
    const jobs = () => queryRows<Row>(db.db, sql`select id, guild_id, status, delivered_at, delivery_claimed_by from jobs order by id`);
    const deadline = Date.now() + 60_000;
    while ((await jobs()).length < SHARDS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const queued = await jobs();
    expect(queued.map((j) => j.guild_id).sort()).toEqual(SERVER_ON);
    const jobOf = (guildId: string) => Number(queued.find((j) => j.guild_id === guildId)!.id);

    // The render worker (elsewhere: here) finishes them; the bot posts each video.
    for (const [shard, handle] of handles.entries()) {
      const done = await handle.waitForOriginal((m) => m.attachments.length > 0, 120_000);
      expect(decodeFakeVideo(done.attachments[0].bytes).jobId).toBe(jobOf(SERVER_ON[shard]));
      expect(decodeFakeVideo(done.attachments[0].bytes).prompts[0]).toBe(`shard ${shard} sunset`);
    }
    // Delivered once each, by one of the shard processes (any of them may: the interaction
    // webhook does not care which gateway session the bot used; the claim makes it exactly once).
    await expect.poll(async () => (await jobs()).every((j) => j.delivered_at !== null), { timeout: 30_000 }).toBe(true);
    // Claimants are bot-HOSTNAME-PID-RANDOM (the shards run on this machine).
    const claimants = new Set([...pids.values()].map((pid) => `bot-${hostname()}-${pid}`));
    for (const job of await jobs()) expect(claimants).toContain(job.delivery_claimed_by?.replace(/-[0-9a-f]{8}$/, ''));
    expect(fake.unhandled).toEqual([]);
    expect(bot!.output).not.toContain(fake.token);

    // SIGTERM: the manager stops its shards, waits for them, and exits 0; nothing is left running.
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    expect((await exited)[0]).toBe(0);
    for (const pid of pids.values()) expect(isRunning(pid)).toBe(false);
    expect(fake.gateway.liveSessions()).toEqual([]);
  }, 300_000);
});

describe('npm run start:sharded when a process dies', () => {
  it('starts a shard that exited again, and its shards stop by themselves when the manager is killed', async () => {
    // One shard (BLENDFARM_SHARDS), although two are recommended.
    const one = await startBotProcess('blendfarm-sharded-kill-', () => ({ ...testDb.env, BLENDFARM_SHARDS: '1', BLENDFARM_HTTP_PORT: 'off', BLENDFARM_LOG_FORMAT: 'json' }), {
      script: 'shards.ts',
      discord: { recommendedShards: 2 },
      ready: (output) => /all 1 shard\(s\) are connected/.test(output) && /logged in as/.test(output),
      readyTimeoutMs: 120_000,
    });
    try {
      expect(one.output).toMatch(/1 shard\(s\) \(BLENDFARM_SHARDS; 2 recommended by http:.*\n.*fewer shards than recommended/);
      expect(one.fake.identifies.map((i) => i.shard)).toEqual([[0, 1]]);
      const first = one.shardPids().get(0)!;
      process.kill(first, 'SIGKILL');
      // The manager says so and starts it again after a pause (5 s for a first exit).
      await expect.poll(() => one.output, { timeout: 60_000 }).toMatch(/shard 0 was killed by SIGKILL \(its output is above\); starting it again in 5 s/);
      await expect.poll(() => one.shardPids().get(0), { timeout: 60_000 }).not.toBe(first);
      const second = one.shardPids().get(0)!;
      await expect.poll(() => one.output.split(/shard 0 of 1 started/).at(-1), { timeout: 120_000 }).toMatch(/shard 0 is connected to the gateway/);

      // The manager killed outright: the shard notices its manager is gone and shuts down cleanly.
      const exited = once(one.child, 'exit');
      one.child.kill('SIGKILL');
      await exited;
      await expect.poll(() => isRunning(second), { timeout: 60_000 }).toBe(false);
      expect(one.output).toMatch(/shard manager gone: stopping/);
      expect(one.output).not.toMatch(/^\s+at /m);
    } finally {
      await one.stop();
    }
  }, 400_000);
});

describe('npm run start:sharded start-up failures', () => {
  const run = promisify(execFile);
  /** Runs apps/bot/shards.ts in `cwd` with `env` and resolves with its exit code and output. */
  async function startSharded(env: Record<string, string>): Promise<{ code: number; output: string }> {
    try {
      const { stdout, stderr } = await run(process.execPath, ['--import', TSX, join(ROOT, 'apps/bot/shards.ts')], { cwd: ROOT, env: { ...process.env, DEBUG: '', ...env }, timeout: 120_000 });
      return { code: 0, output: stdout + stderr };
    } catch (error) {
      const e = error as { code: number; stdout: string; stderr: string };
      return { code: e.code, output: e.stdout + e.stderr };
    }
  }
  let fake: FakeDiscord;
  beforeAll(async () => {
    fake = await startFakeDiscord({ recommendedShards: 1 });
  });
  afterAll(() => fake?.close());

  it('says in one line that the API refused the token', async () => {
    const result = await startSharded({ DISCORD_TOKEN: 'not.the.token', DISCORD_API_BASE: fake.restBase, DATABASE_URL: TEST_PG_URL });
    expect(result.code).toBe(1);
    expect(result.output.trim().split('\n')).toEqual([expect.stringMatching(/^error: the Discord API at http:\/\/127\.0\.0\.1:\d+\/api refused DISCORD_TOKEN \(401 Unauthorized\): /)]);
    expect(result.output).not.toContain('not.the.token');
  });

  it('stops with one line of its own when a shard process cannot start', async () => {
    const missing = new URL(TEST_PG_URL);
    missing.pathname = '/blendfarm_no_such_database';
    const result = await startSharded({ DISCORD_TOKEN: fake.token, DISCORD_API_BASE: fake.restBase, DATABASE_URL: missing.toString(), BLENDFARM_HTTP_PORT: 'off' });
    expect(result.code).toBe(1);
    // The shard's own error, then the manager's one line; no stack trace.
    expect(result.output).toMatch(/error: Could not open Postgres .*blendfarm_no_such_database/);
    expect(result.output).toMatch(/^error: shard 0 exited before it connected to the gateway \(its error is above\); the other shards are being stopped\.$/m);
    expect(result.output).not.toMatch(/^\s+at /m);
    expect(result.output).not.toContain(fake.token);
  });
});
