// One handle type for both storage back ends:
//   DATABASE_URL set   -> node-postgres Pool (many processes, many machines)
//   DATABASE_URL unset -> embedded PGlite in a local data directory (zero setup, one process)
// Farm code only sees `FarmDb`: a drizzle database plus LISTEN support and close().
import fs from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import type { ExtractTablesWithRelations, SQL } from 'drizzle-orm';
import pg from 'pg';
import { readSetting } from '../config/index.ts';
import { redactConnectionString } from '../config/redact.ts';
import { describeDbError, isConnectionError } from './errors.ts';
import { type LogLine, OutageLog } from './outage.ts';
import { type AppliedMigrations, migratePglite, migratePostgres } from './migrate.ts';
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
  /** The drizzle-kit migrations to apply (default MIGRATIONS_FOLDER, migrations/); tests bring their own. */
  migrationsFolder?: string;
  /** node-postgres pool size (default 10). */
  poolSize?: number;
  /** Postgres client timeouts; each defaults to its setting (BLENDFARM_DB_*). */
  timeouts?: Partial<DbTimeouts>;
  /** Where outage lines go (default: stderr). */
  log?: LogLine;
  /**
   * Where news goes, not faults: the line naming the migrations an upgrade applied, and the line
   * saying the database answers again after an outage (a process with a logger passes its info
   * level). Default: `log` (stderr, which keeps a CLI's stdout for its answer).
   */
  info?: LogLine;
}

/** Client-side limits for Postgres connections (settings in config/settings.ts). */
export interface DbTimeouts {
  /** Opening a connection (and waiting for a free pooled one). */
  connectTimeoutMs: number;
  /** A query without an answer fails; also the server's statement_timeout and idle_in_transaction_session_timeout. */
  queryTimeoutMs: number;
  /** TCP keep-alive delay; the LISTEN connection checks it is alive this often too. */
  keepAliveSeconds: number;
  /** Pooled connections idle this long are closed. */
  idleTimeoutMs: number;
}

/** The timeouts from the environment (BLENDFARM_DB_*), each falling back to its documented default. */
export function dbTimeoutsFromEnv(env: NodeJS.ProcessEnv = process.env): DbTimeouts {
  return {
    connectTimeoutMs: readSetting('dbConnectTimeoutMs', env)!,
    queryTimeoutMs: readSetting('dbQueryTimeoutMs', env)!,
    keepAliveSeconds: readSetting('dbKeepAliveSeconds', env)!,
    idleTimeoutMs: readSetting('dbIdleTimeoutMs', env)!,
  };
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

type Observer = (error?: unknown) => void;

/**
 * A pg.Client that reports the outcome of every connect and query to `observe`: connection
 * errors mark an outage, anything else (a result, or an error the server sent) that the
 * database answers.
 */
function observedClient(observe: Observer): typeof pg.Client {
  const report = (error: unknown): void => observe(error && isConnectionError(error) ? error : undefined);
  const watch = (args: unknown[], call: (args: unknown[]) => unknown): unknown => {
    const last = args.length - 1;
    const callback = args[last];
    if (typeof callback === 'function') {
      const copy = [...args];
      copy[last] = (error: unknown, ...rest: unknown[]) => {
        report(error);
        return (callback as (...a: unknown[]) => unknown)(error, ...rest);
      };
      return call(copy);
    }
    const result = call(args);
    if (result && typeof (result as Promise<unknown>).then === 'function') (result as Promise<unknown>).then(() => report(undefined), report);
    return result;
  };
  return class ObservedClient extends pg.Client {
    override connect(...args: unknown[]): never {
      return watch(args, (a) => (super.connect as (...x: unknown[]) => unknown)(...a)) as never;
    }
    override query(...args: unknown[]): never {
      return watch(args, (a) => (super.query as (...x: unknown[]) => unknown)(...a)) as never;
    }
  } as unknown as typeof pg.Client;
}

/**
 * The connection migrations run on (one of its own, not the pool's): clientConfig without the
 * query and statement timeouts, as waiting for another process's migration or a migration
 * rewriting a large table may take longer than any query should. A migration statement still
 * waits at most one query timeout for a table lock (lock_timeout): other processes' queries on that
 * table queue behind it meanwhile. Connecting and the idle-in-transaction limit stay bounded.
 */
function migrationClientConfig(url: string, timeouts: DbTimeouts, Client: typeof pg.Client): pg.ClientConfig {
  const { query_timeout: _query, statement_timeout: _statement, idleTimeoutMillis: _idle, ...rest } = clientConfig(url, timeouts, Client);
  return { ...rest, lock_timeout: timeouts.queryTimeoutMs };
}

/** Applies the migrations on a connection of its own (migrationClientConfig), closed afterwards. */
async function migrateOwnConnection(url: string, timeouts: DbTimeouts, Client: typeof pg.Client, options: OpenDatabaseOptions, report: (error: unknown) => void): Promise<AppliedMigrations> {
  const client = new Client(migrationClientConfig(url, timeouts, Client));
  // A connection lost mid-migration must not crash the process: the query under way fails.
  client.on('error', report);
  await client.connect();
  try {
    return await migratePostgres(client, { migrationsFolder: options.migrationsFolder, log: options.info ?? options.log });
  } finally {
    await client.end().catch(() => {});
  }
}

function clientConfig(url: string, timeouts: DbTimeouts, Client: typeof pg.Client): pg.PoolConfig {
  return {
    connectionString: url,
    Client,
    connectionTimeoutMillis: timeouts.connectTimeoutMs,
    query_timeout: timeouts.queryTimeoutMs,
    statement_timeout: timeouts.queryTimeoutMs,
    idle_in_transaction_session_timeout: timeouts.queryTimeoutMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: timeouts.keepAliveSeconds * 1000,
    idleTimeoutMillis: timeouts.idleTimeoutMs,
  };
}

/** One line when opening upgraded the database's schema (AppliedMigrations), to `info` (else the outage log's stream). */
function reportMigrations(applied: AppliedMigrations, location: string, log: LogLine = (line) => console.error(line)): void {
  if (applied.length) log(`[db] upgraded the database at ${location}: applied migration${applied.length === 1 ? '' : 's'} ${applied.join(', ')}`);
}

async function openPostgres(url: string, options: OpenDatabaseOptions): Promise<FarmDb> {
  const timeouts = { ...dbTimeoutsFromEnv(), ...options.timeouts };
  const location = redactConnectionString(url);
  const outage = new OutageLog(location, options.log, options.info ?? options.log);
  const Client = observedClient((error) => (error ? outage.failed(error) : outage.ok()));
  const pool = new pg.Pool({ ...clientConfig(url, timeouts, Client), max: options.poolSize ?? 10 });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', (error) => outage.failed(error));
  // A checked-out client can also lose its connection between two queries of a transaction (the
  // server ends an idle-in-transaction session during an outage): report it, never crash the
  // process; the transaction's next query fails and the client is discarded on release.
  pool.on('connect', (client) => client.on('error', (error) => outage.failed(error)));
  try {
    if (options.migrate !== false) reportMigrations(await migrateOwnConnection(url, timeouts, Client, options, (error) => outage.failed(error)), location, options.info ?? options.log);
  } catch (error) {
    await pool.end().catch(() => {});
    throw new Error(`Could not open Postgres at ${location}: ${describeDbError(error)}`, { cause: error });
  }
  const listener = new PostgresListener(Client, clientConfig(url, timeouts, Client), timeouts, outage);
  return {
    kind: 'postgres',
    db: drizzlePg({ client: pool, schema }) as unknown as Database,
    location,
    listen: (channel, handler) => listener.listen(channel, handler),
    async close() {
      await listener.close();
      // A client stuck in a query that never answers (a dead network) must not hold shutdown
      // forever: wait at most one query timeout for the pool to drain.
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeouts.queryTimeoutMs + 1000)));
      await Promise.race([pool.end().catch(() => {}), bound]);
      clearTimeout(timer);
    },
  };
}

async function openPglite(dataDir: string, options: OpenDatabaseOptions): Promise<FarmDb> {
  const inMemory = dataDir === IN_MEMORY;
  const resolved = inMemory ? IN_MEMORY : path.resolve(dataDir);
  if (!inMemory) prepareDataDir(resolved);
  const lock: DataDirLock | undefined = inMemory ? undefined : lockDataDir(resolved);
  let client: PGlite;
  try {
    client = await PGlite.create(inMemory ? undefined : resolved);
    if (options.migrate !== false) reportMigrations(await migratePglite(client, { migrationsFolder: options.migrationsFolder }), resolved, options.info ?? options.log);
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

/**
 * Start-up check of the PGlite folder: it is created one level at a time (Node's recursive mkdir
 * loops forever under /proc, so `BLENDFARM_DATA_DIR=/proc/x` hung start-up) and a file is written
 * and removed in it, so a folder this process cannot create or write into (read-only, another
 * user's, a pseudo file system) fails at once with the setting's name and what to do, rather than
 * hanging or failing later inside PGlite.
 */
function prepareDataDir(dir: string): void {
  try {
    const missing: string[] = [];
    for (let at = dir; !fs.existsSync(at); at = path.dirname(at)) {
      missing.unshift(at);
      if (path.dirname(at) === at) break;
    }
    for (const folder of missing) fs.mkdirSync(folder);
    if (!fs.statSync(dir).isDirectory()) throw new Error('it is a file, not a folder');
    const probe = path.join(dir, `.blendfarm-write-test-${process.pid}`);
    fs.writeFileSync(probe, '');
    fs.rmSync(probe, { force: true });
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new Error(
      `BLENDFARM_DATA_DIR=${dir}: PGlite cannot write there (${why}). Set BLENDFARM_DATA_DIR to a folder this process may create and write to (default ${DEFAULT_PGLITE_DIR}), or set DATABASE_URL to use Postgres instead.`,
      { cause: error },
    );
  }
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
  private healthTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly Client: typeof pg.Client,
    private readonly config: pg.ClientConfig,
    private readonly timeouts: DbTimeouts,
    private readonly outage: OutageLog,
  ) {}

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
      const client = new this.Client(this.config);
      client.on('notification', (message) => {
        for (const handler of this.handlers.get(message.channel) ?? []) handler(message.payload ?? '');
      });
      client.on('error', (error) => this.lost(client, error));
      client.on('end', () => this.lost(client));
      try {
        await client.connect();
        for (const channel of this.handlers.keys()) await client.query(`LISTEN ${quoteIdent(channel)}`);
      } catch (error) {
        await client.end().catch(() => {});
        throw error;
      }
      this.client = client;
      // An idle connection behind a dead network notices nothing by itself (keep-alive probes
      // take minutes): ask it something now and then, so a dead one is replaced.
      this.healthTimer = setInterval(() => {
        client.query('select 1').catch((error: unknown) => this.lost(client, error));
      }, this.timeouts.keepAliveSeconds * 1000);
      this.healthTimer.unref();
      return client;
    })().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private lost(client: pg.Client, error?: unknown): void {
    if (this.client !== client || this.closed) return;
    this.client = undefined;
    clearInterval(this.healthTimer);
    // The outage log says it once (with the cause); reconnect attempts stay quiet.
    this.outage.failed(error ?? new Error('the LISTEN connection was closed'));
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
    clearInterval(this.healthTimer);
    const client = this.client ?? (await this.connecting?.catch(() => undefined));
    this.client = undefined;
    await client?.end().catch(() => {});
  }
}
