/** The engine's out-of-memory rule (isOutOfMemory), on its public surface for every front end. */
import { describe, expect, it } from 'vitest';
import { isOutOfMemory } from '../../engine/index.ts';

describe('isOutOfMemory', () => {
  it('knows the allocation failures of ONNX Runtime, CUDA, cuDNN, cuBLAS, C++ and the JS heap', () => {
    for (const message of [
      'Failed to allocate memory for requested buffer of size 4294967296',
      'CUDA failure 2: out of memory ; GPU=0',
      'CUDNN failure 4: CUDNN_STATUS_ALLOC_FAILED',
      'CUBLAS failure 3: CUBLAS_STATUS_ALLOC_FAILED',
      'cudaErrorMemoryAllocation',
      'std::bad_alloc',
    ]) {
      expect(isOutOfMemory(new Error(message)), message).toBe(true);
    }
    expect(isOutOfMemory(new RangeError('Array buffer allocation failed'))).toBe(true);
    // Not an Error: its text is read.
    expect(isOutOfMemory('Out of memory')).toBe(true);
  });

  it('leaves other errors alone', () => {
    expect(isOutOfMemory(new Error('Got invalid dimensions for input: x'))).toBe(false);
    expect(isOutOfMemory(new Error('ENOENT: no such file or directory, open model.onnx'))).toBe(false);
    expect(isOutOfMemory(undefined)).toBe(false);
  });
});
