/**
 * npm run models — builds the built-in demo model and every test model the tests load: the demo
 * variants, the other test models built from code and the x4 upscaler test model. The global setup
 * of the tests calls `buildTestModels()` too, so a fresh clone needs no extra step. Each model is rebuilt only
 * when its version marker is missing or stale, so a warm start costs a few file reads.
 */
import { parseArgs } from 'node:util';
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

const USAGE = `Usage: npm run models

Builds the built-in demo model (${DEMO_MODEL_DIR}) and every test model the tests load
(${TEST_MODELS_DIR}): the demo variants (${Object.keys(demoSpecs).join(', ')}), the other test models
built from code and the x4 upscaler test model. Only what is missing or outdated (its version marker
missing or stale) is built; delete a model's folder to force its rebuild. Prints each model's folder.
Takes no options other than --help.
`;

/**
 * The command line: undefined to build, else the exit status (0 after --help, 2 after one line for a
 * bad one). Checked here, not with apps/cli-kit.ts's runCli: the models layer does not import apps/.
 */
function commandLine(args: string[]): number | undefined {
  try {
    const { values } = parseArgs({ args, options: { help: { type: 'boolean', short: 'h' } } });
    if (!values.help) return undefined;
    process.stdout.write(USAGE);
    return 0;
  } catch (err) {
    // node:util parseArgs refusing the arguments (an unknown flag, an argument): ERR_PARSE_ARGS_*.
    if (!String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS_')) throw err;
    process.stderr.write(`error: ${(err as Error).message} (run \`npm run models -- --help\`)\n`);
    return 2;
  }
}

if (process.argv[1]?.endsWith('build-test-models.ts')) {
  const status = commandLine(process.argv.slice(2));
  if (status !== undefined) process.exit(status);
  const started = performance.now();
  await ensureDemoModel(DEMO_MODEL_DIR);
  const built = await buildTestModels();
  console.log(`demo model: ${DEMO_MODEL_DIR}`);
  for (const [name, dir] of Object.entries(built)) console.log(`test model ${name}: ${dir}`);
  console.log(`done in ${((performance.now() - started) / 1000).toFixed(1)}s`);
}
