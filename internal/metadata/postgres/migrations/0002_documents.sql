-- Small versioned documents of kinds without a table of their own (IAM
-- users, access keys, groups, roles, policies, STS sessions).
CREATE TABLE documents (
    kind    TEXT   COLLATE "C" NOT NULL,
    key     TEXT   COLLATE "C" NOT NULL,
    data    BYTEA  NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (kind, key)
);
