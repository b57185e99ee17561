-- CreateTable
CREATE TABLE "ResourceServer" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "identifier" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "scopes" JSONB NOT NULL,
    "tokenFormat" TEXT NOT NULL DEFAULT 'opaque',
    "signingAlg" TEXT NOT NULL DEFAULT 'RS256',
    "accessTokenTtl" INTEGER NOT NULL,
    "introspectionClients" JSONB NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL
);

-- CreateIndex
CREATE UNIQUE INDEX "ResourceServer_identifier_key" ON "ResourceServer"("identifier");

