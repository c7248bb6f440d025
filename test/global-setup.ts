/** Builds the small ONNX test models (and the demo model) once, before any test file runs. */
import { buildTestModels } from '../models/build-test-models.ts';
import { ensureDemoModel } from '../models/demo-model.ts';
import { DEMO_MODEL_DIR } from '../models/paths.ts';

export default async function setup(): Promise<void> {
  await buildTestModels();
  await ensureDemoModel(DEMO_MODEL_DIR);
}
