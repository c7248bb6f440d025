// PGlite runs Postgres inside this process against files in a data directory; a second process
// opening the same directory would corrupt it. An exclusive lock file (created with O_EXCL,
// naming its holder: pid, host name and pid namespace) turns that into a clear error. A lock left
// by a process known to be gone is taken over: one from this machine's boot and pid namespace
// whose pid no longer runs. Any other lock is trusted, as the pid cannot be checked from here.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pidNamespace } from './process-identity.ts';

export const LOCK_FILE_NAME = 'blendfarm.lock';

/** Who holds a data directory's lock, as its lock file says. */
export interface LockHolder {
  pid: number;
  host: string;
  /** pidNamespace() of the holder; absent in locks written before it was recorded, and off Linux. */
  pidNamespace?: string;
  startedAt?: string;
}

export class DataDirLockedError extends Error {
  readonly pid: number;
  readonly holder: LockHolder;
  constructor(dataDir: string, holder: LockHolder, sameProcess: boolean, lockPath = path.join(dataDir, LOCK_FILE_NAME)) {
    super(
      sameProcess
        ? `The PGlite data directory ${dataDir} is already open in this process; reuse that database handle instead of opening it twice.`
        : `The PGlite data directory ${dataDir} is in use by process ${holder.pid} on host ${holder.host}${holder.startedAt ? ` (since ${holder.startedAt})` : ''}; ` +
            (sameMachine(holder)
              ? 'PGlite allows one process at a time: stop that process, or set DATABASE_URL to a Postgres server to run several processes.'
              : `this process cannot tell whether that one still runs (${holder.host === os.hostname() ? 'it is in another container or pid namespace, or its lock does not say which' : 'it is on another machine'}), ` +
                'and PGlite allows one process at a time: stop that process, or set DATABASE_URL to a Postgres server to run several processes. ' +
                `If it no longer runs (its container or machine stopped without closing the database), delete ${lockPath} and start again.`),
    );
    this.name = 'DataDirLockedError';
    this.pid = holder.pid;
    this.holder = holder;
  }
}

/**
 * Whether the holder's pid can be checked here: the same host, boot and pid namespace as this
 * process (both unknown counts as the same: off Linux there are no pid namespaces). A lock without a
 * namespace read on Linux (written by an older version) cannot be checked.
 */
function sameMachine(holder: LockHolder): boolean {
  return holder.host === os.hostname() && (holder.pidNamespace ?? null) === (pidNamespace() ?? null);
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

function readLock(lockPath: string): LockHolder | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(lockPath, 'utf8')) as Partial<LockHolder>;
    if (typeof parsed.pid === 'number') return { ...parsed, pid: parsed.pid, host: typeof parsed.host === 'string' ? parsed.host : '(unknown)' };
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
  const namespace = pidNamespace();
  const contents: LockHolder = { pid: process.pid, host: os.hostname(), ...(namespace ? { pidNamespace: namespace } : {}), startedAt: new Date().toISOString() };

  for (let tries = 0; tries < 3; tries++) {
    try {
      fs.writeFileSync(lockPath, JSON.stringify(contents), { flag: 'wx' });
      return makeLock(lockPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = readLock(lockPath);
    // kill(pid, 0) means something only in the holder's own pid namespace: another host's, another
    // container's (pid 1 there is not pid 1 here) or an older lock's pid is trusted, not tested.
    const checkable = holder !== undefined && sameMachine(holder);
    if (holder && (!checkable || isProcessAlive(holder.pid))) {
      throw new DataDirLockedError(dataDir, holder, checkable && holder.pid === process.pid, lockPath);
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
    // Ours: another container's pid 1 is not this pid 1.
    if (holder?.pid === process.pid && sameMachine(holder)) fs.rmSync(lockPath, { force: true });
  };
  // Best effort on normal exit; after kill -9 the next opener sees a dead pid and takes over.
  process.on('exit', release);
  return { path: lockPath, release };
}
