// A server's render defaults (/settings defaults): merged by default, replaced in one write with
// replaceDefaults (a reset with values: nothing half done when the write fails, and no other
// admin's change merged into what should be a clean replacement), cleared with null.
import { describe, expect, it } from 'vitest';
import type { FarmContext } from '../../farm/config.ts';
import { getGuildSettings, updateGuildSettings } from '../../farm/guilds.ts';
import { BACKENDS } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

describe.each(BACKENDS)('server render defaults on %s', (backend) => {
  let farm: FarmContext;
  useTestFarm(backend, {}, (t) => ({ farm } = t));

  it('merges, replaces in one write, and clears', async () => {
    await updateGuildSettings(farm, 'g-defaults', { defaults: { quality: 'high', size: 'portrait' } });
    await updateGuildSettings(farm, 'g-defaults', { defaults: { format: 'webm' } });
    expect((await getGuildSettings(farm, 'g-defaults')).defaults).toEqual({ quality: 'high', size: 'portrait', format: 'webm' });

    const replaced = await updateGuildSettings(farm, 'g-defaults', { defaults: { quality: 'draft' }, replaceDefaults: true });
    expect(replaced.defaults).toEqual({ quality: 'draft' });

    await updateGuildSettings(farm, 'g-defaults', { defaults: null });
    expect((await getGuildSettings(farm, 'g-defaults')).defaults).toEqual({});
  });
});
