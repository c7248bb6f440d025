/** Where the built-in demo model and the test models live (both built from code, both git-ignored). */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * This folder; for a bundled tool (dist/*.mjs, e.g. on a GPU host) import.meta.url points at the
 * bundle, so fall back to models/ under the working directory (the repository root).
 */
function modelsRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return existsSync(join(here, 'assets')) ? here : join(process.cwd(), 'models');
}

export const MODELS_ROOT = modelsRoot();
export const DEMO_MODEL_DIR = join(MODELS_ROOT, 'demo');
export const TEST_MODELS_DIR = join(MODELS_ROOT, 'test');
export const REPO_ROOT = resolve(MODELS_ROOT, '..');

export function testModelDir(name: string): string {
  return join(TEST_MODELS_DIR, name);
}
