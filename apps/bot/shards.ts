/**
 * npm run start:sharded: when one gateway connection is not enough (about 2,500 servers), the
 * ShardingManager runs one bot process per shard. Needs DATABASE_URL (PGlite is one process only);
 * render workers then run as `npm run worker` processes.
 */
import { ShardingManager } from 'discord.js';
import { fileURLToPath } from 'node:url';
import { loadBotConfig } from './bot-config.ts';

const config = loadBotConfig();
if (!config.databaseUrl) {
  process.stderr.write('Sharding runs several bot processes, which need a shared Postgres: set DATABASE_URL.\n');
  process.exit(1);
}
const manager = new ShardingManager(fileURLToPath(new URL('./main.ts', import.meta.url)), {
  token: config.discordToken,
  totalShards: 'auto',
  execArgv: ['--import', 'tsx'],
  // Workers are separate processes in a sharded deployment.
  shardArgs: [],
});
process.env.BLENDFARM_LOCAL_WORKERS = '0';
manager.on('shardCreate', (shard) => console.log(`[shards] launched shard ${shard.id}`));
await manager.spawn();
