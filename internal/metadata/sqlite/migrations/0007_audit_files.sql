-- 0007_audit_files: the shared audit trail of several replicas (issue
-- #9); PostgreSQL's migration 0007 has the whole story. A single node
-- never writes these tables: they exist so that both stores have one
-- schema history (and `coffer migrate` one list of tables).
CREATE TABLE audit_files (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    object  TEXT    NOT NULL UNIQUE,
    sha256  TEXT    NOT NULL,
    oldest  TEXT    NOT NULL,
    newest  TEXT    NOT NULL,
    events  INTEGER NOT NULL,
    replica TEXT    NOT NULL,
    digest  TEXT
);

CREATE INDEX audit_files_undigested ON audit_files (seq) WHERE digest IS NULL;

CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    object    TEXT    NOT NULL,
    sha256    TEXT    NOT NULL,
    signature TEXT    NOT NULL,
    end_time  INTEGER NOT NULL
);
