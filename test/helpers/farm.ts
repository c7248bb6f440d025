// The common set-up of tests on a farm database: for one describe block, a fresh test database on one back end,
// opened, with a farm context (test configuration plus the block's overrides), dropped afterwards.
import { afterAll, beforeAll } from 'vitest';
import type { FarmDb } from '../../db/client.ts';
import type { FarmConfigOverrides, FarmContext } from '../../farm/config.ts';
import { type Backend, createTestDatabase, farmContext, type TestDatabase } from './db.ts';

export interface TestFarm {
  testDb: TestDatabase;
  db: FarmDb;
  farm: FarmContext;
}

/**
 * Registers beforeAll/afterAll hooks in the calling describe block: creates and opens a test
 * database on `backend`, builds a farm context on it with `overrides`, and hands all three to
 * `ready` (which may do further set-up); the database is dropped after the block.
 */
export function useTestFarm(backend: Backend, overrides: FarmConfigOverrides, ready: (t: TestFarm) => unknown): void {
  let testDb: TestDatabase | undefined;
  beforeAll(async () => {
    testDb = await createTestDatabase(backend);
    const db = await testDb.open();
    await ready({ testDb, db, farm: farmContext(db, overrides) });
  });
  afterAll(async () => {
    await testDb?.drop();
  });
}
