/** The upload limit a render is made for: as Discord sends it with an interaction, or from the server's Boost level (a reaction). */
import { describe, expect, it } from 'vitest';
import { GuildPremiumTier } from 'discord.js';
import { guildUploadLimit, uploadLimit } from '../../bot/submit.ts';
import { DEFAULT_UPLOAD_LIMIT } from '../../bot/delivery.ts';

const MIB = 1024 * 1024;

describe('upload limits', () => {
  it('by Boost level: none and level 1 the default (10 MiB), level 2 50 MiB, level 3 100 MiB; outside a server the default', () => {
    expect(DEFAULT_UPLOAD_LIMIT).toBe(10 * MIB);
    expect(
      [GuildPremiumTier.None, GuildPremiumTier.Tier1, GuildPremiumTier.Tier2, GuildPremiumTier.Tier3].map((premiumTier) => guildUploadLimit({ premiumTier }).maxBytes),
    ).toEqual([10 * MIB, 10 * MIB, 50 * MIB, 100 * MIB]);
    expect(guildUploadLimit(null)).toEqual({ maxBytes: 10 * MIB });
    // A level Discord adds later: the default, which every server accepts.
    expect(guildUploadLimit({ premiumTier: 4 as GuildPremiumTier })).toEqual({ maxBytes: 10 * MIB });
  });

  it('as the interaction says it; nothing (the parent’s) when it says none', () => {
    expect(uploadLimit({ attachmentSizeLimit: 25 * MIB })).toEqual({ maxBytes: 25 * MIB });
    expect(uploadLimit({ attachmentSizeLimit: 0 })).toEqual({});
  });
});
