// Database outages (issue 9, item 7): with the network to Postgres blackholed, queries fail
// after the query timeout instead of hanging, new connections give up after the connect
// timeout, the LISTEN connection notices and comes back, and the log says one line when the
// database is lost (with the cause) and one when it answers again — not a line per failure.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FarmDb, openDatabase } from '../../db/client.ts';
import { isConnectionError } from '../../db/errors.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

/**
 * A TCP forwarder to Postgres that can blackhole the network: nothing is delivered in either
 * direction and nothing is refused or reset, as when packets are dropped; the held bytes are
 * delivered on restore, as TCP would retransmit them.
 */
class FlakyProxy {
  private blackholed = false;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private held: Array<[net.Socket, Buffer]> = [];

  constructor(target: { host: string; port: number }) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(target.port, target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => this.sockets.delete(s));
      }
      const forward = (from: net.Socket, to: net.Socket) => from.on('data', (chunk: Buffer) => (this.blackholed ? this.held.push([to, chunk]) : to.write(chunk)));
      forward(client, upstream);
      forward(upstream, client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  blackhole(): void {
    this.blackholed = true;
  }

  restore(): void {
    this.blackholed = false;
    for (const [to, chunk] of this.held) if (!to.destroyed) to.write(chunk);
    this.held = [];
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('a Postgres outage', () => {
  let testDb: TestDatabase;
  let proxy: FlakyProxy;
  let db: FarmDb;
  const lines: string[] = [];
  const notes: string[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    const direct = new URL(testDb.url!);
    proxy = new FlakyProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
    const viaProxy = new URL(testDb.url!);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(await proxy.listen());
    db = await openDatabase({
      url: viaProxy.toString(),
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
