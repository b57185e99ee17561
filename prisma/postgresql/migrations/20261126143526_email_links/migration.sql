-- AlterTable
ALTER TABLE "User" ADD COLUMN     "emailVerified" BOOLEAN NOT NULL DEFAULT false;

-- CreateTable
CREATE TABLE "EmailLinkToken" (
    "id" TEXT NOT NULL,
    "tokenHash" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "purpose" TEXT NOT NULL,
    "expiresAt" TIMESTAMP(3) NOT NULL,
    "usedAt" TIMESTAMP(3),
    "supersededAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "EmailLinkToken_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "EmailLinkToken_tokenHash_key" ON "EmailLinkToken"("tokenHash");

-- CreateIndex
CREATE INDEX "EmailLinkToken_userId_purpose_idx" ON "EmailLinkToken"("userId", "purpose");

-- CreateIndex
CREATE INDEX "EmailLinkToken_expiresAt_idx" ON "EmailLinkToken"("expiresAt");

