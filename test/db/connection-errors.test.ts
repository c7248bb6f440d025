// Which database errors are outages (isConnectionError: /readyz reasons, the outage log, quiet
// retries) and which are refused statements, from errors a real Postgres sends: a database with
// allow_connections = false (55000) and a terminated session (57P01) are outages; the same
// SQLSTATE 55000 for a statement (currval before nextval) is not.
import pg from 'pg';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FarmDb, openDatabase } from '../../db/client.ts';
import { describeDbError, isConnectionError } from '../../db/errors.ts';
import { TEST_PG_URL } from '../helpers/db.ts';

const errorOf = (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e);

describe('cannot-connect-now errors from Postgres', () => {
  const name = `blendfarm_noconn_${process.pid}_${Date.now().toString(36)}`;
  let admin: pg.Client;
  let db: FarmDb;
  const lines: string[] = [];

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: TEST_PG_URL });
    await admin.connect();
    await admin.query(`create database "${name}"`);
    const url = new URL(TEST_PG_URL);
    url.pathname = `/${name}`;
    db = await openDatabase({ url: url.toString(), migrate: false, poolSize: 1, timeouts: { connectTimeoutMs: 2000 }, log: (l) => lines.push(l) });
  });
  afterAll(async () => {
    await db?.close().catch(() => {});
    await admin.query(`alter database "${name}" allow_connections true`).catch(() => {});
    await admin.query(`drop database if exists "${name}" with (force)`);
    await admin.end();
  });

  it('a statement refused with 55000 is no outage', async () => {
    await db.db.execute(sql`create sequence s`);
    const refused = await errorOf(db.db.execute(sql`select currval('s')`));
    expect(describeDbError(refused)).toBe('55000: currval of sequence "s" is not yet defined in this session');
    expect(isConnectionError(refused)).toBe(false);
    expect(lines).toEqual([]);
  });

  it('a terminated session (57P01) and a database not accepting connections (55000) are outages, logged once', async () => {
    await admin.query(`alter database "${name}" allow_connections false`);
    // Ends the handle's open session: its next query fails with 57P01 or a closed connection, and new ones are refused with 55000.
    await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`, [name]);
    const errors: unknown[] = [];
    for (let i = 0; i < 4; i++) errors.push(await errorOf(db.db.execute(sql`select 1`)));
    expect(errors.every((e) => e instanceof Error)).toBe(true);
    expect(errors.every((e) => isConnectionError(e))).toBe(true);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/cannot reach the database/);

    // The new connection's refusal itself, straight from the driver.
    const direct = new pg.Client({ connectionString: new URL(`/${name}`, TEST_PG_URL).toString() });
    const refused = (await errorOf(direct.connect())) as { code?: string; message?: string };
    await direct.end().catch(() => {});
    expect(refused).toMatchObject({ code: '55000' });
    expect(refused.message).toMatch(/not currently accepting connections/);
    expect(isConnectionError(refused)).toBe(true);

    await admin.query(`alter database "${name}" allow_connections true`);
    await db.db.execute(sql`select 1`);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/answers again/);
  });

  it('shutdown and start-up codes count, other codes do not', () => {
    for (const code of ['57P01', '57P02', '57P03', '53300', '08006']) expect(isConnectionError(Object.assign(new Error('x'), { code })), code).toBe(true);
    for (const code of ['55000', '55P03', '57014', '23505']) expect(isConnectionError(Object.assign(new Error('x'), { code })), code).toBe(false);
  });
});
