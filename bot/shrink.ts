/**
 * Re-encoding a finished video to fit a server's upload limit. Uses the engine's ffmpeg layer
 * (no ONNX): decode the frames, encode again under the byte limit (lower bitrate, then size).
 */
import { decodeVideoFrames, encodeVideo, probeVideo, VideoTooLargeError, type VideoFormat } from '../engine/index.ts';

export async function shrinkVideo(video: Buffer, format: string, maxBytes: number): Promise<Buffer | undefined> {
  const info = await probeVideo(video);
  const frames = await decodeVideoFrames(video, info.width, info.height);
  try {
    const out = await encodeVideo(() => frames, { format: format as VideoFormat, fps: info.fps || 12, width: info.width, height: info.height, maxBytes });
    return out.bytes;
  } catch (err) {
    if (err instanceof VideoTooLargeError) return undefined;
    throw err;
  }
}
