-- 0008_tags_digest_tag: tags_digest keys on the tag too, so that the tags
-- of a page of images (ListImages, DescribeImages) come from an index-only
-- scan, already sorted, with no lookup of the table (issue #9: pages of a
-- repository of 1,000,000 tags). It still serves every (repo_id, digest)
-- lookup and the foreign key's cascade, as a prefix.
DROP INDEX tags_digest;
CREATE INDEX tags_digest ON tags (repo_id, digest, tag);
