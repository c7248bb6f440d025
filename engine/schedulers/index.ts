/**
 * The scheduler registry: the one list of the engine's schedulers. Each scheduler file declares its
 * entry next to its class (kind, the diffusers class names it implements, constructor); the kind
 * type, every lookup (kind -> scheduler, diffusers class name -> kind) and the CLI's choices all
 * derive from `schedulerRegistry` below. Adding a scheduler = one file + one line here.
 *
 * Schedulers are built from a scheduler_config.json (missing keys take that scheduler's own diffusers
 * defaults, as in from_config).
 */
import { DDIM, DDIMScheduler } from './ddim.ts';
import { DPMPP_2M, DPMSolverMultistepScheduler } from './dpmpp-2m.ts';
import { EULER, EulerDiscreteScheduler } from './euler.ts';
import { LCM, LCMScheduler } from './lcm.ts';
import { PNDM, PNDMScheduler } from './pndm.ts';
import { SchedulerConfigError, type Scheduler, type SchedulerConfig, type SchedulerOptions } from './scheduler.ts';

export type {
  ResolvedSchedulerConfig,
  Sample,
  Scheduler,
  SchedulerConfig,
  SchedulerOptions,
  SchedulerRegistration,
  StepResult,
} from './scheduler.ts';
export { SchedulerConfigError } from './scheduler.ts';
export { DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, LCMScheduler, PNDMScheduler };

/** Every scheduler the engine has, in the order help texts list them. */
export const schedulerRegistry = [DDIM, EULER, DPMPP_2M, LCM, PNDM] as const;

/** A scheduler's short name ('ddim', 'euler', 'dpmpp_2m', 'lcm', 'pndm'), as requests and CLIs spell it. */
export type SchedulerKind = (typeof schedulerRegistry)[number]['kind'];

export const schedulerKinds: readonly SchedulerKind[] = schedulerRegistry.map((r) => r.kind);

const BY_KIND: ReadonlyMap<string, (typeof schedulerRegistry)[number]> = new Map(schedulerRegistry.map((r) => [r.kind, r]));

const KIND_BY_CLASS_NAME: ReadonlyMap<string, SchedulerKind> = new Map(
  schedulerRegistry.flatMap((r) => r.classNames.map((name) => [name, r.kind] as const)),
);

/** The diffusers scheduler classes the engine implements (for messages). */
export const supportedSchedulerClassNames: readonly string[] = [...KIND_BY_CLASS_NAME.keys()];

export function isSchedulerKind(value: unknown): value is SchedulerKind {
  return typeof value === 'string' && BY_KIND.has(value);
}

export function createScheduler(
  kind: SchedulerKind,
  config: SchedulerConfig | Record<string, unknown>,
  opts: SchedulerOptions = {},
): Scheduler {
  const entry = BY_KIND.get(kind);
  if (!entry) throw new RangeError(`unknown scheduler "${String(kind)}"; choose one of ${schedulerKinds.join(', ')}`);
  return entry.create(config, opts);
}

/**
 * The scheduler kind implementing a diffusers `_class_name`; null for classes the engine does not
 * have (the caller falls back to its default, see chooseScheduler).
 */
export function schedulerKindFromClassName(name: string | null | undefined): SchedulerKind | null {
  if (!name) return null;
  return KIND_BY_CLASS_NAME.get(name) ?? null;
}

export interface SchedulerChoice {
  kind: SchedulerKind;
  /** Where the choice came from. */
  source: 'request' | 'folder' | 'config' | 'default';
  /** Set when something the folder asked for could not be honoured (said what was used instead). */
  warning?: string;
}

export interface ChooseSchedulerInput {
  /** The caller's explicit choice (request, CLI flag): always wins. */
  requested?: SchedulerKind;
  /** A choice the model folder states explicitly (blendfarm.json defaults.scheduler), if any. */
  folderChoice?: string;
  /** The folder's scheduler/scheduler_config.json; its `_class_name` is used when the engine has it. */
  config: Record<string, unknown>;
  /** The model family's default, used when the config names no class the engine can run. */
  fallback: SchedulerKind;
  /** Names the fallback in warnings, e.g. "the sd1 default". */
  fallbackLabel?: string;
}

/**
 * Which scheduler a pipeline runs: the caller's explicit choice, else the folder's explicit one,
 * else the class scheduler_config.json names when the engine implements it (and the config is one
 * it can run), else the family default, with a warning saying why.
 */
export function chooseScheduler(input: ChooseSchedulerInput): SchedulerChoice {
  if (input.requested !== undefined) {
    if (!isSchedulerKind(input.requested)) {
      throw new RangeError(`unknown scheduler "${String(input.requested)}"; choose one of ${schedulerKinds.join(', ')}`);
    }
    return { kind: input.requested, source: 'request' };
  }
  const fallback = input.fallbackLabel ? `${input.fallback} (${input.fallbackLabel})` : input.fallback;
  const warnings: string[] = [];
  if (input.folderChoice !== undefined) {
    if (isSchedulerKind(input.folderChoice)) return { kind: input.folderChoice, source: 'folder' };
    warnings.push(`blendfarm.json asks for scheduler "${input.folderChoice}", which is not one of ${schedulerKinds.join(', ')}`);
  }
  const className = input.config._class_name;
  if (typeof className === 'string' && className !== '') {
    const kind = schedulerKindFromClassName(className);
    if (kind === null) {
      warnings.push(
        `scheduler_config.json names ${className}, which the engine does not implement (it has ${supportedSchedulerClassNames.join(', ')})`,
      );
    } else {
      try {
        createScheduler(kind, input.config);
        return warnings.length
          ? { kind, source: 'config', warning: `${warnings.join('; ')}; using ${kind}, the class scheduler_config.json names.` }
          : { kind, source: 'config' };
      } catch (err) {
        if (!(err instanceof SchedulerConfigError)) throw err;
        warnings.push(`scheduler_config.json names ${className}, but ${err.message}`);
      }
    }
  }
  if (!warnings.length) return { kind: input.fallback, source: 'default' };
  return { kind: input.fallback, source: 'default', warning: `${warnings.join('; ')}. Using the ${fallback} scheduler instead.` };
}
