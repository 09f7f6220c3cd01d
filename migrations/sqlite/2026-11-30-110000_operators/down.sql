DROP INDEX jobs_eshop_status;
DROP TABLE node_heartbeats;
DROP TABLE operator_sessions;
DROP TABLE operators;
