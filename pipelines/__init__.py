"""pipelines: task-sized idempotent steps, the video processing core and the `ev-ingest` CLI."""
