-- 0004_image_size: ECR's imageSizeInBytes, computed when a manifest is
-- pushed (the sum of its layers' sizes; for an index, its largest child's).
-- -1 marks manifests stored before this migration: the ECR API computes
-- their size from the manifest when it describes them.
ALTER TABLE manifests ADD COLUMN image_size BIGINT NOT NULL DEFAULT -1;

-- ListImages and DescribeImages read pages of these columns only. With all
-- of them in one index a page is an index-only range scan, instead of a
-- lookup of every row in the table. The SQLite index keys on all of them;
-- PostgreSQL keys on (repo_id, digest) and INCLUDEs the rest (a covering
-- index: same scans, smaller inner pages).
CREATE INDEX manifests_images ON manifests (repo_id, digest)
    INCLUDE (media_type, size, pushed_at, last_pulled_at, image_size, artifact_type, subject);
