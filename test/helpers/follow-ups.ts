// Follow-up requests in tests (farm/follow-up.ts): one press of Re-roll or Extend makes one job, so
// a test asking the same one twice on purpose first lets the window pass, by the database's clock.
import { sql } from 'drizzle-orm';
import type { FarmDb } from '../../db/client.ts';
import { SAME_FOLLOW_UP_WINDOW_SECONDS } from '../../farm/follow-up-rule.ts';

/** Ages every recorded re-roll and extension request past SAME_FOLLOW_UP_WINDOW_SECONDS, as waiting that long would: the same request next is a new one, not a repeated press. */
export async function pastFollowUpWindow(db: FarmDb): Promise<void> {
  await db.db.execute(sql`update follow_up_requests set requested_at = requested_at - make_interval(secs => ${SAME_FOLLOW_UP_WINDOW_SECONDS + 1}::float8)`);
}
