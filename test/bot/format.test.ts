// bot/format.ts: what a job's message says at each stage. Pure functions on a Job; no Discord.
import { describe, expect, it } from 'vitest';
import type { Job } from '../../farm/index.ts';
import { BAR_WIDTH, CUT_MARK, discordTime, fitMessage, JOB_TEXT_LENGTH, listInMessage, MAX_MESSAGE_LENGTH, discordWhen, doneText, duration, escapeMarkdown, gpuSeconds, failedText, progressBar, progressText, queuedText, title } from '../../bot/format.ts';

/** The text as it comes back from UTF-8 (a lone half of an emoji does not: it becomes U+FFFD). */
const utf8 = (text: string) => Buffer.from(text, 'utf8').toString('utf8');

function job(overrides: Partial<Job> = {}, params: Partial<Job['params']> = {}): Job {
  return {
    id: 7,
    kind: 'blend',
    status: 'queued',
    userId: '111',
    guildId: '222',
    channelId: '333',
    messageId: null,
    interactionToken: null,
    interactionExpiresAt: null,
    params: { prompts: ['a cat', 'a dog'], negativePrompt: '', seeds: [42, 43], durationSeconds: 1, fps: 12, width: 512, height: 512, steps: 4, maxBranches: 8, depthStrength: 0.5, model: 'demo', format: 'mp4', ...params },
    model: 'demo',
    pixels: 512 * 512,
    attempts: 0,
    maxAttempts: 3,
    workerId: null,
    leaseExpiresAt: null,
    progress: null,
    error: null,
    userError: null,
    parentJobId: null,
    reservedGpuSeconds: 12.4,
    spentGpuSeconds: null,
    chargedGpuSeconds: null,
    createdAt: new Date('2024-01-01T00:00:00Z'),
    startedAt: null,
    finishedAt: null,
    deliveredAt: null,
    ...overrides,
  };
}

describe('pieces', () => {
  it('GPU-seconds read one way everywhere: at most one decimal, the unit spelled out, singular for exactly one', () => {
    expect([1, 2.5, 0, 0.04, 12.345, 1.04, 90].map(gpuSeconds)).toEqual(['1 GPU-second', '2.5 GPU-seconds', '0 GPU-seconds', '0 GPU-seconds', '12.3 GPU-seconds', '1 GPU-second', '90 GPU-seconds']);
  });

  it('times as Discord timestamps: whole seconds, relative and full', () => {
    const at = new Date('2026-12-03T13:31:28.631Z');
    expect(discordTime(at, 'R')).toBe('<t:1796304688:R>');
    expect(discordTime(at)).toBe('<t:1796304688:f>');
    expect(discordWhen(at)).toBe('<t:1796304688:R> (<t:1796304688:f>)');
  });

  it('progress bar: filled in proportion, clamped, with a percentage', () => {
    expect(progressBar(0)).toBe(`${'░'.repeat(BAR_WIDTH)} 0%`);
    expect(progressBar(0.5)).toBe(`${'█'.repeat(BAR_WIDTH / 2)}${'░'.repeat(BAR_WIDTH / 2)} 50%`);
    expect(progressBar(1.7)).toBe(`${'█'.repeat(BAR_WIDTH)} 100%`);
    expect(progressBar(-1)).toBe(progressBar(0));
  });

  it('durations: seconds under a minute, minutes under two hours, hours up to a day, then days; exact, zero parts left out', () => {
    expect([duration(0), duration(59.4), duration(61), duration(75), duration(3600), duration(5400), duration(7199)]).toEqual(['0s', '59s', '1m 01s', '1m 15s', '60m', '90m', '119m 59s']);
    expect([duration(7200), duration(9000), duration(7205), duration(86400), duration(86401)]).toEqual(['2h', '2h 30m', '2h 05s', '24h', '1d 01s']);
    expect([duration(129600), duration(172800), duration(7 * 86400), duration(86400 + 3600 + 60 + 1)]).toEqual(['1d 12h', '2d', '7d', '1d 1h 01m 01s']);
  });

  it('markdown and mentions in prompts are shown as typed', () => {
    expect(escapeMarkdown('*bold* _it_ `code` a|b @everyone')).toBe('\\*bold\\* \\_it\\_ \\`code\\` a\\|b @\u200beveryone');
  });

  it('a list in one message (/queue’s workers): as many as fit, how many more, and the tail always', () => {
    const workers = Array.from({ length: 80 }, (_, i) => `• gpu-worker-${i}.farm.example: cuda (NVIDIA H100), 1/1 busy`);
    const text = listInMessage({ head: ['**3** waiting, **80** rendering, **80** workers online.'], items: workers, tail: ['You have nothing waiting.'] });
    expect(text.length).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
    const lines = text.split('\n');
    const shown = lines.filter((l) => l.startsWith('• '));
    expect(shown).toEqual(workers.slice(0, shown.length));
    expect(lines.slice(-2)).toEqual([`…and ${80 - shown.length} more.`, 'You have nothing waiting.']);
    // Few enough: all of them, no "more" line.
    expect(listInMessage({ head: ['h'], items: ['• a', '• b'], tail: ['t'] })).toBe('h\n• a\n• b\nt');
  });

  it('a masked link in a prompt is not a link in the bot’s message (no phishing under the bot’s name)', () => {
    const job = { id: 7, kind: 'blend' as const, parentJobId: null, params: { prompts: ['[Claim your free Nitro](https://evil.example/nitro)', 'a cat'] } };
    expect(title(job as never)).toBe('**Blend** #7: \\[Claim your free Nitro\\](https\u200b://evil.example/nitro) → a cat');
  });

  it('a web address in a prompt is neither a link nor a preview in the bot’s message', () => {
    const job = { id: 7, kind: 'blend' as const, parentJobId: null, params: { prompts: ['Claim your free Nitro https://evil.example/nitro or HTTP://x.example', 'a cat'] } };
    const text = title(job as never);
    expect(text).not.toMatch(/[a-z]+:\/\//i);
    expect(text).toBe('**Blend** #7: Claim your free Nitro https\u200b://evil.example/nitro or HTTP\u200b://x.example → a cat');
  });

  it('a long prompt is shortened without splitting an emoji (half of one is not UTF-8: Discord refused the message, and the video was never posted)', () => {
    const fox = `${'a'.repeat(76)}🦊 and more words after it`;
    const text = title({ id: 7, kind: 'blend', parentJobId: null, params: { prompts: [fox, 'a cat'] } } as never);
    expect(utf8(text)).toBe(text);
    expect(text).toBe(`**Blend** #7: ${'a'.repeat(76)}… → a cat`);
    const failed = failedText(job({ status: 'failed', attempts: 1, error: 'x', userError: `${'e'.repeat(299)}🦊 tail` }));
    expect(utf8(failed)).toBe(failed);
    expect(failed).toContain(`: ${'e'.repeat(299)}\n`);
  });

  it('title: kind, number and prompts; long movies shortened; an extension names the movie it continues', () => {
    expect(title(job())).toBe('**Blend** #7: a cat → a dog');
    const prompts = ['one', 'two', 'three', 'four', 'five', 'six'];
    expect(title(job({ kind: 'movie' }, { prompts }))).toBe('**Movie** #7: one → two → … → six');
    expect(title(job({ kind: 'movie' }, { prompts: ['x'.repeat(100), 'y'] }))).toBe(`**Movie** #7: ${'x'.repeat(77)}… → y`);
    expect(title(job({ kind: 'extend', parentJobId: 5 }, { prompts: ['a cat', 'a dog', 'a bird'] }))).toBe('**Extension** #7 of #5: a cat → a dog → a bird');
    expect(title(job({ kind: 'reroll', parentJobId: 5 }))).toBe('**Re-roll** #7: a cat → a dog');
  });
});

describe('each stage', () => {
  it('queued: the place in line (when known) and the GPU-seconds reserved', () => {
    expect(queuedText(job(), undefined)).toBe('**Blend** #7: a cat → a dog\nQueued: in the queue. Reserved 12.4 GPU-seconds from your budget.');
    expect(queuedText(job(), 1)).toMatch(/Queued: next in the queue\./);
    expect(queuedText(job(), 3)).toMatch(/Queued: number 3 in the queue\./);
    // A prompt certainly longer than CLIP reads, said before it renders; a movie of 16 such prompts still fits.
    const long = Array.from({ length: 90 }, () => 'cat').join(' ');
    expect(queuedText(job({}, { prompts: ['a cat', long] }), 1)).toBe(
      `**Blend** #7: a cat → ${long.slice(0, 77)}…\nQueued: next in the queue. Reserved 12.4 GPU-seconds from your budget.\n` +
        '⚠️ Prompt B is at least 90 CLIP tokens long; the text encoder reads 75, so its end will be cut off: shorten it to keep every word.',
    );
    const movie = queuedText(job({ kind: 'movie' }, { prompts: Array.from({ length: 16 }, () => `${long} *x*`), negativePrompt: long }), 1);
    expect(movie.length).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
    expect(movie).toMatch(/\n⚠️ Prompt 1 is at least 93 CLIP tokens long;/);
    expect(movie).toMatch(/\n…and \d+ more\.$/);
    // Not for an extension (its message shows the whole movie) or an upscale.
    expect(queuedText(job({ kind: 'upscale' }, { prompts: ['a cat', long] }), 1)).not.toMatch(/⚠️/);
  });

  it('running: starting, then a bar with keyframes (or video frames), stage and time left', () => {
    const running = job({ status: 'running', attempts: 1 });
    expect(progressText(running, null)).toBe('**Blend** #7: a cat → a dog\nStarting on a render worker…');
    // Branches are the keyframes the done message counts, not the video's frames.
    expect(progressText(running, { stage: 'branches', fraction: 0.25, branchesDone: 3, branchesTotal: 12, message: 'blending', etaSeconds: 75 })).toBe(
      `**Blend** #7: a cat → a dog\n\`${progressBar(0.25)}\` 3/12 keyframes · blending · about 1m 15s left`,
    );
    // An upscale's or a variation animation's count is of video frames.
    expect(progressText(running, { stage: 'upscaling', fraction: 0.5, framesDone: 40, framesTotal: 80 })).toBe(`**Blend** #7: a cat → a dog\n\`${progressBar(0.5)}\` 40/80 frames`);
    expect(progressText(running, { stage: 'encoding', fraction: 0.9 })).toBe(`**Blend** #7: a cat → a dog\n\`${progressBar(0.9)}\` `);
  });

  it('running again after a failed attempt: says it is a retry, and which attempt', () => {
    const retried = job({ status: 'running', attempts: 2, maxAttempts: 3 });
    expect(progressText(retried, null)).toBe('**Blend** #7: a cat → a dog\nRetrying on a render worker (attempt 2 of 3)…');
    expect(progressText(retried, { stage: 'branches', fraction: 0.25, branchesDone: 3, branchesTotal: 12 })).toBe(
      `**Blend** #7: a cat → a dog\n\`${progressBar(0.25)}\` 3/12 keyframes · attempt 2 of 3`,
    );
  });

  it('done: the seeds to reproduce it, keyframes, render time, GPU-seconds charged, and a note', () => {
    const done = job({ status: 'done', startedAt: new Date('2024-01-01T00:00:00Z'), finishedAt: new Date('2024-01-01T00:01:05Z'), chargedGpuSeconds: 8.25 });
    expect(doneText(done, { seeds: [42, 43], keyframes: 9 })).toBe(
      '**Blend** #7: a cat → a dog\nseeds 42, 43 · 9 keyframes · rendered in 1m 05s · charged 8.3 GPU-seconds\nIts maker (or a moderator) can also react with 🔍 to upscale it or 🔁 to re-roll it.',
    );
    // Without the renderer's seeds, the job's; a note goes on its own line.
    expect(doneText(job({ status: 'done' }), {}, '(smaller)')).toBe('**Blend** #7: a cat → a dog\nseeds 42, 43\n(smaller)\nIts maker (or a moderator) can also react with 🔍 to upscale it or 🔁 to re-roll it.');
  });

  it('names the model, escaped, only when it is not the one the job would have by default', () => {
    expect(doneText(job({ status: 'done', guildId: null }, { model: 'my_model' }), {})).toBe('**Blend** #7: a cat → a dog\nseeds 42, 43 · model my\\_model');
    expect(queuedText(job({}, { model: 'sdxl-turbo' }), 1)).toMatch(/^Queued: next in the queue, on model sdxl-turbo\. Reserved/m);
    expect(queuedText(job(), 1)).not.toMatch(/model/);
    expect(doneText(job({ status: 'done', guildId: null }, { model: 'inpaint', inpaint: { mask: 'centre' } }), {})).not.toMatch(/model/);
    // An upscale runs no diffusion model.
    expect(doneText(job({ status: 'done', guildId: null, kind: 'upscale', parentJobId: 3 }, { model: 'sdxl-turbo' }), {})).not.toMatch(/model/);
  });

  it('done: the 🔍/🔁 reactions said only for the follow-ups the job offers, and only in a server', () => {
    // A variation animation offers only Re-roll; an upscale no second upscale.
    expect(doneText(job({ status: 'done', kind: 'vary' }, { model: 'variation', variation: { variations: 4, intermediate: 2, noiseShift: 0.1 } }), {})).toBe('**Variation** #7: a cat → a dog\nseeds 42, 43\nIts maker (or a moderator) can also react with 🔁 to re-roll it.');
    expect(doneText(job({ status: 'done', kind: 'upscale', parentJobId: 3 }), {})).toBe('**Upscale** #7 of #3: a cat → a dog\nseeds 42, 43\nIts maker (or a moderator) can also react with 🔁 to re-roll it.');
    // In a DM the bot reads no reactions: the buttons only.
    expect(doneText(job({ status: 'done', guildId: null }), {})).toBe('**Blend** #7: a cat → a dog\nseeds 42, 43');
  });

  it('done: the worker’s warnings, one escaped line each, as many as fit the message', () => {
    const cut = 'Prompt B is 93 CLIP tokens long; the text encoder reads 75 (77 CLIP tokens with its start and end), so its end was cut off: shorten it to keep every word.';
    expect(doneText(job({ status: 'done' }), { seeds: [42, 43], warnings: [cut, 'a *bold* @everyone\nline', 7] }, '(smaller)')).toBe(
      `**Blend** #7: a cat → a dog\nseeds 42, 43\n(smaller)\nIts maker (or a moderator) can also react with 🔍 to upscale it or 🔁 to re-roll it.\n⚠️ ${cut}\n⚠️ a \\*bold\\* @\u200beveryone line`,
    );
    // A 16-prompt movie whose every prompt was cut: as many lines as fit, and how many more.
    const many = Array.from({ length: 17 }, (_, i) => cut.replace('Prompt B', `Prompt ${i + 1}`));
    const text = doneText(job({ status: 'done' }, { prompts: Array.from({ length: 16 }, () => 'x'.repeat(500)) }), { warnings: many });
    expect(text.length).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
    expect(text).toMatch(/⚠️ Prompt 1 is 93 CLIP tokens long/);
    expect(text).toMatch(/\n…and \d+ more\.$/);
  });

  it('failed: the attempts and the first line of the failure as its owner is told it; cancelled: the refund, and who cancelled it', () => {
    const failed = job({ status: 'failed', attempts: 3, error: 'operator detail', userError: 'out of *memory*\nstack trace…' });
    expect(failedText(failed)).toBe(
      '**Blend** #7: a cat → a dog\nThe render failed after 3 attempts: out of \\*memory\\*\nYour reserved GPU-seconds were refunded. Try again, or change the settings.',
    );
    // A full refund is settled as chargedGpuSeconds 0.
    expect(failedText(job({ status: 'failed', attempts: 3, error: 'boom', userError: 'boom', chargedGpuSeconds: 0 }))).toMatch(/\nYour reserved GPU-seconds were refunded\. Try again/);
    // Stopped on its render time limit: charged for the time it ran, the rest refunded (issue 9 item 5).
    const timedOut = job({ status: 'failed', attempts: 1, error: 'The render took longer than 600 s', userError: 'The render took longer than 600 s', reservedGpuSeconds: 12.4, chargedGpuSeconds: 10 });
    expect(failedText(timedOut)).toBe(
      '**Blend** #7: a cat → a dog\nThe render failed after 1 attempt: The render took longer than 600 s\n' +
        'It was charged 10 GPU-seconds for the time it ran; the other 2.4 of the 12.4 reserved went back to your budget. Try again, or change the settings.',
    );
    expect(failedText(timedOut)).not.toMatch(/reserved GPU-seconds were refunded/);
    expect(failedText(job({ status: 'cancelled' }))).toBe('**Blend** #7: a cat → a dog\nCancelled. Unused GPU-seconds went back to your budget.');
    // By its owner (the reason the bot gives cancelJob), by someone else with the right (a moderator), by the farm's CLI.
    expect(failedText(job({ status: 'cancelled', error: 'cancelled by 111', userError: 'cancelled by 111' }))).toBe('**Blend** #7: a cat → a dog\nCancelled. Unused GPU-seconds went back to your budget.');
    expect(failedText(job({ status: 'cancelled', error: 'cancelled by 999', userError: 'cancelled by 999' }))).toBe(
      '**Blend** #7: a cat → a dog\nCancelled by a moderator. Unused GPU-seconds went back to your budget.',
    );
    expect(failedText(job({ status: 'cancelled', error: 'cancelled by an operator', userError: 'cancelled by an operator' }))).toBe(
      "**Blend** #7: a cat → a dog\nCancelled by the farm's operator. Unused GPU-seconds went back to your budget.",
    );
  });

  it('expired in the queue: no attempt count, the refund said once, try again later', () => {
    const expired = job({
      status: 'failed',
      attempts: 0,
      error: 'Expired: no worker took this job within 6h of it becoming claimable, so it failed unrendered and the GPU-seconds it held were refunded in full. The workers that can render it were busy all that time, or none of them was running.',
      userError: 'no render worker took this job within 6h, so it was dropped',
      chargedGpuSeconds: 0,
    });
    expect(failedText(expired)).toBe('**Blend** #7: a cat → a dog\nNo render worker took this job within 6h, so it was dropped; the GPU-seconds it held are back in your budget. Try again later.');
    // Expired after a failed attempt (queued again for a retry): still no "failed after".
    expect(failedText({ ...expired, attempts: 1 })).toBe(failedText(expired));
  });

  it('a failure that is not about the request (no userError) shows a generic line with the job id, never the operator\'s text', () => {
    const crashed = job({ status: 'failed', attempts: 3, error: 'render thread failed: /srv/models/sd15/unet/model.onnx: CUDA failure 700 on gpu-host-7' });
    const text = failedText(crashed);
    expect(text).toBe(
      "**Blend** #7: a cat → a dog\nThe render failed after 3 attempts: something went wrong on the farm's side, not with your request; the farm's operator can look it up as job 7\n" +
        'Your reserved GPU-seconds were refunded. Try again.',
    );
    expect(text).not.toMatch(/CUDA|srv|gpu-host/);
    expect(failedText(job({ status: 'failed', attempts: 1, error: null }))).toMatch(/after 1 attempt: something went wrong on the farm's side/);
    // The worker lost mid-render is the farm's side too: other settings would not help.
    expect(failedText(job({ status: 'failed', attempts: 3, error: 'worker w1 stopped renewing its lease', userError: 'the worker rendering it stopped answering (it crashed or lost its connection)' }))).toBe(
      '**Blend** #7: a cat → a dog\nThe render failed after 3 attempts: the worker rendering it stopped answering (it crashed or lost its connection)\nYour reserved GPU-seconds were refunded. Try again.',
    );
  });
});

describe('messages longer than Discord takes', () => {
  /** How a job message not made by a command starts: its owner's mention, with the longest user id. */
  const MENTION = `<@${'9'.repeat(20)}> `;
  /** CUT_MARK in a regular expression. */
  const CUT = CUT_MARK.replace(/[()]/g, '\\$&');

  it('a list whose fixed lines alone pass the limit: the long line is cut with a mark, the rest whole, and the list still counted', () => {
    const name = `Server ${'n'.repeat(2500)}`;
    const text = listInMessage({ head: [`In ${name}:`, '**3** waiting.'], items: ['• a', '• b', '• c'], tail: ['You have nothing waiting.'] });
    expect(text.length).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
    const lines = text.split('\n');
    expect(lines[0].startsWith('In Server nnn')).toBe(true);
    expect(lines[0].endsWith(CUT_MARK)).toBe(true);
    expect(lines.slice(1)).toEqual(['**3** waiting.', '…and 3 more.', 'You have nothing waiting.']);
    // Fixed lines that fit by themselves, but not with the line saying how many more: that line fits too.
    const near = listInMessage({ head: ['h'.repeat(1995)], items: ['• a', '• b'] });
    expect(near.length).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
    expect(near.endsWith(`${CUT_MARK}\n…and 2 more.`)).toBe(true);
    // One item that fits: nothing cut.
    expect(listInMessage({ head: ['h'.repeat(1995)], items: ['• a'] })).toBe(`${'h'.repeat(1995)}\n• a`);
  });

  it('fitMessage: only the longest lines are cut, each ending in the mark; short lines stay whole', () => {
    const text = fitMessage(['**Blend** #7: a cat', 'x'.repeat(3000), 'seeds 42, 43', 'y'.repeat(1500)].join('\n'));
    expect(text.length).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
    const lines = text.split('\n');
    expect([lines[0], lines[2]]).toEqual(['**Blend** #7: a cat', 'seeds 42, 43']);
    expect(lines[1]).toMatch(new RegExp(`^x+${CUT}$`));
    expect(lines[3]).toMatch(new RegExp(`^y+${CUT}$`));
    // Text that fits is left as it is.
    expect(fitMessage('a\nb')).toBe('a\nb');
  });

  it('fitMessage does not cut inside a mention, a timestamp or an escape', () => {
    const line = (tail: string) => `${'a'.repeat(100 - CUT_MARK.length - 3)}${tail}${'b'.repeat(300)}`;
    expect(fitMessage(line('<@123456789>'), 100)).toBe(`${'a'.repeat(100 - CUT_MARK.length - 3)}${CUT_MARK}`);
    expect(fitMessage(line('<t:1796304688:R>'), 100)).toBe(`${'a'.repeat(100 - CUT_MARK.length - 3)}${CUT_MARK}`);
    expect(fitMessage(`${'a'.repeat(100 - CUT_MARK.length - 1)}\\*${'b'.repeat(300)}`, 100)).toBe(`${'a'.repeat(100 - CUT_MARK.length - 1)}${CUT_MARK}`);
  });

  it('fitMessage with too many lines to cut each: cut at its end, with the mark', () => {
    const text = fitMessage(Array.from({ length: 400 }, (_, i) => `line ${i} of a long list`).join('\n'));
    expect(text.length).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
    expect(text.startsWith('line 0 of a long list\nline 1 of')).toBe(true);
    expect(text.endsWith(CUT_MARK)).toBe(true);
  });

  it('every job text fits with its owner’s mention before it, the title kept and the long part cut with a mark', () => {
    const long = Array.from({ length: 90 }, () => '*cat*').join(' ');
    const movie = job({ kind: 'movie', status: 'running', attempts: 1 }, { prompts: Array.from({ length: 16 }, () => long), negativePrompt: long });
    const warnings = Array.from({ length: 40 }, (_, i) => `Prompt ${i + 1} is 93 CLIP tokens long; the text encoder reads 75, so its end was cut off.`);
    const upscale = { ...movie, kind: 'upscale' as const, status: 'done' as const };
    const texts = {
      queued: queuedText(movie, 3),
      // A worker's progress message is its own text, of any length.
      progress: progressText(movie, { stage: 'branches', fraction: 0.5, message: `blending ${'m'.repeat(5000)}`, etaSeconds: 30 }),
      // A long note (why a video is not attached), a long upscaler name, and more warnings than fit.
      done: doneText(upscale, { upscaler: 'u'.repeat(1200), scale: 4, warnings }, `(${'n'.repeat(2500)})`),
      failed: failedText({ ...movie, status: 'failed', error: 'e'.repeat(5000), userError: 'e'.repeat(5000) }),
      cancelled: failedText({ ...movie, status: 'cancelled' }),
    };
    for (const [stage, text] of Object.entries(texts)) {
      expect(text.length, stage).toBeLessThanOrEqual(JOB_TEXT_LENGTH);
      expect(`${MENTION}${text}`.length, stage).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
      expect(text.split('\n')[0], stage).toBe(title(stage === 'done' ? upscale : movie));
    }
    expect(texts.progress).toMatch(new RegExp(`blending m+${CUT}$`));
    const done = texts.done.split('\n');
    expect(done[1]).toMatch(new RegExp(`^Upscaled 4× with u+${CUT}$`));
    expect(done[2]).toMatch(new RegExp(`^\\(n+${CUT}$`));
    expect(done.at(-1)).toMatch(/^…and \d+ more\.$/);
  });
});
