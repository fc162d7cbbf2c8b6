-- 0003_repository_fixed_fields: a repository's identity and encryption
-- configuration never change once it exists (SPEC ENC-07). UpdateRepository
-- already refuses such an edit; this trigger makes the database refuse it
-- too, whatever code path issues the UPDATE. It fires only when a value
-- actually changes ("IS NOT" compares NULL-safely).

CREATE TRIGGER repositories_fixed_fields
BEFORE UPDATE ON repositories
WHEN NEW.id IS NOT OLD.id
  OR NEW.name IS NOT OLD.name
  OR NEW.domain IS NOT OLD.domain
  OR NEW.encryption_type IS NOT OLD.encryption_type
  OR NEW.kms_key IS NOT OLD.kms_key
  OR NEW.created_at IS NOT OLD.created_at
BEGIN
    SELECT RAISE(ABORT, 'repository identity and encryption configuration cannot change (ENC-07)');
END;
