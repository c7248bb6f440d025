// The PGlite data-directory lock (db/pglite-lock.ts) tests its holder's pid only where that pid
// means something: the same host, boot and pid namespace. A lock from another container on the same
// host (same host name with --network host, its own pid namespace: its pid 1 is not ours) or from an
// older version (no namespace recorded) is refused with who holds it and how to clear a stale one,
// never taken over: two processes writing one PGlite database corrupt it.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataDirLockedError, LOCK_FILE_NAME, lockDataDir } from '../../db/pglite-lock.ts';
import { pidNamespace } from '../../db/process-identity.ts';
import { useTempDir } from '../helpers/temp-dir.ts';

let root = '';
useTempDir('blendfarm-lock-', (dir) => (root = dir));

/** A fresh data directory whose lock file says `holder`. */
function lockedBy(name: string, holder: Record<string, unknown>): { dataDir: string; lockFile: string; written: string } {
  const dataDir = path.join(root, name);
  fs.mkdirSync(dataDir);
  const lockFile = path.join(dataDir, LOCK_FILE_NAME);
  const written = JSON.stringify(holder);
  fs.writeFileSync(lockFile, written);
  return { dataDir, lockFile, written };
}

/** A pid that no process in this pid namespace has (a child that has exited). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await once(child, 'exit');
  return child.pid!;
}

function refusal(dataDir: string): DataDirLockedError {
  try {
    lockDataDir(dataDir);
  } catch (error) {
    if (error instanceof DataDirLockedError) return error;
    throw error;
  }
  throw new Error('the lock was taken');
}

describe('lockDataDir', () => {
  it('records the holder’s pid namespace, and releases only its own lock', () => {
    const dataDir = path.join(root, 'own');
    const lock = lockDataDir(dataDir);
    const contents = JSON.parse(fs.readFileSync(lock.path, 'utf8'));
    expect(contents).toMatchObject({ pid: process.pid, host: os.hostname() });
    expect(contents.pidNamespace).toBe(pidNamespace());
    expect(contents.pidNamespace).toEqual(expect.stringMatching(/ pid:\[\d+\]$/));
    lock.release();
    expect(fs.existsSync(lock.path)).toBe(false);
  });

  it('refuses a lock held under this host name in another pid namespace, even when its pid does not run here', async () => {
    const pid = await deadPid();
    const { dataDir, lockFile, written } = lockedBy('other-namespace', { pid, host: os.hostname(), pidNamespace: 'another-boot-id pid:[4026532999]', startedAt: '2026-12-01T10:00:00.000Z' });
    const error = refusal(dataDir);
    expect(error.message).toBe(
      `The PGlite data directory ${dataDir} is in use by process ${pid} on host ${os.hostname()} (since 2026-12-01T10:00:00.000Z); ` +
        'this process cannot tell whether that one still runs (it is in another container or pid namespace, or its lock does not say which), ' +
        'and PGlite allows one process at a time: stop that process, or set DATABASE_URL to a Postgres server to run several processes. ' +
        `If it no longer runs (its container or machine stopped without closing the database), delete ${lockFile} and start again.`,
    );
    expect(error.pid).toBe(pid);
    // Left as it was: the other process still holds it.
    expect(fs.readFileSync(lockFile, 'utf8')).toBe(written);
  });

  it('refuses a lock from an older version (no pid namespace recorded) on this host', async () => {
    const pid = await deadPid();
    const { dataDir, lockFile, written } = lockedBy('old-format', { pid, host: os.hostname(), startedAt: '2026-11-30T08:00:00.000Z' });
    expect(refusal(dataDir).message).toContain(`delete ${lockFile} and start again`);
    expect(fs.readFileSync(lockFile, 'utf8')).toBe(written);
  });

  it('refuses a lock from another host, naming it', () => {
    const { dataDir, lockFile } = lockedBy('other-host', { pid: 4242, host: 'render-box-7', pidNamespace: pidNamespace() });
    const message = refusal(dataDir).message;
    expect(message).toContain(`in use by process 4242 on host render-box-7; this process cannot tell whether that one still runs (it is on another machine)`);
    expect(message).toContain(`delete ${lockFile} and start again`);
  });

  it('takes over a lock from this pid namespace whose pid no longer runs', async () => {
    const { dataDir, lockFile } = lockedBy('stale', { pid: await deadPid(), host: os.hostname(), pidNamespace: pidNamespace() });
    const lock = lockDataDir(dataDir);
    expect(JSON.parse(fs.readFileSync(lockFile, 'utf8')).pid).toBe(process.pid);
    lock.release();
  });

  it('refuses a lock from this pid namespace whose process runs, telling to stop it', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)']);
    try {
      const { dataDir, lockFile } = lockedBy('alive', { pid: child.pid, host: os.hostname(), pidNamespace: pidNamespace() });
      const message = refusal(dataDir).message;
      expect(message).toBe(
        `The PGlite data directory ${dataDir} is in use by process ${child.pid} on host ${os.hostname()}; PGlite allows one process at a time: stop that process, or set DATABASE_URL to a Postgres server to run several processes.`,
      );
      expect(fs.existsSync(lockFile)).toBe(true);
    } finally {
      child.kill();
    }
  });
});
