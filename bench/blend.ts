/**
 * npm run bench:blend -- [--model DIR | --synthetic-unet tiny|sd15] [--ep cpu|cuda] [--branches N] [--size PX] [--steps N]
 * Latent blending with batched stages vs the reference's one-branch-at-a-time order: UNet calls,
 * wall time and gap quality for the same transition. `--synthetic-unet` swaps the demo model's
 * closed-form UNet for an SD-shaped one with random weights (models/synthetic-unet.ts), so the
 * UNet costs what a real one does (the images are noise). Results go in bench/results/blend.md.
 */
import { parseArgs } from 'node:util';
import { executionProviders, LatentBlender, MAX_IMAGE_SIDE, MIN_BLEND_STEPS, StableDiffusionPipeline } from '../engine/index.ts';
import { choiceOption, numberOption, runParsed, UsageError } from '../apps/cli-kit.ts';
import { cp, mkdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDemoModel, TEXT_WIDTH } from '../models/demo-model.ts';
import { DEMO_MODEL_DIR, MODELS_ROOT } from '../models/paths.ts';
import { saveModel } from '../models/onnx/index.ts';
import { syntheticUNet, SD15_UNET, SYNTHETIC_BUILDER_VERSION, TINY_UNET } from '../models/synthetic-unet.ts';

const SYNTHETIC_SHAPES = { tiny: TINY_UNET, sd15: SD15_UNET } as const;

const USAGE = `Usage: npm run bench:blend -- [--model DIR | --synthetic-unet tiny|sd15] [--ep cpu|cuda] [--branches N] [--size PX] [--steps N] [--repeats N]

Latent blending with batched stages vs one branch at a time: UNet calls, wall time and gap quality.
  --model DIR            a Stable Diffusion ONNX export (default: the built-in demo model)
  --synthetic-unet NAME  the demo model with an SD-shaped random UNet: ${Object.keys(SYNTHETIC_SHAPES).join(' or ')} (not with --model)
  --ep NAME              execution provider: ${executionProviders.join(', ')} (default cpu)
  --branches N           branches per transition (default 15)
  --size PX              width and height (default: the model's)
  --steps N              denoising steps, at least ${MIN_BLEND_STEPS} (default: the model's)
  --repeats N            timed runs per order; the median is shown (default 3)
`;

/** The command line, checked: a bad one is a UsageError (one line, exit status 2). */
function options(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean', short: 'h' },
      model: { type: 'string' },
      ep: { type: 'string', default: 'cpu' },
      branches: { type: 'string', default: '15' },
      size: { type: 'string' },
      steps: { type: 'string' },
      repeats: { type: 'string', default: '3' },
      'synthetic-unet': { type: 'string' },
    },
  });
  if (values.help) return undefined;
  if (values.model !== undefined && values['synthetic-unet'] !== undefined) {
    throw new UsageError('--model and --synthetic-unet each choose the model: give one of them (run with --help)');
  }
  return {
    model: values.model,
    synthetic: choiceOption('synthetic-unet', values['synthetic-unet'], SYNTHETIC_SHAPES),
    ep: choiceOption('ep', values.ep, executionProviders)!,
    branches: numberOption('branches', values.branches, { integer: true, min: 1 })!,
    size: numberOption('size', values.size, { integer: true, min: 1, max: MAX_IMAGE_SIDE }),
    steps: numberOption('steps', values.steps, { integer: true, min: MIN_BLEND_STEPS }),
    repeats: numberOption('repeats', values.repeats, { integer: true, min: 1 })!,
  };
}

await runParsed(USAGE, options, bench);

/** The demo pipeline with an SD-shaped random UNet (built once into models/.cache). */
async function syntheticPipeline(name: keyof typeof SYNTHETIC_SHAPES): Promise<string> {
  const out = join(MODELS_ROOT, '.cache', `blend-${name}-v${SYNTHETIC_BUILDER_VERSION}`);
  if (existsSync(join(out, 'unet', 'model.onnx'))) return out;
  const base = SYNTHETIC_SHAPES[name];
  await rm(out, { recursive: true, force: true });
  await cp(await ensureDemoModel(DEMO_MODEL_DIR), out, { recursive: true });
  // The demo text encoder is 32 wide; everything else keeps the SD shape.
  const { graph, parameters } = syntheticUNet({ ...base, crossAttentionDim: TEXT_WIDTH, timestepType: 'float32' });
  await rm(join(out, 'unet'), { recursive: true, force: true });
  await mkdir(join(out, 'unet'), { recursive: true });
  await saveModel(join(out, 'unet'), 'model.onnx', graph.toModel({ opset: 17, externalData: { location: 'model.onnx_data' } }), 'model.onnx_data');
  console.log(`built ${out} with a ${(parameters / 1e6).toFixed(1)}M-parameter synthetic UNet`);
  return out;
}
async function bench(args: NonNullable<ReturnType<typeof options>>): Promise<void> {
  const dir = args.synthetic ? await syntheticPipeline(args.synthetic) : (args.model ?? (await ensureDemoModel(DEMO_MODEL_DIR)));
  const pipe = await StableDiffusionPipeline.load(dir, { ep: args.ep });
  const size = args.size;
  const opts = {
    promptA: 'a lighthouse on a cliff at dusk, oil painting',
    promptB: 'a city of glass towers at noon, photograph',
    seedA: 1,
    seedB: 2,
    maxBranches: args.branches,
    steps: args.steps,
    width: size,
    height: size,
  };
  const blender = new LatentBlender(pipe);
  await blender.transition({ ...opts, maxBranches: 3 }); // warm-up: session initialisation, allocator growth
  console.log(`model ${pipe.folder.name} (${pipe.folder.family}, ${pipe.dtype}), ep ${args.ep}, ${opts.maxBranches} branches`);
  for (const order of ['sequential', 'batched'] as const) {
    const times: number[] = [];
    let last;
    for (let i = 0; i < args.repeats; i++) {
      const t0 = performance.now();
      last = await blender.transition({ ...opts, order });
      times.push((performance.now() - t0) / 1000);
    }
    times.sort((a, b) => a - b);
    const r = last!;
    console.log(
      `${order.padEnd(10)} median ${times[Math.floor(times.length / 2)].toFixed(3)}s  UNet calls ${r.unetCalls}  stages ${r.stages.map((s) => `${s.idx}x${s.stems}`).join(',')}  ` +
        `max/mean gap ${r.maxGap.toFixed(4)}/${r.meanGap.toFixed(4)}  ${r.width}x${r.height} ${r.steps} steps`,
    );
  }
  await pipe.release();
}
