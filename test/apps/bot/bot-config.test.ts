/** The setup steps printed without a token, and the README's, invite the bot with what it needs: one list, bot/permissions.ts. */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { PermissionsBitField, REST, Routes } from 'discord.js';
import { inviteUrl, loginFailureText, missingTokenHelp } from '../../../apps/bot/bot-config.ts';
import { INVITE_PERMISSIONS, listOfNames, permissionsIn, permissionsInteger, REACTION_PERMISSIONS } from '../../../bot/permissions.ts';
import { ROOT } from '../../helpers/cli.ts';

const oneLine = (text: string) => text.replace(/\s+/g, ' ');

describe('invite permissions', () => {
  it('are what the bot checks before answering a reaction (posting, and Read Message History for the reply), and posting in threads', () => {
    expect(INVITE_PERMISSIONS.map((p) => p.name)).toEqual([...REACTION_PERMISSIONS.map((p) => p.name), 'Send Messages in Threads']);
    expect(new PermissionsBitField(BigInt(permissionsInteger(INVITE_PERMISSIONS))).toArray().sort()).toEqual(
      ['AttachFiles', 'EmbedLinks', 'ReadMessageHistory', 'SendMessages', 'SendMessagesInThreads', 'ViewChannel'].sort(),
    );
    // Everything the bot checks before posting in a thread (permissionsIn) is granted by the invite.
    const thread = { isThread: () => true };
    for (const p of permissionsIn(thread, REACTION_PERMISSIONS)) expect(INVITE_PERMISSIONS.map((i) => i.flag)).toContain(p.flag);
  });

  it('the printed steps name them all and give an invite URL with the same bits', () => {
    const help = oneLine(missingTokenHelp());
    expect(help).toContain(`the bot permissions ${listOfNames(INVITE_PERMISSIONS.map((p) => `"${p.name}"`))} `);
    expect(help).toContain('"Read Message History"');
    expect(inviteUrl()).toBe(`https://discord.com/oauth2/authorize?client_id=APPLICATION_ID&scope=bot+applications.commands&permissions=${permissionsInteger(INVITE_PERMISSIONS)}`);
    expect(help).toContain(inviteUrl());
  });

  it('the README names the same list and integer', () => {
    const readme = oneLine(readFileSync(join(ROOT, 'README.md'), 'utf8'));
    expect(readme).toContain(`the ${listOfNames(INVITE_PERMISSIONS.map((p) => p.name))} permissions`);
    expect(readme).toContain(`\`permissions=${permissionsInteger(INVITE_PERMISSIONS)}\``);
  });
});

describe('loginFailureText', () => {
  it("names an API that takes the connection and never answers (discord.js's REST timeout), not a bare 'This operation was aborted'", async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/api`;
    try {
      const error = await new REST({ api: base, timeout: 300, retries: 0 }).setToken('a.b.c').get(Routes.gatewayBot()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(Error);
      expect(loginFailureText(error, base)).toBe(
        `could not reach the Discord API at ${base} (no answer in time): check DISCORD_API_BASE (unset = Discord's own) and that the API is reachable from here.`,
      );
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
