CREATE TABLE "follow_up_requests" (
	"user_id" text NOT NULL,
	"parent_job_id" bigint NOT NULL,
	"kind" text NOT NULL,
	"token" uuid NOT NULL,
	"requested_at" timestamp with time zone DEFAULT now() NOT NULL,
	"job_id" bigint,
	CONSTRAINT "follow_up_requests_user_id_parent_job_id_kind_pk" PRIMARY KEY("user_id","parent_job_id","kind")
);
--> statement-breakpoint
ALTER TABLE "follow_up_requests" ADD CONSTRAINT "follow_up_requests_parent_job_id_jobs_id_fk" FOREIGN KEY ("parent_job_id") REFERENCES "public"."jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "follow_up_requests" ADD CONSTRAINT "follow_up_requests_job_id_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "public"."jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "follow_up_requests_job_idx" ON "follow_up_requests" USING btree ("job_id");