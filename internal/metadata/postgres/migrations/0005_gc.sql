-- Indexes for garbage collection (internal/gc): whether any repository links
-- or references a digest, and which upload sessions are stale.
CREATE INDEX repo_blobs_digest ON repo_blobs (digest);
CREATE INDEX manifest_refs_digest ON manifest_refs (ref_digest);
CREATE INDEX uploads_updated ON uploads (updated_at);
