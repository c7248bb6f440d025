ALTER TABLE "artifacts" DROP CONSTRAINT "artifacts_job_id_jobs_id_fk";
--> statement-breakpoint
ALTER TABLE "budget_ledger" DROP CONSTRAINT "budget_ledger_job_id_jobs_id_fk";
--> statement-breakpoint
ALTER TABLE "job_events" DROP CONSTRAINT "job_events_job_id_jobs_id_fk";
--> statement-breakpoint
ALTER TABLE "job_inputs" DROP CONSTRAINT "job_inputs_job_id_jobs_id_fk";
--> statement-breakpoint
ALTER TABLE "artifacts" ADD CONSTRAINT "artifacts_job_id_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "public"."jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "budget_ledger" ADD CONSTRAINT "budget_ledger_job_id_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "public"."jobs"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "job_events" ADD CONSTRAINT "job_events_job_id_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "public"."jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "job_inputs" ADD CONSTRAINT "job_inputs_job_id_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "public"."jobs"("id") ON DELETE cascade ON UPDATE no action;