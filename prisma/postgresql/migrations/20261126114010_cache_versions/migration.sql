-- CreateTable
CREATE TABLE "CacheVersion" (
    "name" TEXT NOT NULL,
    "version" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "CacheVersion_pkey" PRIMARY KEY ("name")
);


-- Every write to Client bumps the "clients" version in the writer's own
-- transaction and notifies every listening instance when it commits
-- (NOTIFY is delivered at commit, and not at all on rollback), so that
-- instances drop their cached clients (src/db/cache-versions.ts).
INSERT INTO "CacheVersion" ("name", "version") VALUES ('clients', 0);

CREATE FUNCTION "gatehouse_bump_cache_version"() RETURNS trigger AS $$
BEGIN
  UPDATE "CacheVersion" SET "version" = "version" + 1 WHERE "name" = TG_ARGV[0];
  PERFORM pg_notify('gatehouse_cache', TG_ARGV[0]);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER "Client_cache_version" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "Client"
FOR EACH STATEMENT EXECUTE FUNCTION "gatehouse_bump_cache_version"('clients');
