// Database outages (issue 9, item 7): with the network to Postgres blackholed, queries fail
// after the query timeout instead of hanging, new connections give up after the connect
// timeout, the LISTEN connection notices and comes back, and the log says one line when the
// database is lost (with the cause) and one when it answers again — not a line per failure.
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FarmDb, openDatabase } from '../../db/client.ts';
import { isConnectionError } from '../../db/errors.ts';
import { OutageLog } from '../../db/outage.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { type FlakyProxy, proxyInFrontOf } from '../helpers/flaky-proxy.ts';

describe('a Postgres outage', () => {
  let testDb: TestDatabase;
  let proxy: FlakyProxy;
  let db: FarmDb;
  const lines: string[] = [];
  const notes: string[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    const viaProxy = await proxyInFrontOf(testDb.url!);
    proxy = viaProxy.proxy;
    db = await openDatabase({
      url: viaProxy.url,
      poolSize: 2,
      timeouts: { connectTimeoutMs: 500, queryTimeoutMs: 500, keepAliveSeconds: 1 },
      log: (line) => lines.push(line),
    });
    await db.listen('outage_test', (payload) => notes.push(payload));
  });
  afterAll(async () => {
    await db?.close().catch(() => {});
    await proxy?.close();
    await testDb?.drop();
  });

  async function untilAnswers(): Promise<void> {
    for (let i = 0; i < 200; i++) {
      if (await db.db.execute(sql`select 1`).then(() => true, () => false)) return;
      await sleep(100);
    }
    throw new Error('the database did not answer again');
  }

  it('fails queries instead of hanging, logs the outage once with its cause, and once when it is back', async () => {
    await db.db.execute(sql`select 1`);
    expect(lines).toEqual([]);

    proxy.blackhole();
    // Queries on open connections and on new ones: each fails (by the timeouts) rather than hangs.
    const errors: unknown[] = [];
    for (let i = 0; i < 8; i++) errors.push(await db.db.execute(sql`select pg_sleep(0)`).then(() => undefined, (e: unknown) => e));
    expect(errors.every((e) => e instanceof Error)).toBe(true);
    expect(errors.every((e) => isConnectionError(e))).toBe(true);
    // The LISTEN connection's health check (every keepAliveSeconds) fails too, quietly.
    await sleep(2500);

    proxy.restore();
    await untilAnswers();
    const lost = lines.filter((l) => l.includes('cannot reach the database'));
    const back = lines.filter((l) => l.includes('answers again, after'));
    expect(lost).toHaveLength(1);
    expect(back).toHaveLength(1);
    expect(lines).toHaveLength(2);
    // The cause is named: the driver's timeout message.
    expect(lost[0]).toMatch(/timeout/i);
    expect(back[0]).toMatch(/failed operation/);

    // LISTEN came back by itself: a NOTIFY sent now arrives.
    for (let i = 0; i < 100 && !notes.includes('after'); i++) {
      await db.db.execute(sql`select pg_notify('outage_test', 'after')`);
      await sleep(100);
    }
    expect(notes).toContain('after');
    expect(lines).toHaveLength(2);
  });

  it('names a refused connection by its code', async () => {
    const refusedLines: string[] = [];
    const refused = await openDatabase({ url: 'postgres://postgres@127.0.0.1:1/nothing', migrate: false, timeouts: { connectTimeoutMs: 500 }, log: (l) => refusedLines.push(l) });
    const errors = [];
    for (let i = 0; i < 5; i++) errors.push(await refused.db.execute(sql`select 1`).then(() => undefined, (e: unknown) => e));
    await refused.close();
    expect(errors.every((e) => isConnectionError(e))).toBe(true);
    expect(refusedLines).toHaveLength(1);
    expect(refusedLines[0]).toContain('ECONNREFUSED');
  });
});

describe('OutageLog', () => {
  it('says the outage where faults go and the recovery where news goes (a worker logs it at info, not as an error)', () => {
    const faults: string[] = [];
    const news: string[] = [];
    const outage = new OutageLog('postgres://db', (l) => faults.push(l), (l) => news.push(l));
    outage.ok();
    outage.failed(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    outage.failed(new Error('again'));
    expect(outage.down).toBe(true);
    outage.ok();
    expect(faults).toHaveLength(1);
    expect(faults[0]).toMatch(/^\[db\] cannot reach the database at postgres:\/\/db \(.*ECONNREFUSED.*\); a line here says when it answers again, if this process keeps running$/);
    expect(news).toEqual([expect.stringMatching(/^\[db\] the database at postgres:\/\/db answers again, after \d+\.\d s and 2 failed operation\(s\)$/)]);
  });
});
