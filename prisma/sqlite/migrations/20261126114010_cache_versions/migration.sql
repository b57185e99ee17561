-- CreateTable
CREATE TABLE "CacheVersion" (
    "name" TEXT NOT NULL PRIMARY KEY,
    "version" INTEGER NOT NULL DEFAULT 0
);


-- Every write to Client bumps the "clients" version, in the writer's own
-- transaction: an instance that reads the version before a client row knows
-- whether the row it cached may have changed (src/db/cache-versions.ts).
INSERT INTO "CacheVersion" ("name", "version") VALUES ('clients', 0);

CREATE TRIGGER "Client_cache_version_insert" AFTER INSERT ON "Client"
BEGIN UPDATE "CacheVersion" SET "version" = "version" + 1 WHERE "name" = 'clients'; END;

CREATE TRIGGER "Client_cache_version_update" AFTER UPDATE ON "Client"
BEGIN UPDATE "CacheVersion" SET "version" = "version" + 1 WHERE "name" = 'clients'; END;

CREATE TRIGGER "Client_cache_version_delete" AFTER DELETE ON "Client"
BEGIN UPDATE "CacheVersion" SET "version" = "version" + 1 WHERE "name" = 'clients'; END;
