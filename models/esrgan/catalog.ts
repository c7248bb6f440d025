/**
 * The super-resolution models Blendfarm can run out of the box: the trained ESRGAN/RDN weights
 * of the @upscalerjs/esrgan-* npm packages (MIT), converted to ONNX on first use and cached.
 *
 * `ensureSuperResolutionModel('esrgan-medium', 2)` returns a folder holding
 *   model.onnx (+ model.onnx.data)   the network, engine interface (see convert.ts)
 *   upscaler.json                    { kind, name, scale, receptiveRadius, source, ... }
 * which engine/upscale loads. The cache lives in models/.cache/upscalers/ (git-ignored), or under
 * BLENDFARM_MODEL_CACHE when set, keyed by package version and converter version, so an upgrade
 * of either rebuilds it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { readSetting } from '../../config/index.ts';
import { MODELS_ROOT, REPO_ROOT } from '../paths.ts';
import { saveModel } from '../onnx/index.ts';
import { CONVERTER_VERSION, convertLayersModel, readTfjsLayersModel } from './convert.ts';

export interface SuperResolutionEntry {
  name: string;
  packageName: string;
  /** UpscalerJS architecture: rdn models take [0, 255], rrdn models [0, 1]. */
  architecture: 'rdn' | 'rrdn';
  scales: readonly number[];
  /** Installed with `npm ci` (false: an optional extra the user installs). */
  bundled: boolean;
  about: string;
}

export const SUPER_RESOLUTION_MODELS: readonly SuperResolutionEntry[] = [
  { name: 'esrgan-slim', packageName: '@upscalerjs/esrgan-slim', architecture: 'rdn', scales: [2, 3, 4, 8], bundled: true, about: 'RDN, 2 dense blocks: fastest' },
  { name: 'esrgan-medium', packageName: '@upscalerjs/esrgan-medium', architecture: 'rdn', scales: [2, 3, 4, 8], bundled: true, about: 'RDN, 10 dense blocks: sharper, ~3x slower' },
  {
    name: 'esrgan-thick',
    packageName: '@upscalerjs/esrgan-thick',
    architecture: 'rrdn',
    scales: [2, 3, 4, 8],
    bundled: false,
    about: 'RRDN (110 MB package, not installed by default: npm install --no-save @upscalerjs/esrgan-thick)',
  },
];

/** The model `npm run upscale` and the farm use when none is named (chosen from bench/results/upscale.md). */
export const DEFAULT_SUPER_RESOLUTION_MODEL = 'esrgan-slim';

export class UpscalerNotAvailableError extends Error {
  override name = 'UpscalerNotAvailableError';
}

export function superResolutionEntry(name: string): SuperResolutionEntry {
  const entry = SUPER_RESOLUTION_MODELS.find((m) => m.name === name);
  if (!entry) {
    throw new UpscalerNotAvailableError(`unknown upscaler "${name}"; choose one of ${SUPER_RESOLUTION_MODELS.map((m) => m.name).join(', ')} or x4-diffusion`);
  }
  return entry;
}

/** The package's folder in node_modules (searched upwards from the repository, like Node does), or null. */
export function findPackageDir(packageName: string): string | null {
  for (let dir = REPO_ROOT; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', ...packageName.split('/'));
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dirname(dir) === dir) return null;
  }
}

function packageVersion(dir: string): string {
  return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * BLENDFARM_MODEL_CACHE, read and checked by the settings table (config/settings.ts `modelCache`:
 * a file there is refused with its ConfigError line), else models/.cache.
 */
export function modelCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return join(readSetting('modelCache', env) ?? join(MODELS_ROOT, '.cache'), 'upscalers');
}

/** Which converted models could be used here: installed package and supported scale. */
export function availableSuperResolutionModels(): { name: string; scales: readonly number[]; installed: boolean }[] {
  return SUPER_RESOLUTION_MODELS.map((m) => ({ name: m.name, scales: m.scales, installed: findPackageDir(m.packageName) !== null }));
}

export interface UpscalerManifest {
  kind: 'super-resolution';
  name: string;
  scale: number;
  receptiveRadius: number;
  source: string;
  license: string;
  converterVersion: number;
  parameters: number;
  layers: Record<string, number>;
}

/**
 * The folder of the ONNX conversion of `name` at `scale`, converting (once, a few seconds) when the
 * cache has none for this package version. Concurrent callers may both convert; the last rename wins
 * with identical content.
 */
export async function ensureSuperResolutionModel(name: string, scale: number): Promise<string> {
  const entry = superResolutionEntry(name);
  if (!entry.scales.includes(scale)) {
    throw new UpscalerNotAvailableError(`${name} has no ${scale}x model; it has ${entry.scales.map((s) => `${s}x`).join(', ')}`);
  }
  const pkgDir = findPackageDir(entry.packageName);
  if (!pkgDir) {
    throw new UpscalerNotAvailableError(
      `the ${name} weights are not installed (package ${entry.packageName}); ` +
        (entry.bundled ? 'run npm ci to install the dependencies' : `install them with npm install --no-save ${entry.packageName}`),
    );
  }
  const version = packageVersion(pkgDir);
  const dir = join(modelCacheRoot(), `${name}-${version}-c${CONVERTER_VERSION}`, `x${scale}`);
  const manifestFile = join(dir, 'upscaler.json');
  if (existsSync(manifestFile) && existsSync(join(dir, 'model.onnx'))) return dir;

  const src = join(pkgDir, 'models', `x${scale}`);
  const { json, weights } = await readTfjsLayersModel(src);
  const converted = convertLayersModel(json, weights, { name, scale, inputRange: entry.architecture === 'rdn' ? [0, 255] : [0, 1] }, join(src, 'model.json'));
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  await rm(tmp, { recursive: true, force: true });
  await saveModel(tmp, 'model.onnx', converted.built);
  const manifest: UpscalerManifest = {
    kind: 'super-resolution',
    name,
    scale,
    receptiveRadius: converted.receptiveRadius,
    source: `${entry.packageName}@${version} models/x${scale}`,
    license: 'MIT',
    converterVersion: CONVERTER_VERSION,
    parameters: converted.parameters,
    layers: converted.layers,
  };
  await writeFile(join(tmp, 'upscaler.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  await mkdir(dirname(dir), { recursive: true });
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return dir;
}

export async function readUpscalerManifest(dir: string): Promise<UpscalerManifest> {
  return JSON.parse(await readFile(join(dir, 'upscaler.json'), 'utf8')) as UpscalerManifest;
}
