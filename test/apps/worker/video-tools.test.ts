// A worker running the engine's renderer checks ffmpeg and ffprobe at start (apps/worker/main.ts):
// with FFMPEG_PATH or FFPROBE_PATH pointing at no file it refuses to start with the lookup's one
// line and exit 78 (EX_CONFIG, as for other configuration errors), before it claims anything.
import { describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../helpers/db.ts';
import { startWorkerProcess } from '../../helpers/worker-process.ts';

async function exitOf(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const testDb = await createTestDatabase('pglite');
  try {
    // BLENDFARM_RENDERER empty: the engine's renderer (the default).
    const child = startWorkerProcess(testDb, { id: 'video-tools', rendererOptions: {}, env: { BLENDFARM_RENDERER: '', BLENDFARM_RENDERER_OPTIONS: '', ...env } });
    // A worker that starts (the old behaviour) is stopped after 20 s: its exit is then not 78.
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    clearTimeout(timer);
    return { code, output: child.output() };
  } finally {
    await testDb.drop();
  }
}

describe('a worker without usable video tools', () => {
  it('refuses to start with FFMPEG_PATH pointing at no file: one line, exit 78', async () => {
    const { code, output } = await exitOf({ FFMPEG_PATH: '/nonexistent/ffmpeg' });
    expect(code).toBe(78);
    expect(output).toContain('the worker cannot start: FFMPEG_PATH is set to "/nonexistent/ffmpeg" but no file exists there; point it at the binary or unset it.');
    expect(output).not.toMatch(/started:|claimed|job \d+/);
  });

  it('refuses to start with FFPROBE_PATH pointing at no file: exit 78', async () => {
    const { code, output } = await exitOf({ FFPROBE_PATH: '/nonexistent/ffprobe' });
    expect(code).toBe(78);
    expect(output).toContain('the worker cannot start: FFPROBE_PATH is set to "/nonexistent/ffprobe" but no file exists there');
  });
});
