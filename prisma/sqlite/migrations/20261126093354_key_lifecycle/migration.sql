-- AlterTable
ALTER TABLE "AuditEvent" ADD COLUMN "rekeyHash" TEXT;

-- CreateTable
CREATE TABLE "Lease" (
    "name" TEXT NOT NULL PRIMARY KEY,
    "holder" TEXT NOT NULL,
    "expiresAt" DATETIME NOT NULL
);

