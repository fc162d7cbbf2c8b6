-- 0007_audit_files: the shared audit trail (issue #9, internal/audit
-- shared.go). Every replica publishes its sealed log files to the shared
-- object store and registers them here; the leader lists the files no
-- digest covers yet in the next digest of the one shared chain, and
-- moves the chain's head (audit_head, one row) in the same transaction.
-- Only PostgreSQL writes them: a single node's trail is its own.
CREATE TABLE audit_files (
    seq     BIGSERIAL PRIMARY KEY,
    object  TEXT   COLLATE "C" NOT NULL UNIQUE,
    sha256  TEXT   NOT NULL,
    oldest  TEXT   NOT NULL,
    newest  TEXT   NOT NULL,
    events  BIGINT NOT NULL,
    replica TEXT   NOT NULL,
    digest  TEXT   -- the digest that lists the file; NULL until one does
);

CREATE INDEX audit_files_undigested ON audit_files (seq) WHERE digest IS NULL;

CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    object    TEXT   NOT NULL,
    sha256    TEXT   NOT NULL,
    signature TEXT   NOT NULL,
    end_time  BIGINT NOT NULL -- unix seconds
);
