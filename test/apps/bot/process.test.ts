/**
 * `npm start` as a process: bot + embedded PGlite + a render worker (engine in a thread) in one
 * process, configured only through the environment, talking to the fake Discord.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { buttonsOf, type FakeDiscord } from '../../fake-discord/index.ts';
import { type BotProcess, startBotProcess } from '../../helpers/bot-process.ts';
import { probeVideo } from '../../../engine/video/probe.ts';
import { testModelDir } from '../../../models/paths.ts';

let bot: BotProcess;
let fake: FakeDiscord;
let child: ChildProcess;

beforeAll(async () => {
  bot = await startBotProcess('blendfarm-start-', () => ({ BLENDFARM_MODEL_DIR: testModelDir('demo') }));
  ({ fake, child } = bot);
});

afterAll(() => bot?.stop());

describe('npm start (one-process mode)', () => {
  it('answers /blend with a finished video from its own worker, then shuts down cleanly on SIGTERM', async () => {
    const alice = fake.createUser({ username: 'alice' });
    fake.addMember(alice);
    const handle = fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: 'a red sunset', to: 'a green forest', quality: 'draft', duration: 1 } });
    expect((await handle.waitForResponse()).type).toBe(5);
    const done = await handle.waitForOriginal((m) => m.attachments.length > 0, 90_000);
    expect((await probeVideo(done.attachments[0].bytes)).frames).toBe(12);
    expect(buttonsOf(done).map((b) => b.customId?.split(':')[1])).toEqual(['upscale', 'reroll', 'extend']);
    expect(bot.output).toMatch(/1 local render worker\(s\) on cpu/);

    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
  });
});
