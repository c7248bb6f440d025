/**
 * A failed delivery's retry waits on the messenger's monotonic clock (bot/delivery.ts), not the
 * wall clock: an NTP step of this machine's clock an hour back neither freezes the retry for an
 * hour nor, an hour ahead, gives the delivery up at once. One farm (PGlite), a finished job with a
 * message, and a stand-in for discord.js's REST client whose edits fail until told otherwise.
 */
import { sql } from 'drizzle-orm';
import type { Client } from 'discord.js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { getJob, type FarmContext } from '../../farm/index.ts';
import { JobMessenger } from '../../bot/delivery.ts';
import { queryRows } from '../../db/client.ts';
import { CHEAP_BLEND, createTestDatabase, farmContext, GENEROUS_BUDGET, type TestDatabase } from '../helpers/db.ts';

const OWNER = '400000000000000002';
const HOUR_MS = 3_600_000;

/** discord.js's REST client as the messenger uses it: each edit recorded, failing while `state.down`. */
function restStub(edits: string[], state: { down: boolean }): Client {
  const rest = {
    async patch(route: string) {
      edits.push(route);
      if (state.down) throw Object.assign(new Error('Service Unavailable'), { status: 503 });
      return {};
    },
    async post() {
      return { id: '900000000000000002' };
    },
    async get(route: string) {
      return { id: route.split('/').pop(), name: 'Harbour Club' };
    },
  };
  return { rest, application: { id: '800000000000000002' }, user: { id: '800000000000000002' }, guilds: { cache: new Map() } } as unknown as Client;
}

let testDb: TestDatabase;
let farm: FarmContext;
const messengers: JobMessenger[] = [];

/** A failed job with its message, finished just now. */
async function failedJob(): Promise<number> {
  await farm.db.db.execute(sql`insert into users (id) values (${OWNER}) on conflict do nothing`);
  const params = JSON.stringify({ ...CHEAP_BLEND, model: 'demo' });
  const [row] = await queryRows<{ id: number }>(
    farm.db.db,
    sql`insert into jobs (kind, user_id, guild_id, channel_id, message_id, params, model, pixels, status, error, user_error, created_at, started_at, finished_at)
        values ('blend', ${OWNER}, '600000000000000002', '700000000000000002', '500000000000000002', ${params}::jsonb, 'demo', 4096, 'failed',
                'the render broke', 'The render failed.', now(), now(), now())
        returning id`,
  );
  return Number(row.id);
}

/** This machine's wall clock stepped by `stepMs` from now on. */
function wallClockStepped(stepMs: number): void {
  const real = Date.now.bind(Date);
  vi.spyOn(Date, 'now').mockImplementation(() => real() + stepMs);
}

beforeAll(async () => {
  testDb = await createTestDatabase('pglite');
  farm = farmContext(await testDb.open(), { budget: GENEROUS_BUDGET });
}, 60_000);

afterEach(() => {
  vi.restoreAllMocks();
});

afterAll(async () => {
  for (const m of messengers) await m.stop();
  await testDb?.drop();
});

describe('delivery retries on the monotonic clock', () => {
  it('a failed delivery is tried again once its wait has passed on the monotonic clock, though the wall clock stepped an hour back', async () => {
    const jobId = await failedJob();
    const edits: string[] = [];
    const discord = { down: true };
    let monotonic = 10_000;
    const logs: string[] = [];
    const m = new JobMessenger(restStub(edits, discord), farm, { log: (l) => logs.push(l), retryDelayMs: 1_000, claimant: 'clock-a', monotonicNow: () => monotonic });
    messengers.push(m);
    await m.deliver(jobId);
    expect(edits).toHaveLength(1);
    expect((await getJob(farm, jobId))!.deliveredAt).toBeNull();

    wallClockStepped(-HOUR_MS);
    discord.down = false;
    // Within the wait: not tried yet.
    await m.sweep();
    await vi.waitFor(() => expect(edits).toHaveLength(1));
    monotonic += 1_001;
    await m.sweep();
    await vi.waitFor(async () => expect((await getJob(farm, jobId))!.deliveredAt).not.toBeNull());
    expect(edits).toHaveLength(2);
  });

  it('a wall clock stepped an hour ahead does not hurry the retry', async () => {
    const jobId = await failedJob();
    const edits: string[] = [];
    const m = new JobMessenger(restStub(edits, { down: true }), farm, { log: () => {}, retryDelayMs: 60_000, claimant: 'clock-b', monotonicNow: () => 10_000 });
    messengers.push(m);
    await m.deliver(jobId);
    expect(edits).toHaveLength(1);
    wallClockStepped(HOUR_MS);
    const tries = vi.spyOn(m, 'deliver');
    await m.sweep(); // lists the job, still within its wait
    expect(tries).not.toHaveBeenCalled();
  });

  it('a wall clock stepped an hour ahead does not give a delivery up that has failed for a moment', async () => {
    const jobId = await failedJob();
    const edits: string[] = [];
    const logs: string[] = [];
    const m = new JobMessenger(restStub(edits, { down: true }), farm, { log: (l) => logs.push(l), retryDelayMs: 60_000, giveUpAfterMs: 30 * 60_000, claimant: 'clock-c', monotonicNow: () => 10_000 });
    messengers.push(m);
    await m.deliver(jobId);
    wallClockStepped(HOUR_MS);
    await m.deliver(jobId); // a job event meanwhile: it fails again, a moment after the first failure
    expect(edits).toHaveLength(2);
    const job = await getJob(farm, jobId);
    expect(job!.deliveredAt).toBeNull();
    expect(logs.filter((l) => /gave up|giving up|given up|undeliverable/i.test(l))).toEqual([]);
  });
});
