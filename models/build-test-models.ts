/**
 * npm run models — (re)builds the built-in demo model and every test model the tests load: the demo
 * variants, the other test models built from code and the x4 upscaler test model. The global setup
 * of the tests calls `buildTestModels()` too, so a fresh clone needs no extra step. Each model is rebuilt only
 * when its version marker is missing or stale, so a warm start costs a few file reads.
 */
import { ensureDemoModel, demoSpecs } from './demo-model.ts';
import { buildFeatureTestModels, type FeatureTestModel } from './feature-test-models.ts';
import { buildImageTestModels, type ImageTestModel } from './image-test-models.ts';
import { DEMO_MODEL_DIR, TEST_MODELS_DIR, testModelDir } from './paths.ts';
import { ensureX4TestModel } from './x4-upscaler-test.ts';

export type TestModelName = keyof typeof demoSpecs | FeatureTestModel | ImageTestModel | 'x4-upscaler';

export async function buildTestModels(): Promise<Record<TestModelName, string>> {
  const out = {} as Record<TestModelName, string>;
  for (const [name, spec] of Object.entries(demoSpecs) as [keyof typeof demoSpecs, (typeof demoSpecs)[keyof typeof demoSpecs]][]) {
    out[name] = await ensureDemoModel(testModelDir(name), spec, `blendfarm-test-${name}`);
  }
  Object.assign(out, await buildFeatureTestModels(TEST_MODELS_DIR, { demo: out.demo, xl: out.xl }));
  Object.assign(out, await buildImageTestModels(TEST_MODELS_DIR, out.demo));
  // Built here, once, before any test file runs: test files calling ensureX4TestModel() in parallel
  // then only read its marker instead of racing to rebuild the same folder.
  out['x4-upscaler'] = await ensureX4TestModel();
  return out;
}

if (process.argv[1]?.endsWith('build-test-models.ts')) {
  const started = performance.now();
  await ensureDemoModel(DEMO_MODEL_DIR);
  const built = await buildTestModels();
  console.log(`demo model: ${DEMO_MODEL_DIR}`);
  for (const [name, dir] of Object.entries(built)) console.log(`test model ${name}: ${dir}`);
  console.log(`done in ${((performance.now() - started) / 1000).toFixed(1)}s`);
}
