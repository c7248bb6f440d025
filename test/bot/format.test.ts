// bot/format.ts: what a job's message says at each stage. Pure functions on a Job; no Discord.
import { describe, expect, it } from 'vitest';
import type { Job } from '../../farm/index.ts';
import { BAR_WIDTH, discordTime, listInMessage, MAX_MESSAGE_LENGTH, discordWhen, doneText, duration, escapeMarkdown, failedText, progressBar, progressText, queuedText, title } from '../../bot/format.ts';

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

  it('durations: seconds under a minute, then minutes and two-digit seconds', () => {
    expect([duration(0), duration(59.4), duration(61), duration(3600)]).toEqual(['0s', '59s', '1m 01s', '60m 00s']);
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
    expect(title(job as never)).toBe('**Blend** #7: \\[Claim your free Nitro\\](https://evil.example/nitro) → a cat');
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
    expect(queuedText(job(), undefined)).toBe('**Blend** #7: a cat → a dog\nQueued: in the queue. Reserved 12 GPU-seconds from your budget.');
    expect(queuedText(job(), 1)).toMatch(/Queued: next in the queue\./);
    expect(queuedText(job(), 3)).toMatch(/Queued: number 3 in the queue\./);
    // A prompt certainly longer than CLIP reads, said before it renders; a movie of 16 such prompts still fits.
    const long = Array.from({ length: 90 }, () => 'cat').join(' ');
    expect(queuedText(job({}, { prompts: ['a cat', long] }), 1)).toBe(
      `**Blend** #7: a cat → ${long.slice(0, 77)}…\nQueued: next in the queue. Reserved 12 GPU-seconds from your budget.\n` +
        '⚠️ Prompt B is at least 90 CLIP tokens long; the text encoder reads 75, so its end will be cut off: shorten it to keep every word.',
    );
    const movie = queuedText(job({ kind: 'movie' }, { prompts: Array.from({ length: 16 }, () => `${long} *x*`), negativePrompt: long }), 1);
    expect(movie.length).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
    expect(movie).toMatch(/\n⚠️ Prompt 1 is at least 93 CLIP tokens long;/);
    expect(movie).toMatch(/\n…and \d+ more\.$/);
    // Not for an extension (its message shows the whole movie) or an upscale.
    expect(queuedText(job({ kind: 'upscale' }, { prompts: ['a cat', long] }), 1)).not.toMatch(/⚠️/);
  });

  it('running: starting, then a bar with frames, stage and time left', () => {
    const running = job({ status: 'running' });
    expect(progressText(running, null)).toBe('**Blend** #7: a cat → a dog\nStarting on a render worker…');
    expect(progressText(running, { stage: 'branches', fraction: 0.25, branchesDone: 3, branchesTotal: 12, message: 'blending', etaSeconds: 75 })).toBe(
      `**Blend** #7: a cat → a dog\n\`${progressBar(0.25)}\` 3/12 frames · blending · about 1m 15s left`,
    );
    expect(progressText(running, { stage: 'encoding', fraction: 0.9 })).toBe(`**Blend** #7: a cat → a dog\n\`${progressBar(0.9)}\` `);
  });

  it('done: the seeds to reproduce it, keyframes, render time, GPU-seconds charged, and a note', () => {
    const done = job({ status: 'done', startedAt: new Date('2024-01-01T00:00:00Z'), finishedAt: new Date('2024-01-01T00:01:05Z'), chargedGpuSeconds: 8.25 });
    expect(doneText(done, { seeds: [42, 43], keyframes: 9 })).toBe('**Blend** #7: a cat → a dog\nseeds 42, 43 · 9 keyframes · rendered in 1m 05s · 8.3 GPU-s');
    // Without the renderer's seeds, the job's; a note goes on its own line.
    expect(doneText(job({ status: 'done' }), {}, '(smaller)')).toBe('**Blend** #7: a cat → a dog\nseeds 42, 43\n(smaller)');
  });

  it('done: the worker’s warnings, one escaped line each, as many as fit the message', () => {
    const cut = 'Prompt B is 93 CLIP tokens long; the text encoder reads 75 (77 CLIP tokens with its start and end), so its end was cut off: shorten it to keep every word.';
    expect(doneText(job({ status: 'done' }), { seeds: [42, 43], warnings: [cut, 'a *bold* @everyone\nline', 7] }, '(smaller)')).toBe(
      `**Blend** #7: a cat → a dog\nseeds 42, 43\n(smaller)\n⚠️ ${cut}\n⚠️ a \\*bold\\* @\u200beveryone line`,
    );
    // A 16-prompt movie whose every prompt was cut: as many lines as fit, and how many more.
    const many = Array.from({ length: 17 }, (_, i) => cut.replace('Prompt B', `Prompt ${i + 1}`));
    const text = doneText(job({ status: 'done' }, { prompts: Array.from({ length: 16 }, () => 'x'.repeat(500)) }), { warnings: many });
    expect(text.length).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
    expect(text).toMatch(/⚠️ Prompt 1 is 93 CLIP tokens long/);
    expect(text).toMatch(/\n…and \d+ more\.$/);
  });

  it('failed: the attempts and the first line of the error; cancelled: the refund', () => {
    const failed = job({ status: 'failed', attempts: 3, error: 'out of *memory*\nstack trace…' });
    expect(failedText(failed)).toBe(
      '**Blend** #7: a cat → a dog\nThe render failed after 3 attempts: out of \\*memory\\*\nYour reserved GPU-seconds were refunded. Try again, or change the settings.',
    );
    expect(failedText(job({ status: 'failed', attempts: 1, error: null }))).toMatch(/after 1 attempt: unknown error/);
    // A full refund is settled as chargedGpuSeconds 0.
    expect(failedText(job({ status: 'failed', attempts: 3, error: 'boom', chargedGpuSeconds: 0 }))).toMatch(/\nYour reserved GPU-seconds were refunded\. Try again/);
    // Stopped on its render time limit: charged for the time it ran, the rest refunded (issue 9 item 5).
    const timedOut = job({ status: 'failed', attempts: 1, error: 'The render took longer than 600 s', reservedGpuSeconds: 12.4, chargedGpuSeconds: 10 });
    expect(failedText(timedOut)).toBe(
      '**Blend** #7: a cat → a dog\nThe render failed after 1 attempt: The render took longer than 600 s\n' +
        'It was charged 10.0 GPU-seconds for the time it ran; the other 2.4 of the 12.4 reserved went back to your budget. Try again, or change the settings.',
    );
    expect(failedText(timedOut)).not.toMatch(/reserved GPU-seconds were refunded/);
    expect(failedText(job({ status: 'cancelled' }))).toBe('**Blend** #7: a cat → a dog\nCancelled. Unused GPU-seconds went back to your budget.');
  });
});
