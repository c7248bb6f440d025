/**
 * `running`, or what `onTimeout` returns (or throws) once it has taken `ms`: for calls the bot
 * must not wait on for long (a database read before an interaction's first answer, a question to
 * Discord). The call given up on still ends in the background; its later failure is not an
 * unhandled rejection.
 */
export async function within<T, U>(running: Promise<T>, ms: number, onTimeout: () => U): Promise<T | U> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<U>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(onTimeout());
      } catch (err) {
        reject(err);
      }
    }, ms);
  });
  try {
    return await Promise.race([running, late]);
  } finally {
    clearTimeout(timer);
    running.catch(() => undefined);
  }
}
