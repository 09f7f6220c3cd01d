-- A small result kept in its job's row (see the PostgreSQL migration of this version).
-- The last column: a read that does not name it never loads it.
ALTER TABLE jobs ADD COLUMN result_inline BLOB;
