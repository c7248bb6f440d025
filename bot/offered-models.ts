/**
 * One shared recent read of the models online workers offer (farm offeredModels) per farm: the
 * `model` option's autocomplete (each keystroke of every member asks) and the rule for a server's
 * default model on a /blend with pictures (render-options.ts serverModelApplies) read it here.
 */
import { offeredModels, type FarmContext, type OfferedModel } from '../farm/index.ts';

/** How long one read of the offered models answers every caller. */
export const OFFERED_MODELS_MAX_AGE_MS = 2000;

/**
 * How long a read of the offered models still under way is waited for by new callers; an older one
 * (the database hangs) is given up on and a new one started, so a hung query does not answer every
 * autocomplete with nothing until it settles. Below LOOKUP_BEFORE_ANSWER_MS (2 s, bot/submit.ts), so a
 * keystroke arriving after it gets a read that can still answer within Discord's 3 s.
 */
export const OFFERED_MODELS_IN_FLIGHT_LIMIT_MS = 1500;

export interface SharedRecentlyOptions {
  /** How long after it succeeded a load answers every caller. */
  maxAgeMs: number;
  /** How long a load under way answers new callers; past it, the next caller starts another load. */
  inFlightLimitMs: number;
  /** A monotonic clock in ms (default performance.now): a step of the wall clock neither keeps a read for an hour nor drops it early. */
  now?: () => number;
  /**
   * Loads under way at most (default 2): past it, callers share the newest one however long it has
   * run, so a database that hangs holds at most this many of the pool's connections for autocomplete.
   */
  maxInFlight?: number;
}

/**
 * `load` shared: calls while one is under way (for up to `inFlightLimitMs` after it started), or up
 * to `maxAgeMs` after it succeeded, get its result. A failure is not kept (the next call loads
 * again), nor is a load that takes longer than `inFlightLimitMs`: the next call starts another (the
 * slow one still answers those already waiting for it), so at most one load starts per
 * `inFlightLimitMs` however long each hangs, and no more than `maxInFlight` are under way at once.
 */
export function sharedRecently<T>(load: () => Promise<T>, { maxAgeMs, inFlightLimitMs, now = () => performance.now(), maxInFlight = 2 }: SharedRecentlyOptions): () => Promise<T> {
  interface Entry {
    promise: Promise<T>;
    startedAt: number;
    /** When it succeeded; undefined while under way. */
    at: number | undefined;
  }
  let last: Entry | undefined;
  let underWay = 0;
  return () => {
    const t = now();
    if (last && (last.at === undefined ? t - last.startedAt <= inFlightLimitMs || underWay >= maxInFlight : t - last.at <= maxAgeMs)) return last.promise;
    const entry: Entry = { promise: load(), startedAt: t, at: undefined };
    last = entry;
    underWay++;
    entry.promise.then(
      () => {
        underWay--;
        entry.at = now();
      },
      () => {
        underWay--;
        if (last === entry) last = undefined;
      },
    );
    return entry.promise;
  };
}

/** One shared read of the offered models per farm (OFFERED_MODELS_MAX_AGE_MS, OFFERED_MODELS_IN_FLIGHT_LIMIT_MS). */
const offeredModelsOf = new WeakMap<FarmContext, () => Promise<OfferedModel[]>>();

/** The models online workers offer, read at most once per OFFERED_MODELS_MAX_AGE_MS for `farm`. */
export function recentOfferedModels(farm: FarmContext): Promise<OfferedModel[]> {
  let read = offeredModelsOf.get(farm);
  if (!read) offeredModelsOf.set(farm, (read = sharedRecently(() => offeredModels(farm), { maxAgeMs: OFFERED_MODELS_MAX_AGE_MS, inFlightLimitMs: OFFERED_MODELS_IN_FLIGHT_LIMIT_MS })));
  return read();
}
