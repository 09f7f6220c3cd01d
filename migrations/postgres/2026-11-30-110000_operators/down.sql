DROP TABLE node_heartbeats;
DROP TABLE operator_sessions;
DROP TABLE operators;
