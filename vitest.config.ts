import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // onnxruntime sessions and ffmpeg runs are slow on a 2-core CI machine.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Builds the small ONNX test models once, before any test file runs.
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
  },
});
