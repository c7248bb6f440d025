/**
 * The engine's one error class for a bad request: a value the caller chose (size, steps, seed,
 * guidance, starting latents, ...) that the engine cannot render. Callers treat it as permanent
 * (retrying the same request fails the same way) and may show its message to the user as it is:
 * it says what was wrong and what to do.
 *
 * Faults that are not about the request keep their own classes: ModelFileError (a model folder's
 * file is missing or malformed), ExecutionProviderError (the GPU runtime could not be loaded),
 * RenderCancelledError (aborted), ModelOutputError (a model produced NaN/inf).
 */
export class InvalidRequestError extends Error {
  override name = 'InvalidRequestError';
}

/**
 * A model produced NaN or infinity where a picture should be (e.g. an fp16 VAE that overflows).
 * Never rendered as a black frame: the message names the component and the fix.
 */
export class ModelOutputError extends Error {
  override name = 'ModelOutputError';
}

/** Index of the first NaN/infinite value, or -1 when all are finite; with the count of them. */
export function nonFinite(data: ArrayLike<number>): { first: number; count: number } {
  let first = -1;
  let count = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) {
      if (first < 0) first = i;
      count++;
    }
  }
  return { first, count };
}
