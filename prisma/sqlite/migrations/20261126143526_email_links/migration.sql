-- CreateTable
CREATE TABLE "EmailLinkToken" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "tokenHash" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "purpose" TEXT NOT NULL,
    "expiresAt" DATETIME NOT NULL,
    "usedAt" DATETIME,
    "supersededAt" DATETIME,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- AlterTable (additive: SQLite adds a NOT NULL column with a constant default in place,
-- so the User table and what refers to it are left as they are)
ALTER TABLE "User" ADD COLUMN "emailVerified" BOOLEAN NOT NULL DEFAULT false;

-- CreateIndex
CREATE UNIQUE INDEX "EmailLinkToken_tokenHash_key" ON "EmailLinkToken"("tokenHash");

-- CreateIndex
CREATE INDEX "EmailLinkToken_userId_purpose_idx" ON "EmailLinkToken"("userId", "purpose");

-- CreateIndex
CREATE INDEX "EmailLinkToken_expiresAt_idx" ON "EmailLinkToken"("expiresAt");

