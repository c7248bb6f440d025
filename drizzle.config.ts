// drizzle-kit reads this to turn db/schema.ts into SQL migrations under migrations/
// (`npm run db:generate`); the farm applies them itself at start-up (db/migrate.ts).
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: './db/schema.ts',
  out: './migrations',
});
