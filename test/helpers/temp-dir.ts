// A temporary folder for the tests of one describe block (or file), removed afterwards.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';

/** Registers hooks that create a folder named `prefix`… under the system temp folder before the block, hand it to `ready`, and remove it after. */
export function useTempDir(prefix: string, ready: (dir: string) => unknown): void {
  let dir: string | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
    ready(dir);
  });
  afterAll(() => (dir ? rm(dir, { recursive: true, force: true }) : undefined));
}
