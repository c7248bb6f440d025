// PGlite runs Postgres inside this process against files in a data directory; a second process
// opening the same directory would corrupt it. An exclusive lock file (created with O_EXCL,
// holding our pid) turns that into a clear error. A lock left by a dead process is taken over.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const LOCK_FILE_NAME = 'blendfarm.lock';

export class DataDirLockedError extends Error {
  readonly pid: number;
  constructor(dataDir: string, pid: number, sameProcess: boolean) {
    super(
      sameProcess
        ? `The PGlite data directory ${dataDir} is already open in this process; reuse that database handle instead of opening it twice.`
        : `The PGlite data directory ${dataDir} is in use by process ${pid}; PGlite allows one process at a time: stop that process, or set DATABASE_URL to a Postgres server to run several processes.`,
    );
    this.name = 'DataDirLockedError';
    this.pid = pid;
  }
}

interface LockContents {
  pid: number;
  host: string;
  startedAt: string;
}

/** Whether a process with this pid runs in this pid namespace (EPERM: it does, as another user). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readLock(lockPath: string): LockContents | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(lockPath, 'utf8')) as Partial<LockContents>;
    if (typeof parsed.pid === 'number') return parsed as LockContents;
  } catch {
    // Unreadable or half-written: treated as stale below.
  }
  return undefined;
}

export interface DataDirLock {
  readonly path: string;
  release(): void;
}

/** Takes the lock or throws DataDirLockedError naming the holder. */
export function lockDataDir(dataDir: string): DataDirLock {
  fs.mkdirSync(dataDir, { recursive: true });
  const lockPath = path.join(dataDir, LOCK_FILE_NAME);
  const contents: LockContents = { pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString() };

  for (let tries = 0; tries < 3; tries++) {
    try {
      fs.writeFileSync(lockPath, JSON.stringify(contents), { flag: 'wx' });
      return makeLock(lockPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = readLock(lockPath);
    // A lock from another host cannot be checked with kill(0); trust it.
    const foreignHost = holder !== undefined && holder.host !== os.hostname();
    if (holder && (foreignHost || isProcessAlive(holder.pid))) {
      throw new DataDirLockedError(dataDir, holder.pid, holder.pid === process.pid && !foreignHost);
    }
    fs.rmSync(lockPath, { force: true });
  }
  throw new Error(`Could not take the lock ${lockPath}; remove it if no Blendfarm process is running.`);
}

function makeLock(lockPath: string): DataDirLock {
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    process.off('exit', release);
    const holder = readLock(lockPath);
    if (holder?.pid === process.pid) fs.rmSync(lockPath, { force: true });
  };
  // Best effort on normal exit; after kill -9 the next opener sees a dead pid and takes over.
  process.on('exit', release);
  return { path: lockPath, release };
}
