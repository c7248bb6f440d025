/** Discord-shaped ids: discord.js groups REST rate limits by matching 17-19 digit snowflakes in paths. */
const DISCORD_EPOCH = 1420070400000n;
// Worker id 1 in bits 17..21 marks ids the fake made; the increment keeps ids unique within a millisecond.
const FAKE_WORKER = 1n << 17n;
let increment = 0n;

export function nextSnowflake(at: number = Date.now()): string {
  increment = (increment + 1n) & 0xfffn;
  return (((BigInt(at) - DISCORD_EPOCH) << 22n) | FAKE_WORKER | increment).toString();
}

export function isSnowflake(value: unknown): value is string {
  return typeof value === 'string' && /^\d{17,20}$/.test(value);
}
