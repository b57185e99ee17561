-- Partial indexes on OidcRecord's mostly-empty columns (written by hand:
-- Prisma's schema language cannot say WHERE; prisma/models.prisma keeps the
-- same index names, so later schema diffs leave them alone).
-- A ClientCredentials or AccessToken row has no uid, no user code and often
-- no grant or account: with full indexes every insert still wrote an entry
-- into each of them. Each lookup on these columns compares with `=` or `IN`,
-- which implies IS NOT NULL, so the planner still uses the index
-- (docs/PERFORMANCE.md, "Partial indexes").
DROP INDEX "OidcRecord_grantId_idx";
CREATE INDEX "OidcRecord_grantId_idx" ON "OidcRecord"("grantId") WHERE "grantId" IS NOT NULL;
DROP INDEX "OidcRecord_model_uid_idx";
CREATE INDEX "OidcRecord_model_uid_idx" ON "OidcRecord"("model", "uid") WHERE "uid" IS NOT NULL;
DROP INDEX "OidcRecord_model_userCode_idx";
CREATE INDEX "OidcRecord_model_userCode_idx" ON "OidcRecord"("model", "userCode") WHERE "userCode" IS NOT NULL;
DROP INDEX "OidcRecord_model_accountId_idx";
CREATE INDEX "OidcRecord_model_accountId_idx" ON "OidcRecord"("model", "accountId") WHERE "accountId" IS NOT NULL;
