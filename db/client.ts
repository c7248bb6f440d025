// One handle type for both storage back ends:
//   DATABASE_URL set   -> node-postgres Pool (many processes, many machines)
//   DATABASE_URL unset -> embedded PGlite in a local data directory (zero setup, one process)
// Farm code only sees `FarmDb`: a drizzle database plus LISTEN support and close().
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import type { ExtractTablesWithRelations, SQL } from 'drizzle-orm';
import pg from 'pg';
import { migratePglite, migratePostgres } from './migrate.ts';
import { type DataDirLock, lockDataDir } from './pglite-lock.ts';
import { schema } from './schema.ts';

export type Schema = typeof schema;
export type Database = PgDatabase<PgQueryResultHKT, Schema>;
export type Transaction = PgTransaction<PgQueryResultHKT, Schema, ExtractTablesWithRelations<Schema>>;
/** Anything that can run a query: the database itself or an open transaction. */
export type Queryable = Database | Transaction;

export const DEFAULT_PGLITE_DIR = './data/pglite';
/** `BLENDFARM_DATA_DIR=memory://` keeps PGlite in memory (tests, throwaway runs). */
export const IN_MEMORY = 'memory://';

export type NotificationHandler = (payload: string) => void;
export type Unlisten = () => Promise<void>;

export interface FarmDb {
  readonly kind: 'postgres' | 'pglite';
  readonly db: Database;
  /** Redacted URL or data directory, for logs and `farm status`. */
  readonly location: string;
  /** Subscribe to a NOTIFY channel (Postgres: a dedicated connection; PGlite: in-process). */
  listen(channel: string, handler: NotificationHandler): Promise<Unlisten>;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** Postgres connection string; defaults to DATABASE_URL. Empty/absent selects PGlite. */
  url?: string;
  /** PGlite data directory; defaults to BLENDFARM_DATA_DIR, then ./data/pglite. */
  dataDir?: string;
  /** Apply pending migrations (default true). */
  migrate?: boolean;
  /** node-postgres pool size (default 10). */
  poolSize?: number;
}

export async function openDatabase(options: OpenDatabaseOptions = {}): Promise<FarmDb> {
  const url = options.url ?? process.env.DATABASE_URL;
  if (url) return openPostgres(url, options);
  return openPglite(options.dataDir ?? process.env.BLENDFARM_DATA_DIR ?? DEFAULT_PGLITE_DIR, options);
}

/** Runs a raw statement and returns its rows, whichever driver is underneath. */
export async function queryRows<T>(q: Queryable, statement: SQL): Promise<T[]> {
  const result = (await q.execute(statement)) as unknown as { rows: T[] };
  return result.rows;
}

export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'postgres (unparseable DATABASE_URL)';
  }
}

async function openPostgres(url: string, options: OpenDatabaseOptions): Promise<FarmDb> {
  const pool = new pg.Pool({ connectionString: url, max: options.poolSize ?? 10 });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', (error) => console.error(`[db] idle Postgres connection failed: ${error.message}`));
  try {
    if (options.migrate !== false) await migratePostgres(pool);
  } catch (error) {
    await pool.end().catch(() => {});
    throw new Error(`Could not open Postgres at ${redactUrl(url)}: ${(error as Error).message}`, { cause: error });
  }
  const listener = new PostgresListener(url);
  return {
    kind: 'postgres',
    db: drizzlePg({ client: pool, schema }) as unknown as Database,
    location: redactUrl(url),
    listen: (channel, handler) => listener.listen(channel, handler),
    async close() {
      await listener.close();
      await pool.end();
    },
  };
}

async function openPglite(dataDir: string, options: OpenDatabaseOptions): Promise<FarmDb> {
  const inMemory = dataDir === IN_MEMORY;
  const resolved = inMemory ? IN_MEMORY : path.resolve(dataDir);
  const lock: DataDirLock | undefined = inMemory ? undefined : lockDataDir(resolved);
  let client: PGlite;
  try {
    client = await PGlite.create(inMemory ? undefined : resolved);
    if (options.migrate !== false) await migratePglite(client);
  } catch (error) {
    lock?.release();
    throw error;
  }
  return {
    kind: 'pglite',
    db: drizzlePglite({ client, schema }) as unknown as Database,
    location: inMemory ? 'PGlite (in memory)' : `PGlite ${resolved}`,
    async listen(channel, handler) {
      const unlisten = await client.listen(channel, handler);
      return async () => {
        if (!client.closed) await unlisten();
      };
    },
    async close() {
      try {
        if (!client.closed) await client.close();
      } finally {
        lock?.release();
      }
    },
  };
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * One dedicated connection per process for LISTEN (a pooled connection could be handed to a
 * query mid-transaction). It reconnects after errors and re-subscribes its channels; NOTIFYs
 * sent while it was down are lost, so consumers treat events as hints and read rows for truth.
 */
class PostgresListener {
  private client: pg.Client | undefined;
  private connecting: Promise<pg.Client> | undefined;
  private readonly handlers = new Map<string, Set<NotificationHandler>>();
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;

  constructor(private readonly url: string) {}

  async listen(channel: string, handler: NotificationHandler): Promise<Unlisten> {
    let set = this.handlers.get(channel);
    const first = !set;
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
    }
    set.add(handler);
    const client = await this.connect();
    if (first) await client.query(`LISTEN ${quoteIdent(channel)}`);
    return async () => {
      const current = this.handlers.get(channel);
      if (!current?.delete(handler) || current.size > 0) return;
      this.handlers.delete(channel);
      if (this.client && !this.closed) await this.client.query(`UNLISTEN ${quoteIdent(channel)}`).catch(() => {});
    };
  }

  private connect(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= (async () => {
      const client = new pg.Client({ connectionString: this.url });
      client.on('notification', (message) => {
        for (const handler of this.handlers.get(message.channel) ?? []) handler(message.payload ?? '');
      });
      client.on('error', (error) => this.lost(client, error));
      client.on('end', () => this.lost(client));
      await client.connect();
      for (const channel of this.handlers.keys()) await client.query(`LISTEN ${quoteIdent(channel)}`);
      this.client = client;
      return client;
    })().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private lost(client: pg.Client, error?: Error): void {
    if (this.client !== client || this.closed) return;
    this.client = undefined;
    if (error) console.error(`[db] LISTEN connection lost (${error.message}); reconnecting`);
    client.end().catch(() => {});
    const retry = (): void => {
      this.reconnectTimer = undefined;
      if (this.closed || this.handlers.size === 0) return;
      this.connect().catch(() => {
        this.reconnectTimer = setTimeout(retry, 1000);
      });
    };
    this.reconnectTimer = setTimeout(retry, 200);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const client = this.client ?? (await this.connecting?.catch(() => undefined));
    this.client = undefined;
    await client?.end().catch(() => {});
  }
}
