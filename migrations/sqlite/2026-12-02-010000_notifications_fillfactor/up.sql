-- The PostgreSQL migration of this version sets a fillfactor; SQLite has none.
SELECT 1;
