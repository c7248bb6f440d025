// Finds the ffmpeg / ffprobe binaries. An explicit env var wins, then the npm-bundled binaries,
// then whatever is on PATH, so a server can pin a newer system build without code changes.
//
// The engine reads FFMPEG_PATH and FFPROBE_PATH itself (it imports nothing outside engine/, the
// configuration included): this lookup order is its documented rule. The settings table
// (config/settings.ts ffmpegPath, ffprobePath) documents the same variables for .env and
// .env.example, in this order (test/config/config.test.ts keeps the two in step); a process that
// loads .env (loadDotEnv) puts them in the environment this reads.
import { accessSync, constants, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export type FfmpegSource = 'FFMPEG_PATH' | 'ffmpeg-static' | '@ffmpeg-installer/ffmpeg' | 'PATH';
export type FfprobeSource = 'FFPROBE_PATH' | 'ffprobe-static' | '@ffprobe-installer/ffprobe' | 'PATH';

export interface ResolvedBinary<Source extends string> {
  path: string;
  source: Source;
}

const requireOptional = createRequire(import.meta.url);

/** Loads an optional package; absent (or unsupported-platform) packages yield undefined. */
function loadOptional(name: string): unknown {
  try {
    return requireOptional(name);
  } catch {
    // Not installed, or the installer package threw because this platform has no binary.
    return undefined;
  }
}

/** The packages export either the path string itself (ffmpeg-static) or an object with `.path`. */
function packageBinaryPath(name: string): string | undefined {
  const mod = loadOptional(name);
  let candidate: unknown = mod;
  if (mod && typeof mod === 'object' && 'path' in mod) candidate = (mod as { path: unknown }).path;
  if (typeof candidate !== 'string' || candidate === '') return undefined;
  return isFile(candidate) ? candidate : undefined;
}

function isFile(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function isExecutableFile(file: string): boolean {
  if (!isFile(file)) return false;
  if (process.platform === 'win32') return true;
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findOnPath(command: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter((d) => d !== '');
  const names = process.platform === 'win32' ? [`${command}.exe`, command] : [command];
  for (const dir of dirs) {
    for (const name of names) {
      const candidate = path.join(dir, name);
      if (isExecutableFile(candidate)) return candidate;
    }
  }
  return undefined;
}

/** An env var that is set must point at a real file: silently falling back would hide a typo. */
function fromEnv(variable: string): string | undefined {
  const value = process.env[variable];
  if (value === undefined || value.trim() === '') return undefined;
  if (!isFile(value)) {
    throw new Error(`${variable} is set to "${value}" but no file exists there; point it at the binary or unset it.`);
  }
  if (!isExecutableFile(value)) {
    throw new Error(`${variable} is set to "${value}", which is not executable; chmod +x it or point ${variable} elsewhere.`);
  }
  return value;
}

export interface Lookup<Source extends string> {
  command: string;
  envVar: Source;
  packages: readonly Source[];
}

/** Where ffmpeg is looked for, in order: the variable, these packages, then ffmpeg on PATH. */
export const FFMPEG_LOOKUP: Lookup<FfmpegSource> = { command: 'ffmpeg', envVar: 'FFMPEG_PATH', packages: ['ffmpeg-static', '@ffmpeg-installer/ffmpeg'] };
/** Where ffprobe is looked for, in order: the variable, these packages, then ffprobe on PATH. */
export const FFPROBE_LOOKUP: Lookup<FfprobeSource> = { command: 'ffprobe', envVar: 'FFPROBE_PATH', packages: ['ffprobe-static', '@ffprobe-installer/ffprobe'] };

function resolveBinary<Source extends string>(lookup: Lookup<Source>): ResolvedBinary<Source> {
  const fromVar = fromEnv(lookup.envVar);
  if (fromVar) return { path: fromVar, source: lookup.envVar };
  for (const pkg of lookup.packages) {
    const bundled = packageBinaryPath(pkg);
    if (bundled) return { path: bundled, source: pkg };
  }
  const onPath = findOnPath(lookup.command);
  if (onPath) return { path: onPath, source: 'PATH' as Source };
  throw new Error(
    `${lookup.command} not found: install ${lookup.packages.join(' or ')}, put ${lookup.command} on PATH, ` +
      `or set ${lookup.envVar} to the ${lookup.command} binary.`,
  );
}

export function resolveFfmpeg(): ResolvedBinary<FfmpegSource> {
  return resolveBinary(FFMPEG_LOOKUP);
}

export function resolveFfprobe(): ResolvedBinary<FfprobeSource> {
  return resolveBinary(FFPROBE_LOOKUP);
}
