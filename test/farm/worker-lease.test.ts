// A worker is online by its own lease, not the reader's: machines with different
// BLENDFARM_LEASE_SECONDS agree on which workers are online (/queue, model autocomplete, /settings
// defaults, claimWorkerId). The heartbeat's age is set on the database's clock, so nothing waits.
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { queryRows } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { heartbeatWorker, listWorkers, offeredModels, registerWorker, type WorkerIdHolder } from '../../farm/worker-registry.ts';
import { BACKENDS } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

const CAPS = { models: ['idm'], maxPixels: 1024 * 1024, executionProvider: 'test' };

describe.each(BACKENDS)('worker leases on %s', (backend) => {
  let farm: FarmContext;
  useTestFarm(backend, {}, (t) => {
    farm = t.farm;
  });

  /** The same database read by a machine whose BLENDFARM_LEASE_SECONDS is `leaseSeconds`. */
  function machine(leaseSeconds: number): FarmContext {
    return { ...farm, config: { ...farm.config, leaseSeconds, heartbeatSeconds: Math.min(farm.config.heartbeatSeconds, leaseSeconds / 2) } };
  }

  /** A worker registered by a machine with lease `leaseSeconds`, last heartbeat `agoSeconds` ago (database clock). */
  async function workerHeartbeated(id: string, leaseSeconds: number, agoSeconds: number): Promise<string> {
    const instance = randomUUID();
    await registerWorker(machine(leaseSeconds), { id, host: 'm', pid: 1, capabilities: { ...CAPS, models: [`model-${id}`] }, concurrency: 1, instance });
    await farm.db.db.execute(sql`update workers set heartbeat_at = now() - make_interval(secs => ${agoSeconds}::float8) where id = ${id}`);
    return instance;
  }

  async function storedLease(id: string): Promise<number | null> {
    const [row] = await queryRows<{ lease: number | null }>(farm.db.db, sql`select lease_seconds as lease from workers where id = ${id}`);
    return row.lease === null ? null : Number(row.lease);
  }

  async function onlineTo(reader: FarmContext, id: string): Promise<boolean | undefined> {
    return (await listWorkers(reader)).find((w) => w.id === id)?.online;
  }

  it('stores the worker’s own lease in its row, from registration and from each heartbeat', async () => {
    const instance = await workerHeartbeated('w-stored', 90, 0);
    expect(await storedLease('w-stored')).toBe(90);
    const registration = { id: 'w-stored', host: 'm', pid: 1, capabilities: CAPS, concurrency: 1, instance };
    expect(await heartbeatWorker(machine(45), registration)).toBe('held');
    expect(await storedLease('w-stored')).toBe(45);
  });

  it('a worker with a long lease that heartbeated 20 s ago is online to a reader whose lease is 5 s', async () => {
    await workerHeartbeated('w-long', 60, 20);
    expect(await onlineTo(machine(5), 'w-long')).toBe(true);
    expect(await onlineTo(machine(60), 'w-long')).toBe(true);
    expect((await listWorkers(machine(5), { onlineOnly: true })).map((w) => w.id)).toContain('w-long');
    expect((await offeredModels(machine(5))).map((m) => m.id)).toContain('model-w-long');
  });

  it('a worker with a short lease that heartbeated 20 s ago is offline to a reader whose lease is 60 s', async () => {
    await workerHeartbeated('w-short', 5, 20);
    expect(await onlineTo(machine(60), 'w-short')).toBe(false);
    expect((await listWorkers(machine(60), { onlineOnly: true })).map((w) => w.id)).not.toContain('w-short');
  });

  it('a row from before the column existed is judged by the reader’s lease', async () => {
    await workerHeartbeated('w-old', 60, 20);
    await farm.db.db.execute(sql`update workers set lease_seconds = null where id = 'w-old'`);
    expect(await onlineTo(machine(5), 'w-old')).toBe(false);
    expect(await onlineTo(machine(60), 'w-old')).toBe(true);
  });

  it('the id’s holder is live by its own lease, with its heartbeat’s age on the database’s clock', async () => {
    await workerHeartbeated('w-held', 60, 20);
    const other = { id: 'w-held', host: 'n', pid: 2, capabilities: CAPS, concurrency: 1, instance: randomUUID() };
    const holder = (await heartbeatWorker(machine(5), other)) as WorkerIdHolder;
    expect(holder).toMatchObject({ host: 'm', pid: 1, live: true });
    expect(Math.round(holder.heartbeatAgoSeconds)).toBe(20);

    await workerHeartbeated('w-held-short', 5, 20);
    const shortHolder = (await heartbeatWorker(machine(60), { ...other, id: 'w-held-short' })) as WorkerIdHolder;
    expect(shortHolder).toMatchObject({ live: false });
  });
});
