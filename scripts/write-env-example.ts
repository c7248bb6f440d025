/** Regenerates .env.example from config/settings.ts (a test fails when the two drift apart). */
import { writeFileSync } from 'node:fs';
import { settings } from '../config/settings.ts';

export function envExample(): string {
  const lines = [
    '# Blendfarm settings. Copy to .env (or set them in the environment); every one is optional',
    '# except DISCORD_TOKEN for the bot. Values are checked at start-up, with one line per bad value.',
    '',
  ];
  for (const spec of Object.values(settings)) {
    lines.push(`# ${spec.help}${spec.secret ? ' (secret: never commit it)' : ''}`);
    lines.push(`${spec.env}=${spec.example ?? ''}`);
    lines.push('');
  }
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  writeFileSync('.env.example', envExample());
}
