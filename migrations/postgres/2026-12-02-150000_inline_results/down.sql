ALTER TABLE jobs DROP COLUMN result_inline;
