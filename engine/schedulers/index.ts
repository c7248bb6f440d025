/**
 * Scheduler factory: picks one of the diffusers-compatible schedulers by name and builds it from a
 * scheduler_config.json (missing keys take that scheduler's own diffusers defaults, as in from_config).
 */
import { DDIMScheduler } from './ddim.ts';
import { DPMSolverMultistepScheduler } from './dpmpp-2m.ts';
import { EulerDiscreteScheduler } from './euler.ts';
import { LCMScheduler } from './lcm.ts';
import type { Scheduler, SchedulerConfig, SchedulerKind, SchedulerOptions } from './scheduler.ts';

export type {
  ResolvedSchedulerConfig,
  Sample,
  Scheduler,
  SchedulerConfig,
  SchedulerKind,
  SchedulerOptions,
  StepResult,
} from './scheduler.ts';
export { SchedulerConfigError } from './scheduler.ts';
export { DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, LCMScheduler };

export const schedulerKinds: readonly SchedulerKind[] = ['ddim', 'euler', 'dpmpp_2m', 'lcm'];

export function isSchedulerKind(value: unknown): value is SchedulerKind {
  return typeof value === 'string' && (schedulerKinds as readonly string[]).includes(value);
}

export function createScheduler(
  kind: SchedulerKind,
  config: SchedulerConfig | Record<string, unknown>,
  opts: SchedulerOptions = {},
): Scheduler {
  switch (kind) {
    case 'ddim':
      return new DDIMScheduler(config, opts);
    case 'euler':
      return new EulerDiscreteScheduler(config, opts);
    case 'dpmpp_2m':
      return new DPMSolverMultistepScheduler(config, opts);
    case 'lcm':
      return new LCMScheduler(config, opts);
    default:
      throw new RangeError(
        `unknown scheduler "${String(kind)}"; choose one of ${schedulerKinds.join(', ')}`,
      );
  }
}

/**
 * diffusers scheduler classes a model folder may name, mapped to the closest scheduler we have.
 * The DDPM-family samplers we lack (PNDM, LMS, Heun, UniPC, ...) get DPM++ 2M: same training
 * parameterisation, and a good general-purpose default.
 */
const KIND_BY_CLASS_NAME: Readonly<Record<string, SchedulerKind>> = {
  DDIMScheduler: 'ddim',
  EulerDiscreteScheduler: 'euler',
  // Ancestral Euler adds fresh noise each step; plain Euler is its deterministic counterpart.
  EulerAncestralDiscreteScheduler: 'euler',
  DPMSolverMultistepScheduler: 'dpmpp_2m',
  DPMSolverSinglestepScheduler: 'dpmpp_2m',
  DPMSolverSDEScheduler: 'dpmpp_2m',
  LCMScheduler: 'lcm',
  PNDMScheduler: 'dpmpp_2m',
  DDPMScheduler: 'dpmpp_2m',
  LMSDiscreteScheduler: 'dpmpp_2m',
  HeunDiscreteScheduler: 'dpmpp_2m',
  KDPM2DiscreteScheduler: 'dpmpp_2m',
  KDPM2AncestralDiscreteScheduler: 'dpmpp_2m',
  UniPCMultistepScheduler: 'dpmpp_2m',
  DEISMultistepScheduler: 'dpmpp_2m',
};

/**
 * Default scheduler kind for a diffusers `_class_name`; null for classes with no sensible
 * equivalent here (e.g. flow-matching schedulers), so the caller can fall back or refuse.
 */
export function schedulerKindFromClassName(name: string | null | undefined): SchedulerKind | null {
  if (!name) return null;
  return Object.hasOwn(KIND_BY_CLASS_NAME, name) ? KIND_BY_CLASS_NAME[name] : null;
}
