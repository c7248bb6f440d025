/**
 * npm run bench:upscale -- [--photos DIR] [--scales 2,4] [--size PX] [--threads N] [--models a,b]
 *
 * Super-resolution quality and speed on real photographs: each photo (a centre crop of --size
 * pixels, default 240, divisible by every scale) is downscaled by the factor (bicubic, the
 * degradation the ESRGAN/RDN models were trained on), upscaled back with every installed model and
 * with sharp's lanczos3, and compared with the original: PSNR (RGB, a border of `scale` pixels
 * shaved), SSIM (luma, 11x11 Gaussian window, sigma 1.5) and CPU milliseconds per output megapixel
 * (best of 2 runs). Also times tiles batched 1 vs 4 per call. Results go in bench/results/upscale.md.
 */
import { parseArgs } from 'node:util';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { SuperResolutionUpscaler, type RawImage } from '../engine/index.ts';
import { choiceOption, numberOption, runParsed } from '../apps/cli-kit.ts';
import { availableSuperResolutionModels, ensureSuperResolutionModel } from '../models/esrgan/catalog.ts';
import { REPO_ROOT } from '../models/paths.ts';

/**
 * The photos the recorded results use (bench/results/upscale.md): the two CC0 photographs in the
 * repository's test fixtures, so a fresh clone measures them too. --photos DIR takes every picture in DIR.
 */
const DEFAULT_PHOTOS_DIR = join(REPO_ROOT, 'test', 'fixtures', 'photos');
const DEFAULT_PHOTOS = ['chelsea.png', 'coffee.png'];
const DEFAULTS = { scales: '2,4', size: '240', threads: '2' } as const;
const MODELS = availableSuperResolutionModels();
/** Every scale some model supports, as --scales accepts them. */
const SCALES = [...new Set(MODELS.flatMap((m) => m.scales))].sort((x, y) => x - y).map(String);

const USAGE = `Usage: npm run bench:upscale -- [--photos DIR] [--scales LIST] [--size PX] [--threads N] [--models LIST]

Super-resolution quality and speed on real photographs: each photo's centre crop is downscaled by the
factor (bicubic), upscaled back with every installed model and with sharp's lanczos3, and compared with
the original: PSNR, SSIM and CPU milliseconds per output megapixel; also tiles batched 1 vs 4 per call.
Printed on stdout as Markdown tables (recorded results: bench/results/upscale.md).
  --photos DIR     every PNG, JPEG or WebP picture in DIR (default: ${DEFAULT_PHOTOS.join(' and ')} in ${relative(REPO_ROOT, DEFAULT_PHOTOS_DIR)})
  --scales LIST    comma-separated factors, of ${SCALES.join(', ')} (default ${DEFAULTS.scales})
  --size PX        crop side, rounded down to a multiple of the scale (default ${DEFAULTS.size})
  --threads N      ONNX Runtime threads (default ${DEFAULTS.threads})
  --models LIST    comma-separated models, of ${MODELS.map((m) => m.name).join(', ')} (default: every installed one)
`;

/** The command line, checked (a bad one is a UsageError: one line, exit 2); undefined for --help. */
function options(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean', short: 'h' },
      photos: { type: 'string' },
      scales: { type: 'string', default: DEFAULTS.scales },
      size: { type: 'string', default: DEFAULTS.size },
      threads: { type: 'string', default: DEFAULTS.threads },
      models: { type: 'string' },
    },
  });
  if (values.help) return undefined;
  return {
    photos: values.photos,
    photosDir: values.photos ?? DEFAULT_PHOTOS_DIR,
    scales: values.scales.split(',').map((n) => Number(choiceOption('scales', n.trim(), SCALES))),
    size: numberOption('size', values.size, { integer: true, min: 1 })!,
    threads: numberOption('threads', values.threads, { integer: true, min: 1 })!,
    wanted: values.models?.split(',').map((n) => choiceOption('models', n.trim(), MODELS.map((m) => m.name))!),
  };
}

async function raw(s: Sharp): Promise<RawImage> {
  const { data, info } = await s.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height, channels: 3 };
}
const fromRaw = (img: RawImage) => sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });

function psnr(a: RawImage, b: RawImage, shave: number): number {
  let se = 0;
  let n = 0;
  for (let y = shave; y < a.height - shave; y++)
    for (let x = shave; x < a.width - shave; x++)
      for (let c = 0; c < 3; c++) {
        const i = (y * a.width + x) * 3 + c;
        se += (a.data[i] - b.data[i]) ** 2;
        n++;
      }
  return 10 * Math.log10((255 * 255) / (se / n));
}

function luma(img: RawImage): Float64Array {
  const out = new Float64Array(img.width * img.height);
  for (let p = 0; p < out.length; p++) out[p] = 0.299 * img.data[p * 3] + 0.587 * img.data[p * 3 + 1] + 0.114 * img.data[p * 3 + 2];
  return out;
}

/** Mean SSIM over 'valid' 11x11 Gaussian windows (sigma 1.5), luma, Wang et al. 2004 constants. */
function ssim(a: RawImage, b: RawImage): number {
  const w = a.width;
  const h = a.height;
  const x = luma(a);
  const y = luma(b);
  const r = 5;
  const g: number[] = [];
  for (let i = -r; i <= r; i++) g.push(Math.exp(-(i * i) / (2 * 1.5 * 1.5)));
  const gs = g.reduce((s, v) => s + v, 0);
  for (let i = 0; i < g.length; i++) g[i] /= gs;
  const blur = (src: Float64Array) => {
    const tmp = new Float64Array(w * h);
    const out = new Float64Array(w * h);
    for (let yy = 0; yy < h; yy++)
      for (let xx = r; xx < w - r; xx++) {
        let s = 0;
        for (let k = -r; k <= r; k++) s += g[k + r] * src[yy * w + xx + k];
        tmp[yy * w + xx] = s;
      }
    for (let yy = r; yy < h - r; yy++)
      for (let xx = r; xx < w - r; xx++) {
        let s = 0;
        for (let k = -r; k <= r; k++) s += g[k + r] * tmp[(yy + k) * w + xx];
        out[yy * w + xx] = s;
      }
    return out;
  };
  const mul = (p: Float64Array, q: Float64Array) => p.map((v, i) => v * q[i]);
  const mx = blur(x);
  const my = blur(y);
  const sxx = blur(mul(x, x));
  const syy = blur(mul(y, y));
  const sxy = blur(mul(x, y));
  const c1 = (0.01 * 255) ** 2;
  const c2 = (0.03 * 255) ** 2;
  let sum = 0;
  let n = 0;
  for (let yy = r; yy < h - r; yy++)
    for (let xx = r; xx < w - r; xx++) {
      const i = yy * w + xx;
      const vx = sxx[i] - mx[i] ** 2;
      const vy = syy[i] - my[i] ** 2;
      const cxy = sxy[i] - mx[i] * my[i];
      sum += ((2 * mx[i] * my[i] + c1) * (2 * cxy + c2)) / ((mx[i] ** 2 + my[i] ** 2 + c1) * (vx + vy + c2));
      n++;
    }
  return sum / n;
}

interface Row {
  photo: string;
  scale: number;
  method: string;
  psnr: number;
  ssim: number;
  msPerMp: number;
}

async function main(args: NonNullable<ReturnType<typeof options>>): Promise<void> {
  const { photosDir, scales, size, threads, wanted } = args;
  if (!existsSync(photosDir) || !statSync(photosDir).isDirectory()) throw new Error(`--photos ${photosDir}: no such folder; give a folder of PNG, JPEG or WebP photographs`);
  const photos = args.photos ? readdirSync(photosDir).filter((f) => /\.(png|jpe?g|webp)$/i.test(f)).sort() : DEFAULT_PHOTOS;
  if (photos.length === 0) throw new Error(`no photos in ${photosDir}; pass --photos DIR`);
  const models = MODELS.filter((m) => m.installed && (!wanted || wanted.includes(m.name)));
  const rows: Row[] = [];
  for (const scale of scales) {
    const ups = new Map<string, SuperResolutionUpscaler>();
    for (const m of models) ups.set(m.name, await SuperResolutionUpscaler.load(await ensureSuperResolutionModel(m.name, scale), { threads }));
    for (const photo of photos) {
      const meta = await sharp(join(photosDir, photo)).metadata();
      const side = Math.floor(Math.min(size, meta.width!, meta.height!) / scale) * scale;
      const left = Math.floor((meta.width! - side) / 2);
      const top = Math.floor((meta.height! - side) / 2);
      const original = await raw(sharp(join(photosDir, photo)).extract({ left, top, width: side, height: side }));
      const small = await raw(fromRaw(original).resize(side / scale, side / scale, { kernel: 'cubic' }));
      const mp = (side * side) / 1e6;
      const timed = async (f: () => Promise<RawImage>) => {
        let best = Infinity;
        let img!: RawImage;
        for (let k = 0; k < 2; k++) {
          const t0 = performance.now();
          img = await f();
          best = Math.min(best, performance.now() - t0);
        }
        return { img, ms: best };
      };
      const lanczos = await timed(() => raw(fromRaw(small).resize(side, side, { kernel: 'lanczos3' })));
      rows.push({ photo, scale, method: 'sharp lanczos3', psnr: psnr(original, lanczos.img, scale), ssim: ssim(original, lanczos.img), msPerMp: lanczos.ms / mp });
      for (const [name, up] of ups) {
        const r = await timed(() => up.upscaleImage(small));
        rows.push({ photo, scale, method: name, psnr: psnr(original, r.img, scale), ssim: ssim(original, r.img), msPerMp: r.ms / mp });
        process.stderr.write(`${photo} ${scale}x ${name}: ${rows.at(-1)!.psnr.toFixed(2)} dB\n`);
      }
    }
    for (const up of ups.values()) await up.release();
  }

  console.log(`photos: ${photos.join(', ')} in ${relative(REPO_ROOT, photosDir) || '.'}`);
  console.log(`crops: centre ${size}x${size} (rounded down to a multiple of the scale), ${threads} threads, CPU EP\n`);
  console.log('| photo | scale | method | PSNR (dB) | SSIM | ms / output MP |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.photo} | ${r.scale}x | ${r.method} | ${r.psnr.toFixed(2)} | ${r.ssim.toFixed(4)} | ${Math.round(r.msPerMp)} |`);
  console.log('\nMean over photos:\n');
  console.log('| scale | method | PSNR (dB) | SSIM | ms / output MP |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const scale of scales)
    for (const method of [...new Set(rows.map((r) => r.method))]) {
      const sel = rows.filter((r) => r.scale === scale && r.method === method);
      if (sel.length === 0) continue;
      const mean = (f: (r: Row) => number) => sel.reduce((a, r) => a + f(r), 0) / sel.length;
      console.log(`| ${scale}x | ${method} | ${mean((r) => r.psnr).toFixed(2)} | ${mean((r) => r.ssim).toFixed(4)} | ${Math.round(mean((r) => r.msPerMp))} |`);
    }

  // Batching tiles: one 256x256 input in 64-pixel tiles, 1 vs 4 tiles per call.
  const name = models.find((m) => m.name === 'esrgan-medium')?.name ?? models[0]?.name;
  if (name) {
    const up = await SuperResolutionUpscaler.load(await ensureSuperResolutionModel(name, 2), { threads });
    const img = await raw(sharp(join(photosDir, photos[0])).resize(256, 256, { fit: 'cover' }));
    console.log(`\nTiles per call (${name} 2x, 256x256 input, 64-pixel tiles, best of 2):\n`);
    for (const batch of [1, 4]) {
      let best = Infinity;
      for (let k = 0; k < 2; k++) {
        const t0 = performance.now();
        await up.upscaleImage(img, { tile: 64, batch });
        best = Math.min(best, performance.now() - t0);
      }
      console.log(`- batch ${batch}: ${Math.round(best)} ms`);
    }
    await up.release();
  }
}

await runParsed(USAGE, options, main);
