/**
 * Appending frames to a finished video without encoding it again (extending a movie): the new
 * frames are encoded alone, with the settings the whole video would get, and joined to the old
 * video by ffmpeg's concat demuxer with stream copy. The old frames keep their exact bytes: no
 * generation loss however often a movie is extended, and no time spent decoding and re-encoding
 * them.
 *
 * Only when the two streams are interchangeable: the same container and codec (mp4/H.264 or
 * webm/VP9), frame size, pixel format, frame rate, time base, profile and level, and the same
 * codec configuration record (H.264's SPS/PPS in the container; a decoder set up from the old
 * video's must decode the new frames: a head x264 encoded at a target bitrate differs there and is
 * refused). VP9 in webm carries no such record, so a webm head encoded at a target bitrate to fit
 * a size limit does join a new part at the usual quality (then usually over the limit again, and
 * the whole is encoded under it). Gif and animated webp have no such join. The joined file is
 * checked by decoding it (its frame count must be the sum) and must fit maxBytes. Otherwise
 * appendFrames returns undefined and the caller encodes the whole movie (decodeVideoFrames of the
 * old video plus the new frames, size-limited as usual).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { encodeVideo, fullSize, type EncodeOptions, type EncodeResult, type FrameIterable } from './encode.ts';
import { writeWhole } from '../output-file.ts';
import { resolveFfmpeg, resolveFfprobe } from './ffmpeg-path.ts';
import { probeVideo } from './probe.ts';

const execFileAsync = promisify(execFile);

/** What must be equal for two streams to be joined by stream copy. */
interface StreamConfig {
  format: string;
  codec: string;
  profile: string;
  level: string;
  width: number;
  height: number;
  pixFmt: string;
  frameRate: string;
  timeBase: string;
  /** The codec configuration record (hex), e.g. H.264's avcC with SPS and PPS. */
  extradata: string;
  /**
   * Colour tags (matrix, primaries, transfer, range): a video written before the encoder tagged
   * BT.709 has none, and the joined file would show the new frames with the old one's (WebM keeps
   * them in the container, not in extradata).
   */
  colour: string;
}

async function streamConfig(file: string, signal?: AbortSignal): Promise<StreamConfig> {
  const args = ['-v', 'error', '-select_streams', 'v:0', '-show_streams', '-show_data', '-show_entries', 'format=format_name', '-of', 'json', file];
  const { stdout } = await execFileAsync(resolveFfprobe().path, args, { maxBuffer: 16 * 1024 * 1024, signal, windowsHide: true });
  const json = JSON.parse(stdout) as {
    streams?: Array<Record<string, string | number | undefined>>;
    format?: { format_name?: string };
  };
  const s = json.streams?.[0] ?? {};
  const str = (key: string) => String(s[key] ?? '');
  return {
    format: json.format?.format_name ?? '',
    codec: str('codec_name'),
    profile: str('profile'),
    level: str('level'),
    width: Number(s.width ?? 0),
    height: Number(s.height ?? 0),
    pixFmt: str('pix_fmt'),
    frameRate: str('r_frame_rate'),
    timeBase: str('time_base'),
    // ffprobe prints it as a hex dump with offsets and an ASCII column; the hex words are what count.
    extradata: str('extradata')
      .split('\n')
      .map((line) => line.replace(/^[0-9a-f]+:\s*/, '').slice(0, 40).replace(/\s+/g, ''))
      .join(''),
    colour: ['color_space', 'color_primaries', 'color_transfer', 'color_range'].map(str).join('/'),
  };
}

/**
 * `head` (a finished video) followed by `frames`, as one video of `opts.format`, without encoding
 * `head` again; undefined when that is not possible (see the module comment) and the caller must
 * encode the whole (with a fresh `frames`: once the new part has been encoded, these are spent).
 */
export async function appendFrames(head: Uint8Array, frames: FrameIterable, opts: EncodeOptions): Promise<EncodeResult | undefined> {
  if (opts.format !== 'mp4' && opts.format !== 'webm') return undefined;
  const dir = await mkdtemp(path.join(tmpdir(), 'blendfarm-append-'));
  try {
    const headFile = path.join(dir, `head.${opts.format}`);
    const tailFile = path.join(dir, `tail.${opts.format}`);
    const joined = path.join(dir, `joined.${opts.format}`);
    await writeFile(headFile, head);
    const before = await probeVideo(headFile, { signal: opts.signal, countPackets: true }).catch((err: unknown) => {
      if (opts.signal?.aborted) throw err;
      return undefined; // not a video ffprobe can read: the caller's decode says what is wrong
    });
    const size = fullSize(opts.format, opts.width, opts.height);
    if (!before || before.format !== opts.format || before.width !== size.width || before.height !== size.height || Math.abs(before.fps - opts.fps) > 1e-6) return undefined;
    // The new part alone, as the whole would be encoded at full size (no size limit: the joined
    // file is checked against it below). Its errors are real ones (ffmpeg, disk) and propagate.
    const tail = await encodeVideo(frames, { ...opts, maxBytes: undefined, out: tailFile });
    const headFrames = before.frames;
    return await join();

    /** The join by stream copy, or undefined when the streams or ffmpeg refuse it. */
    async function join(): Promise<EncodeResult | undefined> {
      try {
        const [a, b] = await Promise.all([streamConfig(headFile, opts.signal), streamConfig(tailFile, opts.signal)]);
        if (JSON.stringify(a) !== JSON.stringify(b) || (!a.extradata && opts.format === 'mp4')) return undefined;
        const list = path.join(dir, 'list.txt');
        // Names relative to the list's own folder: no quoting of the temp path needed.
        await writeFile(list, `file 'head.${opts.format}'\nfile 'tail.${opts.format}'\n`);
        const container = opts.format === 'mp4' ? ['-movflags', '+faststart'] : [];
        if (opts.title) container.push('-metadata', `title=${opts.title.replace(/[\u0000-\u001f]/g, ' ')}`);
        await execFileAsync(resolveFfmpeg().path, ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'concat', '-safe', '0', '-i', list, '-map', '0:v', '-c', 'copy', ...container, joined], {
          signal: opts.signal,
          windowsHide: true,
        });
        const after = await probeVideo(joined, { signal: opts.signal, countPackets: true });
        if (after.frames !== headFrames + tail.frames) return undefined;
        const bytes = await readFile(joined);
        if (opts.maxBytes !== undefined && bytes.length > opts.maxBytes) return undefined;
        if (opts.out) await writeWhole(opts.out, (file) => writeFile(file, bytes));
        return {
          path: opts.out,
          bytes,
          format: opts.format,
          width: size.width,
          height: size.height,
          frames: after.frames,
          fps: opts.fps,
          durationSeconds: after.frames / opts.fps,
          sizeBytes: bytes.length,
          // The new part's encode (the old part was copied as it was).
          attempts: tail.attempts,
        };
      } catch (err) {
        if (opts.signal?.aborted) throw err;
        return undefined; // a join ffmpeg refuses: the caller encodes the whole
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true, maxRetries: 2 });
  }
}
