-- 0008_tags_digest_tag: nothing to change here. PostgreSQL's migration of
-- the same name adds the tag to tags_digest's key, for index-only pages of
-- image tags; SQLite's tags_digest holds it already: tags is WITHOUT ROWID,
-- so each entry of an index on it ends with the primary key (repo_id, tag),
-- in (repo_id, digest, tag) order.
SELECT 1;
