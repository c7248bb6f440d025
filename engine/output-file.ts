/**
 * Files the engine and its front ends write for a user reach their path whole or not at all: they
 * are written beside it under a temporary name (same folder, so the rename cannot cross disks; the
 * same extension, for tools that choose the format by it) and renamed onto it once complete.
 */
import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';

/** A temporary name beside `out` ("./.name.mp4.1a2b3c4d.partial.mp4"), for writing it before renaming. */
export function partialPath(out: string): string {
  return path.join(path.dirname(out), `.${path.basename(out)}.${randomBytes(4).toString('hex')}.partial${path.extname(out)}`);
}

/**
 * Writes `out` whole: `write` writes the temporary file, renamed onto `out` once it resolves. On
 * failure (a full disk, a folder that refuses it) nothing is left beside `out`, a file already at
 * `out` stays as it was, and the error is one line naming `out` (the cause is kept).
 */
export async function writeWhole(out: string, write: (file: string) => Promise<unknown>): Promise<void> {
  const partial = partialPath(out);
  try {
    await write(partial);
    await rename(partial, out);
  } catch (error) {
    await rm(partial, { force: true });
    const message = (error instanceof Error ? error.message : String(error)).split('\n')[0].replaceAll(partial, out);
    throw new Error(`could not write ${out}: ${message}`, { cause: error });
  }
}
