/**
 * Files the engine and its front ends write for a user reach their path whole or not at all: they
 * are written beside it under a temporary name (same folder, so the rename cannot cross disks; the
 * same extension, for tools that choose the format by it) and renamed onto it once complete.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, rmSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';

/** Temporary files being written now: removed if the process exits first (a second Ctrl-C, process.exit). */
const pending = new Set<string>();
let exitHook = false;

/**
 * Why `out` cannot be replaced by a renamed file, or undefined when it can (absent, or a regular
 * file). A rename would replace a link, a device (/dev/null) or a pipe itself, not write through it.
 */
export function unreplaceableIssue(out: string): string | undefined {
  let kind: string | undefined;
  try {
    const s = lstatSync(out);
    if (s.isFile()) return undefined;
    kind = s.isDirectory() ? 'a folder' : s.isSymbolicLink() ? 'a symbolic link' : s.isFIFO() ? 'a pipe' : s.isSocket() ? 'a socket' : 'a device';
  } catch {
    return undefined;
  }
  return `${out} is ${kind}, not a file; give the path of a file to write (a new one, or a file to replace)`;
}

/**
 * A temporary name beside `out` ("./.name.mp4.1a2b3c4d.partial.mp4") to write it under before the
 * rename; removed at process exit unless `settled` first. Throws when `out` is no file to replace.
 */
export function partialPath(out: string): { path: string; settled(): void } {
  const issue = unreplaceableIssue(out);
  if (issue) throw new Error(issue);
  const file = path.join(path.dirname(out), `.${path.basename(out)}.${randomBytes(4).toString('hex')}.partial${path.extname(out)}`);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const f of pending) rmSync(f, { force: true });
    });
  }
  pending.add(file);
  return { path: file, settled: () => pending.delete(file) };
}

/**
 * Writes `out` whole: `write` writes the temporary file, renamed onto `out` once it resolves. On
 * failure (a full disk, a folder that refuses it) nothing is left beside `out`, a file already at
 * `out` stays as it was, and the error is one line naming `out` (the cause is kept).
 */
export async function writeWhole(out: string, write: (file: string) => Promise<unknown>): Promise<void> {
  const partial = partialPath(out);
  try {
    await write(partial.path);
    await rename(partial.path, out);
  } catch (error) {
    await rm(partial.path, { force: true });
    const message = (error instanceof Error ? error.message : String(error)).split('\n')[0].replaceAll(partial.path, out);
    throw new Error(`could not write ${out}: ${message}`, { cause: error });
  } finally {
    partial.settled();
  }
}
