-- 0003_repository_fixed_fields: a repository's identity and encryption
-- configuration never change once it exists (SPEC ENC-07). UpdateRepository
-- already refuses such an edit; this trigger makes the database refuse it
-- too, whatever code path issues the UPDATE. It fires only when a value
-- actually changes (IS DISTINCT FROM compares NULL-safely). The PostgreSQL
-- spelling of sqlite/migrations/0003_repository_fixed_fields.sql.

CREATE FUNCTION repositories_fixed_fields() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'repository identity and encryption configuration cannot change (ENC-07)'
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER repositories_fixed_fields
BEFORE UPDATE ON repositories
FOR EACH ROW
WHEN (NEW.id IS DISTINCT FROM OLD.id
   OR NEW.name IS DISTINCT FROM OLD.name
   OR NEW.domain IS DISTINCT FROM OLD.domain
   OR NEW.encryption_type IS DISTINCT FROM OLD.encryption_type
   OR NEW.kms_key IS DISTINCT FROM OLD.kms_key
   OR NEW.created_at IS DISTINCT FROM OLD.created_at)
EXECUTE FUNCTION repositories_fixed_fields();
