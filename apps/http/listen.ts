// Where a process serves /metrics, /healthz, /readyz and /status, from the settings:
//   npm start            BLENDFARM_HTTP_PORT, default DEFAULT_BOT_HTTP_PORT (9464)
//   npm run worker       BLENDFARM_HTTP_PORT, default off (several workers share a machine)
//   start:sharded        each shard process adds its shard id to the port (9464, 9465, ...)
// `off` turns the server off; 0 picks any free port. The address is BLENDFARM_HTTP_HOST (127.0.0.1).
import type { Config } from '../../config/index.ts';
import { DEFAULT_BOT_HTTP_PORT } from '../../config/settings.ts';

export interface Listen {
  host: string;
  port: number;
  statusToken?: string;
}

/** The shard this process runs under ShardingManager (discord.js sets SHARDS), else undefined. */
export function shardOf(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const shard = Number(env.SHARDS);
  return env.SHARDS !== undefined && Number.isInteger(shard) ? shard : undefined;
}

export function opsListen(config: Config, role: 'bot' | 'worker', shard?: number): Listen | undefined {
  const port = config.httpPort ?? (role === 'bot' ? DEFAULT_BOT_HTTP_PORT : 'off');
  if (port === 'off') return undefined;
  return { host: config.httpHost ?? '127.0.0.1', port: port === 0 ? 0 : port + (shard ?? 0), statusToken: config.statusToken };
}
