/**
 * The bot's own permissions a render needs where it is asked for (bot/permissions.ts): in a thread,
 * a forum's posts included, Discord checks Send Messages in Threads where elsewhere it checks Send
 * Messages, so a thread where the bot may post is not refused for lacking Send Messages (which there
 * means posting in the parent channel, or creating posts in a forum), and one where it may not is.
 */
import { PermissionFlagsBits, PermissionsBitField } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { permissionsIn, POSTING_PERMISSIONS, postingRefusal, REACTION_PERMISSIONS } from '../../bot/permissions.ts';

const { ViewChannel, SendMessages, SendMessagesInThreads, AttachFiles, EmbedLinks, ReadMessageHistory } = PermissionFlagsBits;
const thread = { isThread: () => true };
const textChannel = { isThread: () => false };
const interaction = (granted: bigint, channel: { isThread(): boolean } | null, inGuild = true) => ({
  inGuild: () => inGuild,
  appPermissions: new PermissionsBitField(granted).freeze(),
  channel,
});

describe('posting permissions in threads', () => {
  it('in a thread Send Messages in Threads takes the place of Send Messages; elsewhere the list is as it is', () => {
    expect(permissionsIn(thread, POSTING_PERMISSIONS).map((p) => p.name)).toEqual(['View Channel', 'Send Messages in Threads', 'Attach Files', 'Embed Links']);
    expect(permissionsIn(thread, REACTION_PERMISSIONS).map((p) => p.flag)).toEqual([ViewChannel, SendMessagesInThreads, AttachFiles, EmbedLinks, ReadMessageHistory]);
    expect(permissionsIn(textChannel, POSTING_PERMISSIONS)).toBe(POSTING_PERMISSIONS);
    expect(permissionsIn(null, POSTING_PERMISSIONS)).toBe(POSTING_PERMISSIONS);
  });

  it('a render in a thread where the bot may post there but not in the parent channel is not refused', () => {
    expect(postingRefusal(interaction(ViewChannel | SendMessagesInThreads | AttachFiles | EmbedLinks, thread))).toBeUndefined();
  });

  it('a render in a thread where the bot may not post is refused, naming Send Messages in Threads', () => {
    expect(postingRefusal(interaction(ViewChannel | SendMessages | AttachFiles | EmbedLinks, thread))).toBe(
      "I can't post videos in this channel: I'm missing the **Send Messages in Threads** permission here, so nothing was queued or charged. " +
        'Ask a server admin to give me View Channel, Send Messages in Threads, Attach Files and Embed Links in this channel (Edit Channel → Permissions), or use the command in a channel where I have them.',
    );
  });

  it('outside threads Send Messages counts, as before; outside a server nothing is checked', () => {
    expect(postingRefusal(interaction(ViewChannel | SendMessagesInThreads | AttachFiles | EmbedLinks, textChannel))).toMatch(/missing the \*\*Send Messages\*\* permission/);
    expect(postingRefusal(interaction(ViewChannel | SendMessages | AttachFiles | EmbedLinks, textChannel))).toBeUndefined();
    expect(postingRefusal(interaction(0n, { isThread: () => false }, false))).toBeUndefined();
  });
});
