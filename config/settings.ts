/**
 * Every setting Blendfarm reads from the environment, in one table: the loader validates them,
 * `.env.example` documents them (a test keeps the two in step), and secrets are marked so they
 * are never printed.
 */

export interface SettingSpec<T> {
  env: string;
  /** One line for .env.example and for error messages. */
  help: string;
  secret?: boolean;
  /** Shown in .env.example; also the value used when the variable is unset (unless `optional`). */
  example?: string;
  parse(raw: string): T;
}

export class SettingError extends Error {}

const text = (raw: string) => raw;

function int(min: number, max: number) {
  return (raw: string): number => {
    if (!/^-?\d+$/.test(raw.trim())) throw new SettingError(`must be a whole number from ${min} to ${max}`);
    const n = Number(raw.trim());
    if (n < min || n > max) throw new SettingError(`must be a whole number from ${min} to ${max}`);
    return n;
  };
}

function oneOf<T extends string>(...values: T[]) {
  return (raw: string): T => {
    const v = raw.trim().toLowerCase() as T;
    if (!values.includes(v)) throw new SettingError(`must be one of ${values.join(', ')}`);
    return v;
  };
}

function url(protocols: string[]) {
  return (raw: string): string => {
    let u: URL;
    try {
      u = new URL(raw.trim());
    } catch {
      throw new SettingError(`must be a URL like ${protocols[0]}//host:port/...`);
    }
    if (!protocols.includes(u.protocol)) throw new SettingError(`must start with ${protocols.join(' or ')}//`);
    return raw.trim();
  };
}

function snowflake(raw: string): string {
  if (!/^\d{15,21}$/.test(raw.trim())) throw new SettingError('must be a Discord id (15 to 21 digits)');
  return raw.trim();
}

function discordToken(raw: string): string {
  // Bot tokens are three base64url parts joined by dots; catching a pasted client secret early
  // saves a confusing 401 from the gateway later.
  if (!/^[\w-]+\.[\w-]+\.[\w-]+$/.test(raw.trim())) {
    throw new SettingError('does not look like a bot token (three dot-separated parts, from the Bot page of your application)');
  }
  return raw.trim();
}

export const settings = {
  modelDir: {
    env: 'BLENDFARM_MODEL_DIR',
    help: 'Folder of a Stable Diffusion pipeline exported to ONNX (diffusers/optimum layout); unset = the built-in demo model',
    example: '',
    parse: text,
  } as SettingSpec<string>,
  executionProvider: {
    env: 'BLENDFARM_EP',
    help: 'ONNX Runtime execution provider: cpu, cuda or webgpu',
    example: 'cpu',
    parse: oneOf('cpu', 'cuda', 'webgpu'),
  } as SettingSpec<'cpu' | 'cuda' | 'webgpu'>,
  deviceId: {
    env: 'BLENDFARM_DEVICE_ID',
    help: 'GPU index for the cuda execution provider',
    example: '0',
    parse: int(0, 64),
  } as SettingSpec<number>,
  threads: {
    env: 'BLENDFARM_THREADS',
    help: 'CPU threads for ONNX Runtime (0 = let ONNX Runtime decide)',
    example: '0',
    parse: int(0, 1024),
  } as SettingSpec<number>,
  lpipsModel: {
    env: 'BLENDFARM_LPIPS_MODEL',
    help: 'Path to an LPIPS ONNX model for perceptual distances; unset = built-in metric that needs no weights',
    example: '',
    parse: text,
  } as SettingSpec<string>,
  ffmpegPath: {
    env: 'FFMPEG_PATH',
    help: 'ffmpeg binary to use; unset = ffmpeg-static, then @ffmpeg-installer/ffmpeg, then ffmpeg on PATH',
    example: '',
    parse: text,
  } as SettingSpec<string>,
  databaseUrl: {
    env: 'DATABASE_URL',
    help: 'Postgres connection string shared by bot and workers; unset = embedded PGlite in BLENDFARM_DATA_DIR (one process only)',
    secret: true,
    example: '',
    parse: url(['postgres:', 'postgresql:']),
  } as SettingSpec<string>,
  dataDir: {
    env: 'BLENDFARM_DATA_DIR',
    help: 'Where the embedded database and rendered videos are kept',
    example: './data',
    parse: text,
  } as SettingSpec<string>,
  discordToken: {
    env: 'DISCORD_TOKEN',
    help: 'Bot token from https://discord.com/developers/applications (Bot page); required for the bot',
    secret: true,
    example: '',
    parse: discordToken,
  } as SettingSpec<string>,
  discordGuildId: {
    env: 'DISCORD_GUILD_ID',
    help: 'Register slash commands in this server only (instant); unset = global commands',
    example: '',
    parse: snowflake,
  } as SettingSpec<string>,
  discordApiBase: {
    env: 'DISCORD_API_BASE',
    help: "Discord REST base URL; unset = Discord's own. For REST proxies and tests",
    example: '',
    parse: url(['http:', 'https:']),
  } as SettingSpec<string>,
  logLevel: {
    env: 'LOG_LEVEL',
    help: 'debug, info, warn or error',
    example: 'info',
    parse: oneOf('debug', 'info', 'warn', 'error'),
  } as SettingSpec<'debug' | 'info' | 'warn' | 'error'>,
} as const;

export type Settings = typeof settings;
export type SettingKey = keyof Settings;
