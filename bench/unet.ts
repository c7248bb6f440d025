/**
 * npm run bench:unet -- [--shape sd15|tiny] [--ep cpu|cuda] [--batches 2,4,8,16] [--size 64] [--repeats 10]
 *
 * Milliseconds per UNet call of an SD-1.5-shaped UNet with random weights (models/synthetic-unet.ts),
 * generated on this machine (no download, no transfer of a 1.7 GB file), at several batch sizes:
 * what batched latent-blending stages buy on this device. Results go in bench/results/unet.md.
 */
import { parseArgs } from 'node:util';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { saveModel } from '../models/onnx/index.ts';
import { MODELS_ROOT } from '../models/paths.ts';
import { syntheticUNet, SD15_UNET, SYNTHETIC_BUILDER_VERSION, TINY_UNET } from '../models/synthetic-unet.ts';
import { DEFAULT_DEVICE_ID, float32ToFloat16 } from '../engine/index.ts';
import { choiceOption, numberOption, runParsed } from '../apps/cli-kit.ts';
import { DEVICE_FLAG } from '../apps/cli/common.ts';
import { GPU_EPS, gpuEp, wholeNumbers } from './gpu-common.ts';

const SHAPES = { tiny: TINY_UNET, sd15: SD15_UNET, 'sd15-fp32': { ...SD15_UNET, dtype: 'float32' as const } } as const;
const DEFAULTS = { shape: 'tiny', ep: 'cpu', batches: '2,4,8', size: '64', repeats: '10', dir: join(MODELS_ROOT, '.cache'), device: String(DEFAULT_DEVICE_ID) } as const;

const USAGE = `Usage: npm run bench:unet -- [--shape NAME] [--ep ${GPU_EPS.join('|')}] [--batches LIST] [--size N] [--repeats N] [--dir DIR] [--device N]

Milliseconds per UNet call of a UNet with random weights (models/synthetic-unet.ts), generated on this
machine once into --dir, at several batch sizes; printed on stdout as a Markdown table (recorded
results: bench/results/unet.md).
  --shape NAME    ${Object.keys(SHAPES).join(', ')} (default ${DEFAULTS.shape})
  --ep NAME       execution provider: ${GPU_EPS.join(', ')} (default ${DEFAULTS.ep})
  --batches LIST  comma-separated batch sizes (default ${DEFAULTS.batches})
  --size N        latent width and height (default ${DEFAULTS.size})
  --repeats N     timed calls per batch size after 2 warm-ups; the median is shown (default ${DEFAULTS.repeats})
  --dir DIR       where the generated model is kept (default ${DEFAULTS.dir})
  --device N      the CUDA device with --ep cuda (default ${DEFAULTS.device})
`;

/** The command line, checked (a bad one is a UsageError: one line, exit 2); undefined for --help. */
function options(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean', short: 'h' },
      shape: { type: 'string', default: DEFAULTS.shape },
      ep: { type: 'string', default: DEFAULTS.ep },
      batches: { type: 'string', default: DEFAULTS.batches },
      size: { type: 'string', default: DEFAULTS.size },
      repeats: { type: 'string', default: DEFAULTS.repeats },
      dir: { type: 'string', default: DEFAULTS.dir },
      device: { type: 'string', default: DEFAULTS.device },
    },
  });
  if (values.help) return undefined;
  return {
    shapeName: choiceOption('shape', values.shape, SHAPES)!,
    ep: gpuEp(values.ep),
    batches: wholeNumbers('batches', values.batches),
    size: numberOption('size', values.size, { integer: true, min: 1 })!,
    repeats: numberOption('repeats', values.repeats, { integer: true, min: 1 })!,
    dir: values.dir,
    device: numberOption('device', values.device, DEVICE_FLAG)!,
  };
}

await runParsed(USAGE, options, bench);

async function bench(args: NonNullable<ReturnType<typeof options>>): Promise<void> {
  const shape: (typeof SHAPES)[keyof typeof SHAPES] = SHAPES[args.shapeName];
  const name = `synthetic-unet-${args.shapeName}-v${SYNTHETIC_BUILDER_VERSION}.onnx`;
  const file = join(args.dir, name);
  await mkdir(args.dir, { recursive: true });
  if (!(await stat(file).catch(() => undefined))) {
    const t0 = performance.now();
    const { graph, parameters } = syntheticUNet(shape);
    await saveModel(args.dir, name, graph.toModel({ opset: 17, externalData: { location: `${name}.data` } }), `${name}.data`);
    console.log(`built ${args.shapeName}: ${(parameters / 1e6).toFixed(1)}M parameters in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const providers = args.ep === 'cuda' ? [{ name: 'cuda', deviceId: args.device } as const] : [args.ep];
  const session = await ort.InferenceSession.create(file, { executionProviders: providers, graphOptimizationLevel: 'all' });
  const latent = args.size;
  const half = shape.dtype === 'float16';
  const tensor = (n: number, dims: number[]): ort.Tensor => {
    const f = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37));
    return half ? new ort.Tensor('float16', float32ToFloat16(f), dims) : new ort.Tensor('float32', f, dims);
  };
  console.log(`shape ${args.shapeName} (${shape.dtype}), ep ${args.ep}, latents ${latent}x${latent}, median of ${args.repeats} calls after 2 warm-ups`);
  console.log('| batch | ms per call | ms per image |');
  console.log('| --- | --- | --- |');
  for (const batch of args.batches) {
    const feeds = {
      sample: tensor(batch * 4 * latent * latent, [batch, 4, latent, latent]),
      timestep: shape.timestepType === 'int64' ? new ort.Tensor('int64', BigInt64Array.from([500n]), [1]) : new ort.Tensor('float32', [500], [1]),
      encoder_hidden_states: tensor(batch * 77 * shape.crossAttentionDim, [batch, 77, shape.crossAttentionDim]),
    };
    const times: number[] = [];
    for (let i = 0; i < args.repeats + 2; i++) {
      const t0 = performance.now();
      await session.run(feeds);
      if (i >= 2) times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)];
    console.log(`| ${batch} | ${median.toFixed(1)} | ${(median / batch).toFixed(1)} |`);
  }
  await session.release();
}
