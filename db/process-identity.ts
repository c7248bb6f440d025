// Which processes a pid can be checked against: a pid means something only in its own pid
// namespace on its own boot of a machine. Used by the PGlite data-directory lock (db/pglite-lock.ts)
// and the farm's worker ids (farm/worker-registry.ts), which both record who holds something and
// test with kill(pid, 0) whether that holder still runs.
import fs from 'node:fs';

/**
 * Where this process's pid means something: the machine's boot (its boot id) and the pid namespace
 * ("<boot id> pid:[4026531836]"). The namespace alone is not enough: every host's first one has the
 * same number, so two machines (cloned VMs) with one host name would pass for one. Undefined off
 * Linux (no /proc): there each user of it decides what an unknown namespace means.
 */
export function pidNamespace(): string | undefined {
  try {
    return `${fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()} ${fs.readlinkSync('/proc/self/ns/pid')}`;
  } catch {
    return undefined;
  }
}
