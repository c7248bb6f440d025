// Secrets in logs (issue 9, item 4): a failed query is logged by its cause's code and message,
// never with its parameters (an interaction token among them); every form of database password
// is hidden wherever a connection string is printed (`farm status`, the worker's start line).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { redactConnectionString } from '../../config/redact.ts';
import { type FarmDb, openDatabase } from '../../db/client.ts';
import { dbFailureLine, describeDbError, loggableError } from '../../db/errors.ts';
import { userMessage } from '../../bot/errors.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TOKEN = 'aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OnNlY3JldA';

/** Each form a password can take in a connection string, with the password it hides. */
function passwordForms(url: string): Array<{ form: string; url: string; password: string }> {
  const u = new URL(url);
  const base = `${u.protocol}//${u.username}@${u.host}${u.pathname}`;
  return [
    { form: 'user info', url: `${u.protocol}//${u.username}:Us3rInfoPw@${u.host}${u.pathname}`, password: 'Us3rInfoPw' },
    { form: 'user info with @ and /', url: `${u.protocol}//${u.username}:p@ss/w0rdX@${u.host}${u.pathname}`, password: 'ss/w0rdX' },
    { form: '?password=', url: `${base}?password=QueryPwFirst`, password: 'QueryPwFirst' },
    { form: '&password=', url: `${base}?application_name=t&password=QueryPwLater`, password: 'QueryPwLater' },
    { form: 'sslpassword=', url: `${base}?sslpassword=SslKeyPass`, password: 'SslKeyPass' },
    { form: 'keyword/value', url: `host=${u.hostname} port=${u.port} password='Kv Pw 1' dbname=x`, password: 'Kv Pw 1' },
  ];
}

function run(args: string[], env: Record<string, string>, until?: RegExp): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const take = (chunk: Buffer) => {
      out += chunk.toString();
      if (until?.test(out)) child.kill('SIGTERM');
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('close', () => resolve(out));
  });
}

describe('secrets in logs', () => {
  let testDb: TestDatabase;
  let db: FarmDb;
  useTestFarm('postgres', {}, (t) => ({ testDb, db } = t));

  it('logs a failed query by its code and message, without its parameters', async () => {
    // The server refuses the statement; the token is one of its parameters.
    const error = await db.db.execute(sql`select ${TOKEN}::text as token, 1 / 0 as boom`).then(() => undefined, (e: unknown) => e);
    expect((error as Error).message).toContain(TOKEN); // drizzle's own message carries the parameters
    for (const line of [describeDbError(error), loggableError(error), dbFailureLine(error) ?? '']) {
      expect(line).toBe('22012: division by zero');
    }
    // The bot's "unexpected error" log line.
    const logged: string[] = [];
    const reply = userMessage(error, (l) => logged.push(l));
    expect(reply).toMatch(/reference/);
    expect(logged.join('\n')).toContain('22012: division by zero');
    expect(logged.join('\n')).not.toContain(TOKEN);
  });

  it('hides a parameter that Postgres quotes back in its message', async () => {
    const error = await db.db.execute(sql`select ${TOKEN}::int`).then(() => undefined, (e: unknown) => e);
    const line = describeDbError(error);
    expect(line).toMatch(/^22P02: invalid input syntax for type integer/);
    expect(line).not.toContain(TOKEN);
  });

  it('hides every form of password in a connection string', () => {
    for (const { form, url, password } of passwordForms(testDb.url!)) {
      const shown = redactConnectionString(url);
      expect(shown, form).not.toContain(password);
      expect(shown, form).toContain('***');
    }
  });

  it('never prints the password in the database location (farm status, worker and bot start lines)', async () => {
    for (const { form, url, password } of passwordForms(testDb.url!).filter((f) => f.url.includes('://'))) {
      const handle = await openDatabase({ url, migrate: false });
      expect(handle.location, form).not.toContain(password);
      await handle.close();
    }
  });

  it('`farm status` and the worker start line show where the database is, without the password', async () => {
    // Trust authentication on the test server ignores the passwords; they only have to stay hidden.
    const u = new URL(testDb.url!);
    const url = `${u.protocol}//${u.username}:Us3rInfoPw@${u.host}${u.pathname}?application_name=t&password=QueryPwLater`;
    const status = await run(['apps/farm-cli/main.ts', 'status', '--json'], { DATABASE_URL: url });
    expect(JSON.parse(status.slice(status.indexOf('{'))).database).toContain(u.host);
    const worker = await run(['apps/worker/main.ts'], { DATABASE_URL: url, BLENDFARM_RENDERER: 'farm/fake-renderer.ts', BLENDFARM_LOG_FORMAT: 'json' }, /database/);
    expect(worker).toContain(u.host);
    for (const out of [status, worker]) {
      expect(out).not.toContain('Us3rInfoPw');
      expect(out).not.toContain('QueryPwLater');
    }
  });
});
