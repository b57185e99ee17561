-- CreateTable
CREATE TABLE "CacheVersion" (
    "name" TEXT NOT NULL PRIMARY KEY,
    "version" BIGINT NOT NULL DEFAULT 0
);


-- Every write to Client gives the "clients" version a new random value, in
-- the writer's own transaction: an instance that reads the version before a
-- client row knows whether the row it cached may have changed
-- (src/db/cache-versions.ts). Random rather than counted: a value seen
-- inside a transaction that then rolled back is never used again.
INSERT INTO "CacheVersion" ("name", "version") VALUES ('clients', 0);

CREATE TRIGGER "Client_cache_version_insert" AFTER INSERT ON "Client"
BEGIN UPDATE "CacheVersion" SET "version" = random() WHERE "name" = 'clients'; END;

CREATE TRIGGER "Client_cache_version_update" AFTER UPDATE ON "Client"
BEGIN UPDATE "CacheVersion" SET "version" = random() WHERE "name" = 'clients'; END;

CREATE TRIGGER "Client_cache_version_delete" AFTER DELETE ON "Client"
BEGIN UPDATE "CacheVersion" SET "version" = random() WHERE "name" = 'clients'; END;
