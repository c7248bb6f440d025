// The structured logger and the HTTP settings: log lines carry job id, worker id, attempt and
// duration from the farm's free-text lines; pretty output on a terminal; the server's address
// and port follow the settings (npm start on by default, workers off).
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../config/index.ts';
import { createLogger, lineLogger, routeConsole, urlPassword } from '../../apps/log.ts';
import { opsListen, shardOf } from '../../apps/http/listen.ts';

function capture(isTTY = false) {
  const lines: string[] = [];
  const destination = Object.assign(
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        callback();
      },
    }),
    { isTTY },
  );
  return { lines, destination };
}

describe('structured logs', () => {
  it('turns a worker line into one JSON line with job id, worker id, attempt and duration', () => {
    const { lines, destination } = capture();
    const logger = createLogger({ name: 'worker', destination }).child({ workerId: 'gpu-0' });
    const log = lineLogger(logger);
    log('[worker gpu-0] job 12: attempt 2 of 3 started (blend, user u)');
    log('job 12: done in 3.5 s (3.4 GPU-seconds)');
    log('job 13: attempt 1 failed (out of memory): retrying');
    const [started, done, failed] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(started).toMatchObject({ name: 'worker', workerId: 'gpu-0', jobId: 12, attempt: 2, level: 30, msg: 'job 12: attempt 2 of 3 started (blend, user u)' });
    expect(lines[0].match(/"workerId"/g)).toHaveLength(1);
    expect(done).toMatchObject({ jobId: 12, durationSeconds: 3.5 });
    expect(failed).toMatchObject({ jobId: 13, attempt: 1, level: 40 });
  });

  it('routes console output of the layers through the logger, secrets scrubbed', () => {
    const { lines, destination } = capture();
    const saved = { log: console.log, info: console.info, warn: console.warn, error: console.error };
    try {
      routeConsole(createLogger({ name: 'bot', destination, secrets: ['s3cret-value'] }));
      console.log('[bot] job %d queued with s3cret-value', 7);
      console.error('[db] lost postgres://u:pw-in-url@h/db');
    } finally {
      Object.assign(console, saved);
    }
    const [info, error] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(info).toMatchObject({ jobId: 7, msg: '[bot] job 7 queued with ***' });
    expect(error).toMatchObject({ level: 50, msg: '[db] lost postgres://u:***@h/db' });
  });

  it('hides connection-string passwords in every form config/redact.ts knows, each line still JSON', () => {
    const { lines, destination } = capture();
    const url = 'postgres://app@db:5432/farm?password=query-pw-1&sslmode=require';
    const logger = createLogger({ name: 'bot', destination, secrets: [urlPassword(url)] });
    logger.warn(`could not reach ${url}`);
    logger.warn({ databaseLocation: 'postgres://app@db/farm?sslmode=require&password=query-pw-2', owner: 'ops@example.org' }, 'pool error');
    logger.error(new Error('connect failed: host=db sslpassword=query-pw-3 PGPASSWORD=query-pw-4'), 'start-up');
    logger.info('the password query-pw-1 alone is a known secret too');
    const all = lines.join('\n');
    for (const secret of ['query-pw-1', 'query-pw-2', 'query-pw-3', 'query-pw-4']) expect(all).not.toContain(secret);
    const [first, second, third, fourth] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(first.msg).toBe('could not reach postgres://app@db:5432/farm?password=***&sslmode=require');
    // A rule stays inside its string: the next field's '@' is not taken for the URL's.
    expect(second).toMatchObject({ databaseLocation: 'postgres://app@db/farm?sslmode=require&password=***', owner: 'ops@example.org', msg: 'pool error' });
    expect(JSON.stringify(third)).toContain('host=db sslpassword=*** PGPASSWORD=***');
    expect(fourth.msg).toBe('the password *** alone is a known secret too');
  });

  it('writes readable lines on a terminal', () => {
    const { lines, destination } = capture(true);
    createLogger({ name: 'bot', destination, format: 'auto' }).info({ jobId: 3 }, 'hello');
    expect(lines.join('\n')).toMatch(/INFO.*hello/);
    expect(() => JSON.parse(lines[0])).toThrow();
  });
});

describe('HTTP settings', () => {
  it('serves npm start on 127.0.0.1:9464 by default and workers only when a port is set', () => {
    expect(opsListen(loadConfig({}), 'bot')).toEqual({ host: '127.0.0.1', port: 9464, statusToken: undefined });
    expect(opsListen(loadConfig({}), 'worker')).toBeUndefined();
    expect(opsListen(loadConfig({ BLENDFARM_HTTP_PORT: 'off' }), 'bot')).toBeUndefined();
    expect(opsListen(loadConfig({ BLENDFARM_HTTP_PORT: '9470', BLENDFARM_HTTP_HOST: '0.0.0.0' }), 'worker')).toMatchObject({ host: '0.0.0.0', port: 9470 });
    // start:sharded: one port per shard process.
    expect(opsListen(loadConfig({}), 'bot', shardOf({ SHARDS: '2' }))?.port).toBe(9466);
  });

  it('names a bad port or a short token without echoing the token', () => {
    let error: unknown;
    try {
      loadConfig({ BLENDFARM_HTTP_PORT: '70000', BLENDFARM_STATUS_TOKEN: 'short-tok' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems.find((p) => p.startsWith('BLENDFARM_HTTP_PORT="70000"'))).toMatch(/port number from 0 to 65535, or off/);
    expect(problems.find((p) => p.startsWith('BLENDFARM_STATUS_TOKEN=(value hidden)'))).toMatch(/at least 16 characters/);
    expect(problems.join('\n')).not.toContain('short-tok');
  });
});

describe('secrets in every process', () => {
  it('secretsOf covers every setting marked secret (the one list): each value, or a connection string\'s password', async () => {
    const { settings } = await import('../../config/index.ts');
    const { secretsOf } = await import('../../apps/log.ts');
    const config = loadConfig({ DISCORD_TOKEN: 'aaaa.bbbb.cccc-token', DATABASE_URL: 'postgres://u:pw-4321@db/farm', BLENDFARM_STATUS_TOKEN: 'status-token-0123456789' });
    expect(secretsOf(config).sort()).toEqual(['aaaa.bbbb.cccc-token', 'pw-4321', 'status-token-0123456789']);
    const secret = Object.values(settings).filter((s) => (s as { secret?: boolean }).secret).map((s) => s.env);
    expect(secret.sort()).toEqual(['BLENDFARM_STATUS_TOKEN', 'DATABASE_URL', 'DISCORD_TOKEN']);
  });

  it("the worker process's log lines hide DISCORD_TOKEN, as the bot's do", async () => {
    const { spawn } = await import('node:child_process');
    const token = 'MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.worker-log-secret';
    const child = spawn(process.execPath, ['--import', 'tsx', 'apps/worker/main.ts'], {
      cwd: new URL('../..', import.meta.url).pathname,
      // The worker id carries the token, so every line of the worker would show it unless scrubbed.
      env: { ...process.env, DATABASE_URL: '', DISCORD_TOKEN: token, BLENDFARM_WORKER_ID: `w-${token}`, BLENDFARM_DATA_DIR: 'memory://', BLENDFARM_RENDERER: 'farm/fake-renderer.ts', BLENDFARM_LOG_FORMAT: 'json', BLENDFARM_HTTP_PORT: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const started = new Promise<void>((resolve) => {
      const on = (d: Buffer) => {
        out += d.toString();
        if (out.includes('database:')) resolve();
      };
      child.stdout.on('data', on);
      child.stderr.on('data', on);
    });
    const exited = new Promise((resolve) => child.on('close', resolve));
    await Promise.race([started, exited]);
    child.kill('SIGTERM');
    await exited;
    expect(out).toContain('database:');
    expect(out).not.toContain('worker-log-secret');
    expect(out).toContain('w-***');
  }, 60_000);
});
