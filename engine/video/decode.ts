/**
 * Decodes a finished video back into RGB frames (e.g. to extend a movie whose video cannot take
 * the new part by stream copy, engine/video/append.ts: the old frames and the new are then encoded
 * together once).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { resolveFfmpeg } from './ffmpeg-path.ts';
import type { RawImage } from '../image.ts';

/** All frames of `video` as packed RGB at `width` x `height` (scaled if the file differs). */
export async function decodeVideoFrames(video: Uint8Array, width: number, height: number, signal?: AbortSignal): Promise<RawImage[]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'blendfarm-decode-'));
  try {
    // A file, not a pipe: MP4 and WebM demuxers need to seek.
    const input = path.join(dir, 'in');
    await writeFile(input, video);
    const args = ['-v', 'error', '-i', input, '-vf', `scale=${width}:${height}`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'];
    const raw = await new Promise<Buffer>((resolve, reject) => {
      execFile(resolveFfmpeg().path, args, { encoding: 'buffer', maxBuffer: 2 ** 31, signal }, (err, stdout, stderr) => {
        if (err) reject(new Error(`could not decode the video: ${stderr.toString().trim().split('\n').pop() ?? err.message}`));
        else resolve(stdout);
      });
    });
    const size = width * height * 3;
    const frames: RawImage[] = [];
    for (let o = 0; o + size <= raw.length; o += size) frames.push({ data: new Uint8Array(raw.buffer, raw.byteOffset + o, size), width, height, channels: 3 });
    return frames;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
