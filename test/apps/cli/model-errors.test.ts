/**
 * What the render CLIs say about the model they are given: an empty --model, a model that fails
 * to load (one line on stderr, none of ONNX Runtime's own log), the pipeline's load-time warnings
 * on blend/movie as generate prints them, and --help on the sizes the model takes.
 */
import { describe, expect, it } from 'vitest';
import { cp, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { GraphBuilder, saveModel } from '../../../models/onnx/index.ts';
import { testModelDir } from '../../../models/paths.ts';
import { runCli } from '../../helpers/cli.ts';
import { useTempDir } from '../../helpers/temp-dir.ts';

let dir = '';
useTempDir('cli-model-', (d) => (dir = d));
const cli = (script: string, args: string[], env?: Record<string, string>) => runCli(script, args, { cwd: dir, env });
const SMALL_BLEND = ['--width', '64', '--height', '64', '--steps', '2', '--branches', '2', '--duration', '0.5', '--fps', '4', '--seed-a', '1', '--seed-b', '2'];

describe('--model ""', () => {
  it('is a bad command line, not the demo model (it was: the demo model, silently); an empty BLENDFARM_MODEL_DIR stays "unset"', async () => {
    for (const [script, args] of [
      ['generate.ts', ['x', '--model', '', '--out', 'x.png']],
      ['blend.ts', ['a', 'b', '--model', '', '--out', 'x.mp4']],
    ] as const) {
      const r = await cli(script, [...args]);
      expect(r.code, script).toBe(2);
      expect(r.stderr.trim(), script).toBe('error: --model needs a folder: give the path of a model folder, or leave out --model to use BLENDFARM_MODEL_DIR (else the built-in demo model)');
    }
    const unset = await cli('generate.ts', ['x', '--out', 'x.png', '--steps', '1', '--width', '64', '--height', '64'], { BLENDFARM_MODEL_DIR: '' });
    expect(unset.code).toBe(0);
    expect(unset.stderr).toMatch(/Using the built-in demo model/);
    // The summary line counts in words: "1 step" (it was: "1 steps").
    expect(unset.stdout).toMatch(/, 1 step, /);
  });
});

describe('a model that fails to load', () => {
  it('prints exactly one line on stderr: the error, without ONNX Runtime\'s own coloured log line (it was: two, the first "[E:onnxruntime:, inference_session.cc ...")', async () => {
    const model = join(dir, 'trunc-unet');
    await cp(testModelDir('demo'), model, { recursive: true });
    await rm(join(model, 'unet', 'model.onnx'));
    const g = new GraphBuilder('unet');
    const x = g.input('x', 'float32', [1, 256]);
    // The weights feed a constant-folded Mul: ONNX Runtime reads them while optimizing and logs "Exception during initialization".
    const w = g.op('Mul', [g.initializer('w', 'float32', [1, 256], new Float32Array(256).fill(1)), g.constant(new Float32Array(256).fill(2), [1, 256])]);
    g.output(g.op('Add', [x, w]), 'y', 'float32', [1, 256]);
    await saveModel(join(model, 'unet'), 'model.onnx', g.toModel({ externalData: { location: 'model.onnx_data', minBytes: 16 } }));
    await truncate(join(model, 'unet', 'model.onnx_data'), 100);
    const r = await cli('generate.ts', ['x', '--model', model, '--out', 'x.png', '--steps', '1']);
    expect(r.code).toBe(1);
    const lines = r.stderr.split('\n').filter((line) => line.trim() !== '');
    expect(lines).toEqual([expect.stringMatching(/^error: \S+unet\/model\.onnx: its external weight file model\.onnx_data is truncated or unreadable/)]);
    expect(r.stderr).not.toMatch(/onnxruntime|\x1b\[/);
  });
});

describe('blend and movie report the pipeline\'s load-time warnings, as generate does', () => {
  it('an SDXL export without hidden_states.N: on stderr and in the JSON summary (it was: nothing)', async () => {
    const r = await cli('blend.ts', ['a red house', 'a blue boat', '--model', testModelDir('xl-nohidden'), '--out', 'w.mp4', ...SMALL_BLEND, '--json']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: text_encoder\/model\.onnx has no hidden_states\.N outputs/);
    expect(JSON.parse(r.stdout).warnings.join('\n')).toMatch(/has no hidden_states\.N outputs/);
  }, 120_000);
});

describe('--help on sizes', () => {
  it('says the model decides the multiple, not "multiples of 8"', async () => {
    for (const script of ['generate.ts', 'blend.ts', 'movie.ts']) {
      const help = (await cli(script, ['--help'])).stdout;
      expect(help, script).not.toMatch(/multiples? of 8/);
      expect(help, script).toMatch(/--width W.* multiples? of what the model takes \(.*64 for SD 1\.5/);
    }
  });
});
