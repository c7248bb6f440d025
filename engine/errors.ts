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

/**
 * Whether `err` is an allocation failure: ONNX Runtime's arenas ("Failed to allocate memory"),
 * CUDA, cuDNN or cuBLAS running out of device memory, a C++ std::bad_alloc, or the JS heap
 * refusing a typed array. The one rule every front end uses to say "ran out of memory" (the
 * worker fails such a job without retrying it; the CLIs name the flag to change).
 */
export function isOutOfMemory(err: unknown): boolean {
  const msg = err instanceof Error ? err.message : String(err);
  return /Failed to allocate memory|out of memory|CUDNN_STATUS_ALLOC_FAILED|CUBLAS_STATUS_ALLOC_FAILED|cudaErrorMemoryAllocation|std::bad_alloc|Array buffer allocation failed/i.test(msg);
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
