-- Custom migration (drizzle-kit generate --custom): no schema change, a backfill. Extensions of a
-- movie that starts or ends at a picture carry params.movieHasPictures (set by submitJob from the
-- whole movie since the routing by model ability came in), and the claim sends them only to a worker
-- whose model takes pictures. Queued and running extensions stored by an older version lack the
-- flag, so a text-only worker would claim them and fail them. The flag is added to those rows as
-- movieOf (farm/movie.ts) finds it: following parent_job_id through extensions to the job the movie
-- starts from, any link with pictures (params.images) sets it. Finished rows are left alone: a retry
-- adds the flag itself (retryJob), and a spooled render written for a row before this accepts the
-- row with the flag (farm/spool.ts jobDigest). Only active rows are read, so the update is short.
WITH RECURSIVE "chain" ("job_id", "link_kind", "link_parent", "link_images") AS (
	SELECT "id", "kind", "parent_job_id", "params" -> 'images' FROM "jobs"
	WHERE "kind" = 'extend' AND "status" IN ('queued', 'running') AND NOT ("params" ? 'movieHasPictures')
	UNION ALL
	SELECT "chain"."job_id", "p"."kind", "p"."parent_job_id", "p"."params" -> 'images'
	FROM "chain" JOIN "jobs" "p" ON "p"."id" = "chain"."link_parent"
	WHERE "chain"."link_kind" = 'extend'
)
UPDATE "jobs" SET "params" = "params" || '{"movieHasPictures": true}'::jsonb
WHERE "id" IN (
	SELECT "job_id" FROM "chain"
	WHERE jsonb_typeof("link_images") = 'array' AND jsonb_array_length("link_images") > 0
);
