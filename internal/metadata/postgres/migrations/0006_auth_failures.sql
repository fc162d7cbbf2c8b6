-- 0006_auth_failures: authentication failures counted across replicas
-- (issue #9), so that spreading attempts over N replicas does not buy N
-- budgets (internal/auth FailureLimiter, internal/server/throttle.go).
-- A subject is "ip:<address>" or "key:<access key ID>": never a secret.
-- window_start is unix microseconds on the database's clock (one clock
-- for every replica); a row whose window has ended is reset by the next
-- failure or deleted by the leader. Only PostgreSQL writes it: a single
-- node (SQLite) counts in memory.
CREATE TABLE auth_failures (
    subject      TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    window_start BIGINT NOT NULL,
    failures     BIGINT NOT NULL
);

CREATE INDEX auth_failures_window ON auth_failures (window_start);
