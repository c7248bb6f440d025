/**
 * npm run bench:blend -- [--model DIR] [--ep cpu|cuda] [--branches N] [--size PX] [--steps N]
 * Latent blending with batched stages vs the reference's one-branch-at-a-time order: UNet calls,
 * wall time and gap quality for the same transition. Results go in bench/results/blend.md.
 */
import { parseArgs } from 'node:util';
import { StableDiffusionPipeline } from '../engine/index.ts';
import { LatentBlender } from '../engine/blend/transition.ts';
import { ensureDemoModel } from '../models/demo-model.ts';
import { DEMO_MODEL_DIR } from '../models/paths.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    ep: { type: 'string', default: 'cpu' },
    branches: { type: 'string', default: '15' },
    size: { type: 'string' },
    steps: { type: 'string' },
    repeats: { type: 'string', default: '3' },
  },
});
const dir = values.model ?? (await ensureDemoModel(DEMO_MODEL_DIR));
const pipe = await StableDiffusionPipeline.load(dir, { ep: values.ep as 'cpu' | 'cuda' });
const size = values.size ? Number(values.size) : undefined;
const opts = {
  promptA: 'a lighthouse on a cliff at dusk, oil painting',
  promptB: 'a city of glass towers at noon, photograph',
  seedA: 1,
  seedB: 2,
  maxBranches: Number(values.branches),
  steps: values.steps ? Number(values.steps) : undefined,
  width: size,
  height: size,
};
const blender = new LatentBlender(pipe);
await blender.transition({ ...opts, maxBranches: 3 }); // warm-up: session initialisation, allocator growth
console.log(`model ${pipe.folder.name} (${pipe.folder.family}, ${pipe.dtype}), ep ${values.ep}, ${opts.maxBranches} branches`);
for (const order of ['sequential', 'batched'] as const) {
  const times: number[] = [];
  let last;
  for (let i = 0; i < Number(values.repeats); i++) {
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
