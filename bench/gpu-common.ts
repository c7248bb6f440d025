/**
 * What the GPU measurements (bench/ and scripts/gpu-*.ts) share: the device's name, how far a
 * result is from its reference, the median of repeated timings, test inputs, and option parsing.
 */
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { choiceOption, UsageError } from '../apps/cli-kit.ts';

/** "NVIDIA H200, 143771 MiB" from nvidia-smi on CUDA; "cpu: <model> x<cores>" on the CPU. */
export function deviceName(ep: 'cpu' | 'cuda', deviceId = 0): string {
  if (ep !== 'cuda') return `cpu: ${cpus()[0]?.model.trim() ?? 'unknown'} x${cpus().length}`;
  try {
    return execFileSync('nvidia-smi', ['--query-gpu=name,memory.total', '--format=csv,noheader', '-i', String(deviceId)], { encoding: 'utf8' }).trim();
  } catch {
    return 'cuda (nvidia-smi not found)';
  }
}

/** ‖a − ref‖ / ‖ref‖, and whether every value of both is finite. */
export function relativeError(a: Float32Array, ref: Float32Array): { rel: number; finite: boolean } {
  if (a.length !== ref.length) throw new RangeError(`relativeError: ${a.length} values against a reference of ${ref.length}`);
  let num = 0;
  let den = 0;
  let finite = true;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]) || !Number.isFinite(ref[i])) finite = false;
    num += (a[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return { rel: Math.sqrt(num / den), finite };
}

/** The middle value by `key` (the upper one of an even count). */
export function median<T>(values: readonly T[], key: (v: T) => number): T {
  return [...values].sort((a, b) => key(a) - key(b))[Math.floor(values.length / 2)];
}

/** Deterministic test input values (no RNG state): the same feeds on every machine and run. */
export function testFloats(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7311 + seed * 1.37) + 0.3 * Math.cos(i * 0.013 * seed));
}

/** The execution providers a GPU script measures on. */
export const GPU_EPS = ['cpu', 'cuda'] as const;

/** The --ep of a GPU script: one of GPU_EPS, else a UsageError (one line, exit status 2 under runCli). */
export function gpuEp(value: string | undefined): (typeof GPU_EPS)[number] {
  const ep = choiceOption('ep', value, GPU_EPS);
  if (ep === undefined) throw new UsageError(`--ep must be one of ${GPU_EPS.join(', ')}`);
  return ep;
}

/** --name's whole numbers of at least 1, from "2,8,16" (or one number), else a UsageError. */
export function wholeNumbers(name: string, raw: string): number[] {
  const values = raw.split(',').map((v) => Number(v.trim()));
  for (const v of values) if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${name} takes whole numbers of at least 1, got ${raw}`);
  return values;
}

/** --name's one whole number of at least 1, else a UsageError (a list is refused). */
export function wholeNumber(name: string, raw: string): number {
  const [value, ...rest] = wholeNumbers(name, raw);
  if (rest.length) throw new UsageError(`--${name} takes one whole number, got ${raw}`);
  return value;
}
