-- 0006_auth_failures: authentication failures counted across replicas
-- (issue #9). Only PostgreSQL writes it (several replicas share one
-- database); a single node counts in memory. The table is here so that
-- both stores keep the same schema (coffer migrate copies table by table).
-- A subject is "ip:<address>" or "key:<access key ID>": never a secret.
CREATE TABLE auth_failures (
    subject      TEXT   NOT NULL PRIMARY KEY,
    window_start BIGINT NOT NULL, -- unix microseconds
    failures     BIGINT NOT NULL
) WITHOUT ROWID;

CREATE INDEX auth_failures_window ON auth_failures (window_start);
