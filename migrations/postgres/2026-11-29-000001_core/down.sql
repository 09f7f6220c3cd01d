DROP TABLE notifications;
DROP TABLE job_result_chunks;
DROP TABLE idempotency_keys;
DROP TABLE jobs;
DROP TABLE products;
DROP TABLE signature_keys;
DROP TABLE api_tokens;
DROP TABLE eshops;
