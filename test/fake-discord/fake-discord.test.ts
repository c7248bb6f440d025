/**
 * The fake Discord driven by the real discord.js 14 client: login over the fake gateway, command
 * registration, a deferred slash command answered with a file and a button, a button press with
 * an ephemeral reply, injected 429 / 413 faults, token expiry, a dropped connection that resumes,
 * and a restarted client that still finds the bot's messages.
 */
import { once } from 'node:events';
import {
  ActionRowBuilder,
  ApplicationCommandOptionType,
  ButtonBuilder,
  ButtonStyle,
  Client,
  DiscordAPIError,
  GatewayIntentBits,
  LabelBuilder,
  MessageFlags,
  ModalBuilder,
  Partials,
  Routes,
  TextInputBuilder,
  TextInputStyle,
  type ChatInputCommandInteraction,
  type Interaction,
} from 'discord.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buttonsOf, Permissions, startFakeDiscord, type FakeDiscord, type FakeUser, type StoredMessage } from './index.ts';

const TOKEN = 'fake.token.value';
const ORIGINAL = '/webhooks/:applicationId/:token/messages/@original';

let fake: FakeDiscord;
let client: Client;
let user: FakeUser;
/** What the test bot does with the next interactions; each test sets its own. */
let onInteraction: (i: Interaction) => Promise<void> = async () => {};
const handlerErrors: unknown[] = [];

async function connectClient(): Promise<Client> {
  const c = new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: fake.restBase } });
  c.on('interactionCreate', (i) => {
    onInteraction(i).catch((error: unknown) => handlerErrors.push(error));
  });
  const ready = once(c, 'clientReady');
  await c.login(TOKEN);
  await ready;
  return c;
}

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function rerollRow(customId: string) {
  return new ActionRowBuilder<ButtonBuilder>().addComponents(new ButtonBuilder().setCustomId(customId).setLabel('Re-roll').setStyle(ButtonStyle.Primary));
}

/** Runs /blend with a handler that defers, then returns whatever `edit` produced (result or error). */
async function blendWith(edit: (i: ChatInputCommandInteraction) => Promise<unknown>) {
  const outcome = deferred<unknown>();
  onInteraction = async (i) => {
    if (!i.isChatInputCommand()) return;
    await i.deferReply();
    outcome.resolve(await edit(i).catch((error: unknown) => error));
  };
  const handle = fake.sendSlashCommand({ commandName: 'blend', user, options: { from: 'a lighthouse', seed: 3 } });
  return { handle, outcome: await outcome.promise };
}

beforeAll(async () => {
  // A short heartbeat interval so the test sees heartbeats and ACKs within its few seconds.
  fake = await startFakeDiscord({ token: TOKEN, heartbeatIntervalMs: 300, guilds: [{ name: 'Blendfarm Test', channels: ['general', 'renders'] }] });
  user = fake.createUser({ username: 'alice' });
  fake.addMember(user);
  client = await connectClient();
});

afterAll(async () => {
  await client?.destroy();
  await fake?.close();
});

describe('fake Discord with the real discord.js client', () => {
  let original: StoredMessage;
  const bytes = Buffer.from([0x42, 0x4c, 0x45, 0x4e, 0x44, 0x00, 0xff, 0x10, 0x20, 0x30]);

  it('logs the client in over the fake gateway and records the intents it asked for', async () => {
    expect(fake.lastIdentify?.intentNames).toEqual(['Guilds']);
    expect(fake.lastIdentify?.shard).toEqual([0, 1]);
    expect(client.user?.id).toBe(fake.bot.id);
    expect(client.application?.id).toBe(fake.applicationId);
    const guild = client.guilds.cache.get(fake.guild().id);
    expect(guild?.name).toBe('Blendfarm Test');
    expect(guild?.ownerId).toBe(fake.guild().ownerId);
    expect([...guild!.channels.cache.values()].map((c) => c.name).sort()).toEqual(['general', 'renders']);
    // Without the GuildMembers intent Discord only includes the bot's own member.
    expect([...guild!.members.cache.keys()]).toEqual([fake.bot.id]);
    await vi.waitFor(() => expect(fake.gateway.heartbeatsAcked).toBeGreaterThan(0), { timeout: 3000 });
    await vi.waitFor(() => expect(client.ws.ping).toBeGreaterThanOrEqual(0), { timeout: 3000 });
  });

  it('stores commands registered through the REST API and refuses malformed ones with 50035', async () => {
    const guildId = fake.guild().id;
    const registered = await client.application!.commands.set(
      [
        {
          name: 'blend',
          description: 'Blend from one prompt to another',
          options: [
            { type: ApplicationCommandOptionType.String, name: 'from', description: 'First prompt', required: true, maxLength: 200 },
            { type: ApplicationCommandOptionType.Integer, name: 'seed', description: 'Seed', minValue: 0 },
          ],
        },
      ],
      guildId,
    );
    const stored = fake.commands(guildId);
    expect(stored.map((c) => c.name)).toEqual(['blend']);
    expect(stored[0].options.map((o) => [o.name, o.type, o.required ?? false])).toEqual([
      ['from', 3, true],
      ['seed', 4, false],
    ]);
    expect(stored[0].options[0].max_length).toBe(200);
    expect([...registered.keys()]).toEqual([stored[0].id]);
    expect(fake.commands()).toEqual([]);

    const refused = await client.application!.commands.set([{ name: 'Not Valid', description: '' }], guildId).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DiscordAPIError);
    expect((refused as DiscordAPIError).code).toBe(50035);
    expect((refused as DiscordAPIError).message).toMatch(/APPLICATION_COMMAND_INVALID_NAME/);
    expect(fake.commands(guildId).map((c) => c.id)).toEqual([stored[0].id]);
  });

  it('sees a slash command deferred in time, then @original edited with the file and the button', async () => {
    onInteraction = async (i) => {
      if (!i.isChatInputCommand()) return;
      await i.deferReply();
      const from = i.options.getString('from', true);
      const seed = i.options.getInteger('seed');
      await i.editReply({ content: `blending ${from} (seed ${seed})`, files: [{ attachment: bytes, name: 'a.bin' }], components: [rerollRow('reroll:1')] });
    };
    const handle = fake.sendSlashCommand({ commandName: 'blend', user, options: { from: 'a cat', seed: 7 } });
    expect(handle.payload.attachment_size_limit).toBe(10 * 1024 * 1024);

    const response = await handle.waitForResponse();
    expect(response.type).toBe(5);
    expect(response.typeName).toBe('deferred-reply');
    expect(response.ephemeral).toBe(false);
    // The fake refuses callbacks past its 3 s deadline with 404 / 10062, so 204 means "in time".
    const callback = fake.requests.find((r) => r.route === '/interactions/:interactionId/:token/callback' && r.path.includes(handle.id));
    expect(callback?.status).toBe(204);

    original = await handle.waitForOriginal((m) => m.attachments.length > 0);
    expect(original.content).toBe('blending a cat (seed 7)');
    expect(original.attachments).toHaveLength(1);
    expect(original.attachments[0].filename).toBe('a.bin');
    expect(original.attachments[0].bytes.equals(bytes)).toBe(true);
    expect(buttonsOf(original).map((b) => b.customId)).toEqual(['reroll:1']);
    expect(original.interactionId).toBe(handle.id);
    expect(original.revisions[0].flags & MessageFlags.Loading).toBe(MessageFlags.Loading);
    expect(original.flags & MessageFlags.Loading).toBe(0);
    const edits = fake.edits(handle);
    expect(edits).toHaveLength(1);
    expect(edits[0].via).toBe(`PATCH ${'/webhooks/:applicationId/:token/messages/:messageId'}`);
    expect(fake.originalResponse(handle)).toBe(original);

    // The attachment URL Discord would give is served by the fake with the same bytes.
    const download = Buffer.from(await (await fetch(original.attachments[0].url)).arrayBuffer());
    expect(download.equals(bytes)).toBe(true);
  });

  it('delivers a button press from that message and records the ephemeral reply (flags 64)', async () => {
    const seen = deferred<{ messageId: string; customId: string; userId: string }>();
    onInteraction = async (i) => {
      if (!i.isButton()) return;
      seen.resolve({ messageId: i.message.id, customId: i.customId, userId: i.user.id });
      await i.reply({ content: 'Only you can see this', flags: MessageFlags.Ephemeral });
    };
    const press = fake.pressButton({ messageId: original.id, customId: 'reroll:1', user });
    expect(await seen.promise).toEqual({ messageId: original.id, customId: 'reroll:1', userId: user.id });
    const response = await press.waitForResponse();
    expect(response.type).toBe(4);
    expect(response.flags & 64).toBe(64);
    expect(response.ephemeral).toBe(true);
    const reply = press.original();
    expect(reply?.content).toBe('Only you can see this');
    expect(reply?.ephemeral).toBe(true);

    // Ephemeral messages are invisible through the channel API, as on Discord.
    const channel = client.channels.cache.get(reply!.channelId);
    if (!channel?.isTextBased()) throw new Error('expected a text channel');
    const hidden = await channel.messages.fetch({ message: reply!.id, force: true }).catch((e: unknown) => e);
    expect((hidden as DiscordAPIError).code).toBe(10008);

    // Without the reactions intent the bot is not told about reactions.
    expect(fake.addReaction({ messageId: original.id, emoji: '🔍', user }).delivered).toBe(false);
    expect(fake.message(original.id)?.reactions.get('🔍')?.has(user.id)).toBe(true);
  });

  it('lets discord.js retry an @original edit answered with 429, and the edit lands', async () => {
    fake.failNext({ route: ORIGINAL, method: 'PATCH', status: 429, retryAfter: 0.2 });
    const { handle, outcome } = await blendWith((i) => i.editReply({ content: 'after the rate limit' }));
    expect(outcome).not.toBeInstanceOf(Error);
    expect(handle.original()?.content).toBe('after the rate limit');
    const patches = fake.requests.filter((r) => r.method === 'PATCH' && r.path.includes(handle.token));
    expect(patches.map((r) => [r.status, r.injected])).toEqual([
      [429, true],
      [200, false],
    ]);
    expect(fake.pendingFaults).toBe(0);
  });

  it('surfaces an injected 413 and an upload over the server limit as DiscordAPIError 40005', async () => {
    fake.failNext({ route: ORIGINAL, method: 'PATCH', status: 413 });
    const injected = await blendWith((i) => i.editReply({ content: 'x', files: [{ attachment: bytes, name: 'v.mp4' }] }));
    expect(injected.outcome).toBeInstanceOf(DiscordAPIError);
    expect((injected.outcome as DiscordAPIError).code).toBe(40005);
    expect((injected.outcome as DiscordAPIError).status).toBe(413);

    fake.setAttachmentSizeLimit(1024);
    try {
      const tooBig = await blendWith((i) => i.editReply({ files: [{ attachment: Buffer.alloc(2048, 1), name: 'big.mp4' }] }));
      expect((tooBig.outcome as DiscordAPIError).code).toBe(40005);
      expect(tooBig.handle.payload.attachment_size_limit).toBe(1024);
      expect(tooBig.handle.original()?.attachments).toEqual([]);
      const fits = await blendWith((i) => i.editReply({ files: [{ attachment: Buffer.alloc(1000, 2), name: 'small.mp4' }] }));
      expect(fits.outcome).not.toBeInstanceOf(Error);
      expect(fits.handle.original()?.attachments.map((a) => [a.filename, a.size, a.contentType])).toEqual([['small.mp4', 1000, 'video/mp4']]);
    } finally {
      fake.setAttachmentSizeLimit(10 * 1024 * 1024);
    }
  });

  it('reports the Boost level that goes with the upload limit, and sends GUILD_UPDATE when it changes', async () => {
    const MIB = 1024 * 1024;
    const id = fake.guild().id;
    const tiers = async () => [client.guilds.cache.get(id)!.premiumTier, ((await client.rest.get(Routes.guild(id))) as { premium_tier: number }).premium_tier];
    expect(await tiers()).toEqual([0, 0]);
    try {
      fake.setAttachmentSizeLimit(50 * MIB);
      await vi.waitFor(async () => expect(await tiers()).toEqual([2, 2]), { timeout: 3000 });
      fake.setAttachmentSizeLimit(100 * MIB);
      await vi.waitFor(async () => expect(await tiers()).toEqual([3, 3]), { timeout: 3000 });
    } finally {
      fake.setAttachmentSizeLimit(10 * MIB);
    }
    await vi.waitFor(async () => expect(await tiers()).toEqual([0, 0]), { timeout: 3000 });
  });

  it('answers calls with an expired token with 50027 (webhooks) and 10062 (callbacks)', async () => {
    const release = deferred<void>();
    const outcome = deferred<unknown>();
    onInteraction = async (i) => {
      if (!i.isChatInputCommand()) return;
      await i.deferReply();
      await release.promise;
      outcome.resolve(await i.editReply('too late').catch((e: unknown) => e));
    };
    const handle = fake.sendSlashCommand({ commandName: 'blend', user, options: { from: 'late' } });
    await handle.waitForResponse();
    fake.expireToken(handle.token);
    release.resolve();
    const error = (await outcome.promise) as DiscordAPIError;
    expect(error).toBeInstanceOf(DiscordAPIError);
    expect(error.code).toBe(50027);
    expect(error.status).toBe(401);

    const lateCallback = deferred<unknown>();
    const go = deferred<void>();
    onInteraction = async (i) => {
      if (!i.isChatInputCommand()) return;
      await go.promise;
      lateCallback.resolve(await i.deferReply().catch((e: unknown) => e));
    };
    const unanswered = fake.sendSlashCommand({ commandName: 'blend', user, options: { from: 'never' } });
    // The handler waits for `go`, so the token is dead before it tries to defer.
    fake.expireToken(unanswered.token);
    go.resolve();
    expect(((await lateCallback.promise) as DiscordAPIError).code).toBe(10062);
    expect(unanswered.response).toBeNull();
  });

  it('refuses what Discord refuses: over-long content, empty messages, unknown routes', async () => {
    const channelId = fake.channel('general').id;
    const channel = client.channels.cache.get(channelId);
    if (!channel?.isSendable()) throw new Error('expected a sendable channel');
    const tooLong = (await channel.send('x'.repeat(2001)).catch((e: unknown) => e)) as DiscordAPIError;
    expect(tooLong.code).toBe(50035);
    expect(tooLong.message).toMatch(/content\[BASE_TYPE_MAX_LENGTH\]/);
    const empty = (await client.rest.post(Routes.channelMessages(channelId), { body: { content: '   ' } }).catch((e: unknown) => e)) as DiscordAPIError;
    expect(empty.code).toBe(50006);
    const unknown = (await client.rest.get('/no/such/route').catch((e: unknown) => e)) as DiscordAPIError;
    expect(unknown.status).toBe(404);
    expect(fake.unhandled.map((u) => `${u.method} ${u.path}`)).toEqual(['GET /no/such/route']);
    fake.unhandled.length = 0;
    expect(fake.messages(channelId).filter((m) => m.origin === 'channel')).toEqual([]);
  });

  it('threads: an archived one refuses edits (50083) until unarchived, a new message unarchives it unless it is locked', async () => {
    const thread = fake.addThread({ name: 'ideas', parent: 'general' });
    await vi.waitFor(() => expect(client.channels.cache.get(thread.id)?.isThread()).toBe(true), { timeout: 3000 });
    const inThread = deferred<unknown>();
    let interaction: ChatInputCommandInteraction | undefined;
    onInteraction = async (i) => {
      if (!i.isChatInputCommand()) return;
      interaction = i;
      await i.deferReply();
      inThread.resolve(await i.editReply('queued'));
    };
    const run = fake.sendSlashCommand({ commandName: 'blend', user, channelId: thread.id, options: { from: 'a thread' } });
    await inThread.promise;
    expect(interaction!.channel?.isThread()).toBe(true);
    const reply = run.original()!;
    expect(reply.channelId).toBe(thread.id);

    fake.setThread(thread.id, { archived: true });
    await vi.waitFor(() => expect((client.channels.cache.get(thread.id) as { archived?: boolean } | undefined)?.archived).toBe(true), { timeout: 3000 });
    const refusedEdit = (await interaction!.editReply('done').catch((e: unknown) => e)) as DiscordAPIError;
    expect([refusedEdit.status, refusedEdit.code]).toEqual([400, 50083]);
    const refusedChannelEdit = (await client.rest.patch(Routes.channelMessage(thread.id, reply.id), { body: { content: 'done' } }).catch((e: unknown) => e)) as DiscordAPIError;
    expect(refusedChannelEdit.code).toBe(50083);
    // Unarchived (Send Messages is enough on a thread that is not locked): the edit lands, and the client hears of it.
    await client.rest.patch(Routes.channel(thread.id), { body: { archived: false } });
    expect(thread.thread!.archived).toBe(false);
    await vi.waitFor(() => expect((client.channels.cache.get(thread.id) as { archived?: boolean } | undefined)?.archived).toBe(false), { timeout: 3000 });
    expect((await interaction!.editReply('done')).content).toBe('done');

    // A new message unarchives it by itself.
    fake.setThread(thread.id, { archived: true });
    await client.rest.post(Routes.channelMessages(thread.id), { body: { content: 'hello again' } });
    expect(thread.thread!.archived).toBe(false);

    // Locked: a bot without Manage Threads may neither unarchive it nor post in it.
    fake.setThread(thread.id, { archived: true, locked: true });
    const unarchive = (await client.rest.patch(Routes.channel(thread.id), { body: { archived: false } }).catch((e: unknown) => e)) as DiscordAPIError;
    expect([unarchive.status, unarchive.code]).toEqual([403, 50013]);
    const post = (await client.rest.post(Routes.channelMessages(thread.id), { body: { content: 'let me in' } }).catch((e: unknown) => e)) as DiscordAPIError;
    expect(post.code).toBe(50083);
    fake.setThread(thread.id, { archived: false });
    const postLocked = (await client.rest.post(Routes.channelMessages(thread.id), { body: { content: 'let me in' } }).catch((e: unknown) => e)) as DiscordAPIError;
    expect(postLocked.code).toBe(160005);
    expect(fake.messages(thread.id).map((m) => m.content)).toEqual(['done', 'hello again']);
    expect(fake.unhandled).toEqual([]);
    // Threads are not among the server's channels in GUILD_CREATE or GET /guilds/:id/channels.
    const listed = (await client.rest.get(Routes.guildChannels(fake.guild().id))) as { id: string }[];
    expect(listed.map((c) => c.id)).not.toContain(thread.id);
  });

  it('channel overwrites set the permissions an interaction carries: without View Channel none', async () => {
    const bob = fake.createUser({ username: 'bob' });
    fake.addMember(bob);
    const { ViewChannel, SendMessages, ManageMessages } = Permissions;
    const moderators = fake.addRole('Moderators', ManageMessages);
    fake.addMember(bob, { roles: [moderators.id] });
    const hidden = fake.addChannel({ name: 'private', overwrites: [{ role: '@everyone', deny: ViewChannel }, { user: 'alice', allow: ViewChannel }, { user: fake.bot.id, allow: ViewChannel }, { role: 'Moderators', deny: SendMessages }] });
    onInteraction = async (i) => {
      if (i.isChatInputCommand()) await i.reply({ content: 'ok', flags: MessageFlags.Ephemeral });
    };
    const perms = (h: { payload: Record<string, unknown> }) => BigInt((h.payload.member as { permissions: string }).permissions);
    const asAlice = fake.sendSlashCommand({ commandName: 'blend', user, channelId: hidden.id, options: { from: 'x' } });
    expect(perms(asAlice) & ViewChannel).toBe(ViewChannel);
    expect(BigInt(asAlice.payload.app_permissions as string) & ViewChannel).toBe(ViewChannel);
    expect((asAlice.payload.channel as { permission_overwrites: unknown[] }).permission_overwrites).toHaveLength(4);
    // Bob moderates (Manage Messages) but may not see the channel: Discord gives him nothing there.
    const asBob = fake.sendSlashCommand({ commandName: 'blend', user: bob, channelId: hidden.id, options: { from: 'x' } });
    expect(perms(asBob)).toBe(0n);
    // Where he sees it, his role's Manage Messages counts (and the bot's own permissions are its server-wide ones).
    const inGeneral = fake.sendSlashCommand({ commandName: 'blend', user: bob, options: { from: 'x' } });
    expect(perms(inGeneral) & (ManageMessages | SendMessages)).toBe(ManageMessages | SendMessages);
    expect(BigInt(inGeneral.payload.app_permissions as string) & SendMessages).toBe(SendMessages);
    await Promise.all([asAlice, asBob, inGeneral].map((h) => h.waitForResponse()));
  });

  it('replays an interaction sent while the connection was down once the client resumes', async () => {
    onInteraction = async (i) => {
      if (i.isChatInputCommand()) await i.reply({ content: `resumed: ${i.options.getString('from', true)}` });
    };
    const before = fake.gateway.resumes;
    fake.gateway.disconnectAll(4000);
    const handle = fake.sendSlashCommand({ commandName: 'blend', user, options: { from: 'during the outage' } });
    expect((await handle.waitForResponse()).type).toBe(4);
    expect(handle.original()?.content).toBe('resumed: during the outage');
    expect(fake.gateway.resumes).toBe(before + 1);
    expect(fake.identifies).toHaveLength(1);
  });

  it('keeps its state across a bot restart: a new client fetches the same message and its button works', async () => {
    await client.destroy();
    expect(fake.gatewayClosures.at(-1)).toMatchObject({ by: 'client', code: 1000 });
    client = await connectClient();
    expect(fake.identifies).toHaveLength(2);

    const channel = await client.channels.fetch(original.channelId);
    if (!channel?.isTextBased()) throw new Error('expected a text channel');
    const fetched = await channel.messages.fetch(original.id);
    expect(fetched.content).toBe('blending a cat (seed 7)');
    expect(fetched.attachments.first()?.name).toBe('a.bin');
    expect(fetched.attachments.first()?.size).toBe(bytes.length);
    expect(fetched.interactionMetadata?.id).toBe(original.interactionId);
    const row = fetched.components[0];
    expect(row && 'components' in row ? row.components.map((c) => ('customId' in c ? c.customId : null)) : []).toEqual(['reroll:1']);

    onInteraction = async (i) => {
      if (i.isButton()) await i.update({ content: 're-rolled', components: [] });
    };
    const press = fake.pressButton({ messageId: original.id, customId: 'reroll:1', user });
    expect((await press.waitForResponse()).type).toBe(7);
    expect(fake.message(original.id)?.content).toBe('re-rolled');
    expect(fake.message(original.id)?.attachments.map((a) => a.filename)).toEqual(['a.bin']);

    expect(handlerErrors).toEqual([]);
    expect(fake.unhandled).toEqual([]);
    expect(fake.serverErrors).toEqual([]);
    expect(fake.gateway.protocolErrors).toEqual([]);
  });
});

describe('forms, follow-ups and reactions through the fake', () => {
  let fake2: FakeDiscord;
  let bot: Client;
  let carol: FakeUser;
  const reactions: string[] = [];

  beforeAll(async () => {
    fake2 = await startFakeDiscord({ token: TOKEN });
    carol = fake2.createUser({ username: 'carol' });
    bot = new Client({
      intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessageReactions],
      partials: [Partials.Message, Partials.Reaction, Partials.User],
      rest: { api: fake2.restBase },
    });
    bot.on('messageReactionAdd', (reaction, by) => void reactions.push(`${reaction.emoji.name} ${by.id} ${reaction.message.id}`));
    bot.on('interactionCreate', (i) => {
      const work = async () => {
        if (i.isChatInputCommand()) {
          await i.deferReply();
          await i.followUp({ content: 'queued', components: [rerollRow('extend:9')] });
          await i.followUp({ content: 'position 1 of 1' });
        } else if (i.isButton()) {
          const prompt = new TextInputBuilder().setCustomId('prompt').setStyle(TextInputStyle.Paragraph).setMaxLength(200);
          await i.showModal(new ModalBuilder().setCustomId('extend-form').setTitle('Extend the movie').addLabelComponents(new LabelBuilder().setLabel('Next prompt').setTextInputComponent(prompt)));
        } else if (i.isModalSubmit()) {
          await i.reply({ content: `extending with ${i.fields.getTextInputValue('prompt')}`, flags: MessageFlags.Ephemeral });
        }
      };
      work().catch((error: unknown) => handlerErrors.push(error));
    });
    const ready = once(bot, 'clientReady');
    await bot.login(TOKEN);
    await ready;
    await bot.application!.commands.set([{ name: 'movie', description: 'Render a movie' }]);
  });

  afterAll(async () => {
    await bot?.destroy();
    await fake2?.close();
  });

  it('turns the first follow-up after a deferral into @original, later ones into new messages', async () => {
    expect(fake2.commands().map((c) => c.name)).toEqual(['movie']);
    const handle = fake2.sendSlashCommand({ commandName: 'movie', user: carol });
    await vi.waitFor(() => expect(handle.followUps()).toHaveLength(1));
    expect(handle.original()?.content).toBe('queued');
    expect(fake2.edits(handle).map((e) => e.via)).toEqual(['POST /webhooks/:applicationId/:token']);
    expect(handle.followUps().map((m) => [m.content, m.origin])).toEqual([['position 1 of 1', 'follow-up']]);
  });

  it('opens a form from a button and hands the submitted text back to the bot', async () => {
    const message = fake2.messages().find((m) => m.content === 'queued')!;
    const press = fake2.pressButton({ messageId: message.id, customId: 'extend:9', user: carol });
    const shown = await press.waitForResponse();
    expect(shown.typeName).toBe('modal');
    expect(shown.data?.custom_id).toBe('extend-form');
    expect(() => fake2.submitModal({ to: press, values: { prompt: '' } })).toThrow(/required/);
    expect(() => fake2.submitModal({ to: press, values: { prompt: 'x', seed: '1' } })).toThrow(/no field/);
    const submit = fake2.submitModal({ to: press, values: { prompt: 'a sunset over the sea' } });
    const reply = await submit.waitForOriginal();
    expect(reply.content).toBe('extending with a sunset over the sea');
    expect(reply.ephemeral).toBe(true);
  });

  it('tells a bot with the reactions intent about reactions, and stores the bot\'s own', async () => {
    const message = fake2.messages().find((m) => m.content === 'queued')!;
    expect(fake2.addReaction({ messageId: message.id, emoji: '🔁', user: carol }).delivered).toBe(true);
    await vi.waitFor(() => expect(reactions).toEqual([`🔁 ${carol.id} ${message.id}`]));
    const channel = bot.channels.cache.get(message.channelId);
    if (!channel?.isTextBased()) throw new Error('expected a text channel');
    await (await channel.messages.fetch(message.id)).react('🔍');
    expect([...(fake2.message(message.id)?.reactions.get('🔍') ?? [])]).toEqual([fake2.bot.id]);
  });

  it('refuses a login asking for a privileged intent the application lacks (close code 4014)', async () => {
    const greedy = new Client({ intents: [GatewayIntentBits.Guilds, GatewayIntentBits.MessageContent], rest: { api: fake2.restBase } });
    const error = await greedy.login(TOKEN).catch((e: unknown) => e);
    await greedy.destroy();
    expect(String(error)).toMatch(/disallowed intents/i);
    expect(fake2.gatewayClosures.at(-1)).toMatchObject({ by: 'fake', code: 4014 });
    expect(fake2.unhandled).toEqual([]);
    expect(fake2.serverErrors).toEqual([]);
    expect(handlerErrors).toEqual([]);
  });
});

describe('autocomplete through the fake', () => {
  let fake3: FakeDiscord;
  let bot: Client;
  let dave: FakeUser;
  /** What the bot answers the next autocomplete with, from the focused option; what it saw. */
  let answer: (focused: { name: string; value: string }) => Array<{ name: string; value: string | number }> = () => [];
  const seen: Array<{ command: string; subcommand: string | null; focused: { name: string; value: string }; from: string | null }> = [];
  const refusals: unknown[] = [];

  beforeAll(async () => {
    fake3 = await startFakeDiscord({ token: TOKEN });
    dave = fake3.createUser({ username: 'dave' });
    bot = new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: fake3.restBase } });
    bot.on('interactionCreate', (i) => {
      if (!i.isAutocomplete()) return;
      const focused = i.options.getFocused(true);
      seen.push({ command: i.commandName, subcommand: i.options.getSubcommand(false), focused: { name: focused.name, value: String(focused.value) }, from: i.options.getString('from') });
      i.respond(answer({ name: focused.name, value: String(focused.value) })).catch((error: unknown) => refusals.push(error));
    });
    const ready = once(bot, 'clientReady');
    await bot.login(TOKEN);
    await ready;
    await bot.application!.commands.set([
      {
        name: 'blend',
        description: 'Blend',
        options: [
          { type: ApplicationCommandOptionType.String, name: 'from', description: 'First prompt', required: true },
          { type: ApplicationCommandOptionType.String, name: 'model', description: 'Model', autocomplete: true, maxLength: 100 },
          { type: ApplicationCommandOptionType.Integer, name: 'seed', description: 'Seed' },
        ],
      },
      {
        name: 'settings',
        description: 'Settings',
        options: [{ type: ApplicationCommandOptionType.Subcommand, name: 'defaults', description: 'Defaults', options: [{ type: ApplicationCommandOptionType.String, name: 'model', description: 'Model', autocomplete: true }] }],
      },
    ]);
  });

  afterAll(async () => {
    await bot?.destroy();
    await fake3?.close();
  });

  it('sends the typed text as the focused option, required options still missing, and records the type-8 choices', async () => {
    answer = ({ value }) => ['sdxl-turbo', 'demo', 'sd15'].filter((m) => m.includes(value)).map((m) => ({ name: `${m} · 1 GPU worker`, value: m }));
    const handle = fake3.sendAutocomplete({ commandName: 'blend', user: dave, focused: 'model', typed: 'sd' });
    expect(handle.kind).toBe('autocomplete');
    expect(handle.payload.type).toBe(4);
    expect((handle.payload.data as { options: unknown[] }).options).toEqual([{ type: 3, name: 'model', value: 'sd', focused: true }]);
    expect(await handle.waitForChoices()).toEqual([
      { name: 'sdxl-turbo · 1 GPU worker', value: 'sdxl-turbo' },
      { name: 'sd15 · 1 GPU worker', value: 'sd15' },
    ]);
    expect(handle.response?.typeName).toBe('autocomplete-result');
    expect(seen.at(-1)).toEqual({ command: 'blend', subcommand: null, focused: { name: 'model', value: 'sd' }, from: null });

    // Options already filled in come along; inside a subcommand the focused option is nested in it.
    const filled = fake3.sendAutocomplete({ commandName: 'blend', user: dave, focused: 'model', options: { from: 'a cat' } });
    expect(await filled.waitForChoices()).toHaveLength(3);
    expect(seen.at(-1)).toMatchObject({ focused: { name: 'model', value: '' }, from: 'a cat' });
    const nested = fake3.sendAutocomplete({ commandName: 'settings', subcommand: 'defaults', user: dave, focused: 'model', typed: 'demo' });
    expect(await nested.waitForChoices()).toEqual([{ name: 'demo · 1 GPU worker', value: 'demo' }]);
    expect(seen.at(-1)).toMatchObject({ command: 'settings', subcommand: 'defaults' });
  });

  it('sends none for an option without autocomplete or past its length, and refuses results Discord refuses (50035)', async () => {
    expect(() => fake3.sendAutocomplete({ commandName: 'blend', user: dave, focused: 'from' })).toThrow(/not registered with autocomplete/);
    expect(() => fake3.sendAutocomplete({ commandName: 'blend', user: dave, focused: 'model', typed: 'x'.repeat(101) })).toThrow(/more than 100/);
    const bad: Array<Array<{ name: string; value: string | number }>> = [
      Array.from({ length: 26 }, (_, i) => ({ name: `m${i}`, value: `m${i}` })),
      [{ name: 'x'.repeat(101), value: 'x' }],
      [{ name: '', value: 'x' }],
      [{ name: 'seven', value: 7 }],
      [{ name: 'long', value: 'x'.repeat(101) }],
    ];
    for (const choices of bad) {
      const before = refusals.length;
      answer = () => choices;
      const handle = fake3.sendAutocomplete({ commandName: 'blend', user: dave, focused: 'model' });
      await vi.waitFor(() => expect(refusals.length).toBe(before + 1));
      expect(refusals.at(-1)).toBeInstanceOf(DiscordAPIError);
      expect((refusals.at(-1) as DiscordAPIError).code).toBe(50035);
      expect(handle.response).toBeNull();
    }
    // 25 choices is the most, and an empty list is an answer too.
    answer = () => Array.from({ length: 25 }, (_, i) => ({ name: `m${i}`, value: `m${i}` }));
    expect(await fake3.sendAutocomplete({ commandName: 'blend', user: dave, focused: 'model' }).waitForChoices()).toHaveLength(25);
    answer = () => [];
    expect(await fake3.sendAutocomplete({ commandName: 'blend', user: dave, focused: 'model' }).waitForChoices()).toEqual([]);
    expect(fake3.unhandled).toEqual([]);
    expect(fake3.serverErrors).toEqual([]);
  });
});
