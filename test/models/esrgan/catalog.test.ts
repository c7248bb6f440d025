// The converted-model cache's folder: BLENDFARM_MODEL_CACHE through the settings table
// (config/settings.ts `modelCache`), else models/.cache.
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../../config/index.ts';
import { MODELS_ROOT } from '../../../models/paths.ts';
import { modelCacheRoot } from '../../../models/esrgan/catalog.ts';
import { useTempDir } from '../../helpers/temp-dir.ts';

let dir: string;
useTempDir('blendfarm-model-cache-', (d) => (dir = d));

describe('modelCacheRoot', () => {
  it('is BLENDFARM_MODEL_CACHE/upscalers when set, models/.cache/upscalers when unset or blank', () => {
    expect(modelCacheRoot({ BLENDFARM_MODEL_CACHE: join(dir, 'cache') })).toBe(join(dir, 'cache', 'upscalers'));
    expect(modelCacheRoot({})).toBe(join(MODELS_ROOT, '.cache', 'upscalers'));
    expect(modelCacheRoot({ BLENDFARM_MODEL_CACHE: '  ' })).toBe(join(MODELS_ROOT, '.cache', 'upscalers'));
  });

  it('refuses a file with the settings table\'s line, as loadConfig does (it was: ENOTDIR from mkdir after the conversion)', () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    let error: unknown;
    try {
      modelCacheRoot({ BLENDFARM_MODEL_CACHE: file });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      `BLENDFARM_MODEL_CACHE=${JSON.stringify(file)} is a file, not a folder; give a folder (it is created when missing). Folder for models converted on first use (the ESRGAN upscalers); unset = models/.cache in the project.`,
    ]);
  });
});
