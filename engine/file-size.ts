/**
 * The one byte-size formatter: the engine's messages (a video that did not fit under its byte
 * limit) and, through engine/index.ts, the farm's and the bot's (farm/text.ts re-exports it), so
 * the same limit reads the same wherever it is named.
 */

const KiB = 1024;
const MiB = 1024 * 1024;

/**
 * A size in bytes as every message shows it: below 1 KiB in bytes ("300 bytes"), below 1 MiB in
 * whole KiB rounded up ("640 KiB"), from 1 MiB up in MiB with at most one decimal ("10 MiB",
 * "1.5 MiB").
 */
export function fileSize(bytes: number): string {
  if (bytes < KiB) return `${bytes} byte${bytes === 1 ? '' : 's'}`;
  const kib = Math.ceil(bytes / KiB);
  return kib < 1024 ? `${kib} KiB` : `${Number((bytes / MiB).toFixed(1))} MiB`;
}
