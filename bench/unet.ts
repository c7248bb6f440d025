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
import { syntheticUNet, SD15_UNET, SYNTHETIC_BUILDER_VERSION, TINY_UNET } from '../models/synthetic-unet.ts';
import { float32ToFloat16 } from '../engine/index.ts';

const { values } = parseArgs({
  options: {
    shape: { type: 'string', default: 'tiny' },
    ep: { type: 'string', default: 'cpu' },
    batches: { type: 'string', default: '2,4,8' },
    size: { type: 'string', default: '64' },
    repeats: { type: 'string', default: '10' },
    dir: { type: 'string', default: 'models/.cache' },
    device: { type: 'string', default: '0' },
  },
});
const shape = values.shape === 'sd15' ? SD15_UNET : values.shape === 'sd15-fp32' ? { ...SD15_UNET, dtype: 'float32' as const } : TINY_UNET;
const name = `synthetic-unet-${values.shape}-v${SYNTHETIC_BUILDER_VERSION}.onnx`;
const file = join(values.dir!, name);
await mkdir(values.dir!, { recursive: true });
if (!(await stat(file).catch(() => undefined))) {
  const t0 = performance.now();
  const { graph, parameters } = syntheticUNet(shape);
  await saveModel(values.dir!, name, graph.toModel({ opset: 17, externalData: { location: `${name}.data` } }), `${name}.data`);
  console.log(`built ${values.shape}: ${(parameters / 1e6).toFixed(1)}M parameters in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
const providers = values.ep === 'cuda' ? [{ name: 'cuda', deviceId: Number(values.device) } as const] : [values.ep as 'cpu'];
const session = await ort.InferenceSession.create(file, { executionProviders: providers, graphOptimizationLevel: 'all' });
const latent = Number(values.size);
const half = shape.dtype === 'float16';
const tensor = (n: number, dims: number[]): ort.Tensor => {
  const f = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37));
  return half ? new ort.Tensor('float16', float32ToFloat16(f), dims) : new ort.Tensor('float32', f, dims);
};
console.log(`shape ${values.shape} (${shape.dtype}), ep ${values.ep}, latents ${latent}x${latent}, median of ${values.repeats} calls after 2 warm-ups`);
console.log('| batch | ms per call | ms per image |');
console.log('| --- | --- | --- |');
for (const batch of values.batches!.split(',').map(Number)) {
  const feeds = {
    sample: tensor(batch * 4 * latent * latent, [batch, 4, latent, latent]),
    timestep: shape.timestepType === 'int64' ? new ort.Tensor('int64', BigInt64Array.from([500n]), [1]) : new ort.Tensor('float32', [500], [1]),
    encoder_hidden_states: tensor(batch * 77 * shape.crossAttentionDim, [batch, 77, shape.crossAttentionDim]),
  };
  const times: number[] = [];
  for (let i = 0; i < Number(values.repeats) + 2; i++) {
    const t0 = performance.now();
    await session.run(feeds);
    if (i >= 2) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  console.log(`| ${batch} | ${median.toFixed(1)} | ${(median / batch).toFixed(1)} |`);
}
await session.release();
