-- Small versioned documents of kinds without a table of their own (IAM
-- users, access keys, groups, roles, policies, STS sessions).
CREATE TABLE documents (
    kind    TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    data    BLOB    NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
);
