-- A result small enough (`db::results::INLINE_MAX`) is kept in its job's row, written by
-- the update that completes the job: no row of its own in `job_result_chunks`, no index
-- entry, and no removal of what an earlier attempt may have left there (readers ignore
-- the chunks of a job whose result is inline). PostgreSQL keeps a large value out of line
-- (TOAST), so the row stays small either way.
ALTER TABLE jobs ADD COLUMN result_inline BYTEA;
