/** Where the built-in demo model and the test models live (both built from code, both git-ignored). */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MODELS_ROOT = dirname(fileURLToPath(import.meta.url));
export const DEMO_MODEL_DIR = join(MODELS_ROOT, 'demo');
export const TEST_MODELS_DIR = join(MODELS_ROOT, 'test');
export const REPO_ROOT = resolve(MODELS_ROOT, '..');

export function testModelDir(name: string): string {
  return join(TEST_MODELS_DIR, name);
}
