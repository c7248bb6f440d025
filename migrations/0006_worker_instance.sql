ALTER TABLE "workers" ADD COLUMN "instance" uuid;--> statement-breakpoint
ALTER TABLE "workers" ADD COLUMN "pid_namespace" text;--> statement-breakpoint
CREATE INDEX "jobs_finished_at_idx" ON "jobs" USING btree ("finished_at");--> statement-breakpoint
CREATE INDEX "jobs_started_at_idx" ON "jobs" USING btree ("started_at");