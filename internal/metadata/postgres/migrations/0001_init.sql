-- 0001_init: the initial Coffer metadata schema; the PostgreSQL spelling of
-- sqlite/migrations/0001_init.sql (same tables, columns, keys and indexes).
--
-- Types are TEXT, BIGINT, BOOLEAN and BYTEA; timestamps are BIGINT unix
-- microseconds UTC; JSON is TEXT. Every text column that is compared,
-- ordered or paged over is COLLATE "C", so listings are byte-wise exactly as
-- in SQLite whatever the database's default collation, and comparisons skip
-- the locale. Foreign keys and cascades are the same as SQLite's.

CREATE TABLE settings (
    key   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE repositories (
    id              TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
    name            TEXT    COLLATE "C" NOT NULL UNIQUE,
    domain          TEXT    COLLATE "C" NOT NULL,
    encryption_type TEXT    NOT NULL,
    kms_key         TEXT    NOT NULL DEFAULT '',
    tag_mutability  TEXT    NOT NULL,
    tag_exclusions  TEXT    NOT NULL DEFAULT '[]', -- JSON array of strings
    scan_on_push    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT  NOT NULL
);

-- Blobs are deduplicated per encryption domain. No foreign key: the shared
-- "aes256" domain outlives any one repository.
CREATE TABLE blobs (
    domain     TEXT   COLLATE "C" NOT NULL,
    digest     TEXT   COLLATE "C" NOT NULL,
    size       BIGINT NOT NULL,
    object_key TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (domain, digest)
);

-- A link makes blobs(repository's domain, digest) visible in a repository.
CREATE TABLE repo_blobs (
    repo_id   TEXT   COLLATE "C" NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    digest    TEXT   COLLATE "C" NOT NULL,
    linked_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, digest)
);

CREATE TABLE uploads (
    id         TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    repo_id    TEXT   COLLATE "C" NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    domain     TEXT   COLLATE "C" NOT NULL,
    size       BIGINT NOT NULL,
    parts      TEXT   NOT NULL DEFAULT '[]', -- JSON array of {"k":key,"s":size}
    hash_state BYTEA,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Serves the ON DELETE CASCADE from repositories and DeleteRepository's
-- collection of part keys.
CREATE INDEX uploads_repo ON uploads (repo_id);

CREATE TABLE manifests (
    repo_id        TEXT   COLLATE "C" NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    digest         TEXT   COLLATE "C" NOT NULL,
    media_type     TEXT   NOT NULL,
    size           BIGINT NOT NULL,
    object_key     TEXT   NOT NULL,
    artifact_type  TEXT   COLLATE "C" NOT NULL DEFAULT '',
    subject        TEXT   COLLATE "C", -- NULL when the manifest has no subject
    annotations    TEXT,                -- JSON object, NULL when empty
    pushed_at      BIGINT NOT NULL,
    last_pulled_at BIGINT,              -- NULL until first pulled
    PRIMARY KEY (repo_id, digest)
);

-- Referrers: one range scan, already in digest order.
CREATE INDEX manifests_subject ON manifests (repo_id, subject, digest)
    WHERE subject IS NOT NULL;

-- What a manifest referenced when it was pushed. Rows go with their manifest.
CREATE TABLE manifest_refs (
    repo_id         TEXT    COLLATE "C" NOT NULL,
    manifest_digest TEXT    COLLATE "C" NOT NULL,
    ref_digest      TEXT    COLLATE "C" NOT NULL,
    kind            INTEGER NOT NULL, -- metadata.RefKind
    PRIMARY KEY (repo_id, manifest_digest, ref_digest),
    FOREIGN KEY (repo_id, manifest_digest)
        REFERENCES manifests (repo_id, digest) ON DELETE CASCADE
);

-- "Which manifests of this repository use digest X" (GC, unlink checks).
CREATE INDEX manifest_refs_ref ON manifest_refs (repo_id, ref_digest);

-- A tag always names an existing manifest; deleting the manifest deletes
-- its tags through the foreign key.
CREATE TABLE tags (
    repo_id    TEXT   COLLATE "C" NOT NULL,
    tag        TEXT   COLLATE "C" NOT NULL,
    digest     TEXT   COLLATE "C" NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, tag),
    FOREIGN KEY (repo_id, digest)
        REFERENCES manifests (repo_id, digest) ON DELETE CASCADE
);

CREATE INDEX tags_digest ON tags (repo_id, digest);
