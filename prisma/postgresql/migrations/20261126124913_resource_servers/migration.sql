-- CreateTable
CREATE TABLE "ResourceServer" (
    "id" TEXT NOT NULL,
    "identifier" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "scopes" JSONB NOT NULL,
    "tokenFormat" TEXT NOT NULL DEFAULT 'opaque',
    "signingAlg" TEXT NOT NULL DEFAULT 'RS256',
    "accessTokenTtl" INTEGER NOT NULL,
    "introspectionClients" JSONB NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "ResourceServer_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "ResourceServer_identifier_key" ON "ResourceServer"("identifier");

