/**
 * node dist/gpu-ort-optimized.mjs --optimized DIR [--plain DIR] [--stats FILE] [--ep cuda] [--device 0]
 *   [--repeats 3] [--max-levels 8] [--out DIR]
 *
 * Does a real-format export rewritten by ONNX Runtime's own Stable Diffusion optimizer (the command
 * in models/README.md, "Fast GPU graphs") render what diffusers renders? scripts/gpu-run.sh runs the
 * optimizer (scripts/ort-optimize.sh) on the optimum-format fixture test/fixtures/tiny-sd-optimum on
 * the device and then this script, which loads both folders through the engine's public
 * StableDiffusionPipeline on --ep, renders the fixture's diffusers case (DDIM, 4 steps, guidance
 * 7.5, 64x64, diffusers' own starting latents) from each, and compares every image with diffusers'
 * float image: the largest and mean difference in uint8 levels, and the final latents' relative
 * error. Also: the UNet's input dtype as the engine read it, wall and UNet time per render
 * (median of --repeats after a warm-up; tiny model, so these say nothing about SD 1.5 speed), and,
 * from --stats (written by scripts/ort-optimize.sh), the com.microsoft ops the optimizer put in each
 * component. Writes ort-optimized.json and ort-optimized.md to --out.
 *
 * Exit code 1 when a folder fails to load or render, or its image is further from diffusers' than
 * allowed: FP32_MAX_LEVELS (2, as test/engine/pipeline/optimum-export.test.ts allows) for an fp32
 * UNet, --max-levels (default 8: fp16 rounding through 4 steps of a random-weight UNet) for an
 * fp16 one. Needs only onnxruntime-node (no sharp, no ffmpeg). CI runs it on the CPU with the
 * plain fixture as both folders, and with the optimizer's CPU-target output where Python has the
 * optimizer (test/scripts/ort-optimized.test.ts); its CUDA-only ops cannot run there.
 */
import { parseArgs } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { StableDiffusionPipeline } from '../engine/index.ts';
import { deviceName, gpuEp, median, relativeError, wholeNumber } from '../bench/gpu-common.ts';

const FIXTURE = 'test/fixtures/tiny-sd-optimum';
/** uint8 levels an fp32 UNet's image may differ from diffusers' (float rounding only). */
const FP32_MAX_LEVELS = 2;

const { values } = parseArgs({
  options: {
    optimized: { type: 'string' },
    plain: { type: 'string', default: FIXTURE },
    stats: { type: 'string' },
    ep: { type: 'string', default: 'cuda' },
    device: { type: 'string', default: '0' },
    repeats: { type: 'string', default: '3' },
    'max-levels': { type: 'string', default: '8' },
    out: { type: 'string', default: '.' },
  },
});
const ep = gpuEp(values.ep);
if (!values.optimized) throw new Error('--optimized DIR is required: the folder written by scripts/ort-optimize.sh');
const deviceId = Number(values.device);
const repeats = wholeNumber('repeats', values.repeats!);
const maxLevels = Number(values['max-levels']);
if (!(maxLevels >= 0)) throw new Error(`--max-levels takes a number of levels (0-255), got ${values['max-levels']}`);

/** diffusers' case from the fixture: its settings, starting latents, final latents and float image. */
function loadReference(dir: string) {
  const meta = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8'));
  const bin = readFileSync(join(dir, 'reference.bin'));
  const floats = new Float32Array(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength));
  const array = (name: string): Float32Array => {
    const a = meta.arrays[name];
    if (!a) throw new Error(`${dir}: no array ${name} in reference.json`);
    return floats.subarray(a.offset, a.offset + a.length);
  };
  const c = meta.cases.find((x: { name: string }) => x.name === 'ddim_64');
  if (!c) throw new Error(`${dir}: reference.json has no ddim_64 case`);
  return {
    name: c.name as string,
    prompt: c.prompt as string,
    negativePrompt: c.negative_prompt as string,
    guidance: c.guidance_scale as number,
    steps: c.num_inference_steps as number,
    width: c.width as number,
    height: c.height as number,
    inputLatents: array('ddim_64.input_latents'),
    finalLatents: array('ddim_64.final_latents'),
    image: array('ddim_64.image'),
  };
}

interface FolderResult {
  folder: string;
  label: 'plain' | 'optimized';
  ok: boolean;
  error?: string;
  unetDtype?: string;
  maxLevels?: number;
  meanLevels?: number;
  latentsRelError?: number;
  finite?: boolean;
  renderMs?: number;
  unetMsPerStep?: number;
  loadMs?: number;
}

const ref = loadReference(resolve(values.plain!));

async function check(label: FolderResult['label'], folder: string): Promise<FolderResult> {
  const result: FolderResult = { folder, label, ok: false };
  let pipe: StableDiffusionPipeline | undefined;
  try {
    const t0 = performance.now();
    pipe = await StableDiffusionPipeline.load(folder, { ep, deviceId });
    result.loadMs = Math.round(performance.now() - t0);
    result.unetDtype = pipe.dtype;
    const render = () =>
      pipe!.generate({
        prompt: ref.prompt,
        negativePrompt: ref.negativePrompt,
        guidance: ref.guidance,
        steps: ref.steps,
        width: ref.width,
        height: ref.height,
        scheduler: 'ddim',
        latents: ref.inputLatents,
        seed: 0,
      });
    const first = await render(); // also the warm-up
    const runs = [];
    for (let i = 0; i < repeats; i++) runs.push(await render());
    const mid = median(runs, (r) => r.timings.totalMs);
    result.renderMs = +mid.timings.totalMs.toFixed(1);
    result.unetMsPerStep = +(mid.timings.unetMs / ref.steps).toFixed(2);
    const img = first.images[0].data;
    if (img.length !== ref.image.length) throw new Error(`image has ${img.length} values, diffusers' ${ref.image.length}`);
    let worst = 0;
    let sum = 0;
    for (let i = 0; i < img.length; i++) {
      const d = Math.abs(img[i] - Math.round(ref.image[i] * 255));
      worst = Math.max(worst, d);
      sum += d;
    }
    const lat = relativeError(first.latents, ref.finalLatents);
    Object.assign(result, { maxLevels: worst, meanLevels: +(sum / img.length).toFixed(3), latentsRelError: +lat.rel.toExponential(2), finite: lat.finite });
    const limit = pipe.dtype === 'float16' ? maxLevels : FP32_MAX_LEVELS;
    result.ok = lat.finite && worst <= limit;
    if (!result.ok) result.error = lat.finite ? `image is ${worst} levels from diffusers' (limit ${limit} for a ${pipe.dtype} UNet)` : 'non-finite latents';
  } catch (err) {
    result.error = (err as Error).message.split('\n')[0];
  } finally {
    await pipe?.release();
  }
  return result;
}

const folders: Array<[FolderResult['label'], string]> = [
  ['plain', resolve(values.plain!)],
  ['optimized', resolve(values.optimized)],
];
const results: FolderResult[] = [];
for (const [label, folder] of folders) {
  const r = await check(label, folder);
  results.push(r);
  console.log(`${label}: ${r.ok ? 'ok' : 'FAILED'}${r.error ? ` (${r.error})` : ''}; unet ${r.unetDtype ?? '?'}, max ${r.maxLevels ?? '?'} / mean ${r.meanLevels ?? '?'} levels from diffusers, render ${r.renderMs ?? '?'} ms`);
}

const stats = values.stats && existsSync(values.stats) ? JSON.parse(readFileSync(values.stats, 'utf8')) : undefined;
const report = {
  gpu: deviceName(ep, deviceId),
  ep,
  date: new Date().toISOString(),
  case: `${ref.name}: DDIM ${ref.steps} steps, guidance ${ref.guidance}, ${ref.width}x${ref.height}`,
  maxLevelsAllowed: { float32: FP32_MAX_LEVELS, float16: maxLevels },
  results,
  optimizer: stats,
};
const out = resolve(values.out!);
await mkdir(out, { recursive: true });
await writeFile(join(out, 'ort-optimized.json'), JSON.stringify(report, null, 2) + '\n');

const lines = [
  `### ONNX Runtime's optimizer output through the engine (${report.gpu}, ${ep})`,
  '',
  `${report.date.slice(0, 10)}. Case ${report.case}, from diffusers' starting latents; levels are uint8 differences from diffusers' float image.`,
  '',
  '| folder | UNet dtype | max levels | mean levels | latents rel. error | render ms | UNet ms/step | result |',
  '|---|---|---|---|---|---|---|---|',
  ...results.map((r) => `| ${r.label} | ${r.unetDtype ?? '-'} | ${r.maxLevels ?? '-'} | ${r.meanLevels ?? '-'} | ${r.latentsRelError ?? '-'} | ${r.renderMs ?? '-'} | ${r.unetMsPerStep ?? '-'} | ${r.ok ? 'ok' : `failed: ${r.error}`} |`),
];
if (stats?.components) {
  lines.push('', '| component | nodes | com.microsoft ops |', '|---|---|---|');
  for (const [name, c] of Object.entries(stats.components as Record<string, { nodes: number; contrib: Record<string, number> }>)) {
    const ops = Object.entries(c.contrib).map(([op, n]) => `${op} ${n}`).join(', ') || 'none';
    lines.push(`| ${name} | ${c.nodes} | ${ops} |`);
  }
}
await writeFile(join(out, 'ort-optimized.md'), lines.join('\n') + '\n');
process.exit(results.every((r) => r.ok) ? 0 : 1);
