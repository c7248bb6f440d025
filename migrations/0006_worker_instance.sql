ALTER TABLE "workers" ADD COLUMN "instance" uuid;--> statement-breakpoint
ALTER TABLE "workers" ADD COLUMN "pid_namespace" text;