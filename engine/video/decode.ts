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
import { sharpOf, type RawImage } from '../image.ts';
import { isWebp, probeWebp } from './probe.ts';

/**
 * All frames of `video` as packed RGB at `width` x `height` (scaled if the file differs). `fps` is
 * the rate to read it at (default: the rate it was written at; for an animated WebP, from its
 * shortest frame): frames are repeated or dropped to keep every moment at its time, so a GIF
 * written at 50 fps for a 60 fps request reads back as 60 fps frames of the same duration.
 */
export async function decodeVideoFrames(video: Uint8Array, width: number, height: number, signal?: AbortSignal, fps?: number): Promise<RawImage[]> {
  if (isWebp(video)) return decodeAnimatedWebp(video, width, height, signal, fps);
  const dir = await mkdtemp(path.join(tmpdir(), 'blendfarm-decode-'));
  try {
    // A file, not a pipe: MP4 and WebM demuxers need to seek.
    const input = path.join(dir, 'in');
    await writeFile(input, video);
    const rate = fps !== undefined && fps > 0 ? `fps=${fps},` : '';
    const args = ['-v', 'error', '-i', input, '-vf', `${rate}scale=${width}:${height}`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'];
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

/**
 * Animated WebP through libvips (sharp): the ffmpeg builds in use cannot decode its animation
 * (engine/video/probe.ts reads its container for the same reason). Frames come composited, as
 * a player shows them, flattened onto black (the encoder writes opaque frames).
 */
async function decodeAnimatedWebp(video: Uint8Array, width: number, height: number, signal?: AbortSignal, fps?: number): Promise<RawImage[]> {
  const input = Buffer.from(video.buffer, video.byteOffset, video.byteLength);
  let pages: number;
  let pageHeight: number;
  let fileWidth: number;
  let delays: number[];
  let raw: Buffer;
  try {
    const image = await sharpOf(input, { animated: true, limitInputPixels: false });
    const meta = await image.metadata();
    pages = meta.pages ?? 1;
    pageHeight = meta.pageHeight ?? meta.height ?? 0;
    fileWidth = meta.width ?? 0;
    delays = Array.isArray(meta.delay) && meta.delay.length === pages ? meta.delay : [];
    if (fileWidth * pageHeight * pages > MAX_WEBP_PIXELS) {
      throw new Error(`the animation holds ${pages} frames of ${fileWidth}x${pageHeight}, more than ${Math.round(MAX_WEBP_PIXELS / 1e6)} megapixels in all; use mp4 or webm for videos this large`);
    }
    raw = await image.flatten({ background: '#000000' }).removeAlpha().raw().toBuffer();
  } catch (err) {
    throw new Error(`could not decode the video: ${(err as Error).message}`);
  }
  const pageBytes = fileWidth * pageHeight * 3;
  if (!(pageBytes > 0) || raw.length < pages * pageBytes) throw new Error('could not decode the video: the animated WebP has no readable frames');
  // Each stored frame shown for as many frame times as its delay spans (rounded on the running
  // clock, so the total stays exact); without delays, once each.
  const rate = fps ?? probeWebp(video).fps;
  let clock = 0;
  const frames: RawImage[] = [];
  for (let p = 0; p < pages; p++) {
    if (signal?.aborted) throw new Error('could not decode the video: aborted', { cause: signal.reason });
    let repeats = 1;
    if (rate > 0 && delays.length) {
      const start = Math.round((clock * rate) / 1000);
      clock += delays[p];
      repeats = Math.round((clock * rate) / 1000) - start;
    }
    if (repeats <= 0) continue;
    let frame: RawImage = { data: new Uint8Array(raw.buffer, raw.byteOffset + p * pageBytes, pageBytes), width, height, channels: 3 };
    if (fileWidth !== width || pageHeight !== height) {
      const scaled = await (await sharpOf(frame.data, { raw: { width: fileWidth, height: pageHeight, channels: 3 } })).resize(width, height, { fit: 'fill' }).raw().toBuffer();
      frame = { data: new Uint8Array(scaled.buffer, scaled.byteOffset, scaled.length), width, height, channels: 3 };
    }
    for (let k = 0; k < repeats; k++) frames.push(frame);
  }
  return frames;
}

/** The most pixels (stored frames together) an animated WebP may decode to: 768 MB of RGB. */
const MAX_WEBP_PIXELS = 256 * 1024 * 1024;
