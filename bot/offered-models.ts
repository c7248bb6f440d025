/**
 * One shared recent read of the models online workers offer (farm offeredModels) per farm: the
 * `model` option's autocomplete (each keystroke of every member asks) and the rule for a server's
 * default model on a /blend with pictures (render-options.ts serverModelApplies) read it here.
 */
import { offeredModels, type FarmContext, type OfferedModel } from '../farm/index.ts';

/** How long one read of the offered models answers every caller. */
export const OFFERED_MODELS_MAX_AGE_MS = 2000;

/**
 * `load` shared: calls while one is under way, or up to `maxAgeMs` after it succeeded, get its
 * result; a failure is not kept (the next call loads again).
 */
export function sharedRecently<T>(load: () => Promise<T>, maxAgeMs: number, now: () => number = Date.now): () => Promise<T> {
  let last: { promise: Promise<T>; at: number | undefined } | undefined;
  return () => {
    if (last && (last.at === undefined || now() - last.at <= maxAgeMs)) return last.promise;
    const entry: { promise: Promise<T>; at: number | undefined } = { promise: load(), at: undefined };
    last = entry;
    entry.promise.then(
      () => (entry.at = now()),
      () => {
        if (last === entry) last = undefined;
      },
    );
    return entry.promise;
  };
}

/** One shared read of the offered models per farm (OFFERED_MODELS_MAX_AGE_MS). */
const offeredModelsOf = new WeakMap<FarmContext, () => Promise<OfferedModel[]>>();

/** The models online workers offer, read at most once per OFFERED_MODELS_MAX_AGE_MS for `farm`. */
export function recentOfferedModels(farm: FarmContext): Promise<OfferedModel[]> {
  let read = offeredModelsOf.get(farm);
  if (!read) offeredModelsOf.set(farm, (read = sharedRecently(() => offeredModels(farm), OFFERED_MODELS_MAX_AGE_MS)));
  return read();
}
