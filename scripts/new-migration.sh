#!/usr/bin/env bash
# Creates a migration for both providers from the change to prisma/models.prisma
# since the last commit:  bash scripts/new-migration.sh add_passkeys
# It diffs the committed derived schemas against the new ones (no shadow
# database needed) and writes prisma/{sqlite,postgresql}/migrations/<ts>_<name>/.
# The PostgreSQL diff needs a reachable server: TEST_DATABASE_URL (see
# scripts/start-test-postgres.sh).
set -euo pipefail
name=${1:?usage: scripts/new-migration.sh <name>}
[[ $name =~ ^[a-z0-9_]+$ ]] || { echo "name must be lower_snake_case" >&2; exit 2; }
: "${TEST_DATABASE_URL:?TEST_DATABASE_URL must point at a PostgreSQL server}"
cd "$(dirname "$0")/.."
node scripts/generate-schemas.mjs
stamp=$(date -u +%Y%m%d%H%M%S)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for provider in sqlite postgresql; do
  git show "HEAD:prisma/$provider/schema.prisma" > "$tmp/$provider.prisma"
  dir="prisma/$provider/migrations/${stamp}_$name"
  mkdir -p "$dir"
  url=$([ "$provider" = sqlite ] && echo "file:$tmp/unused.db" || echo "$TEST_DATABASE_URL")
  DATABASE_URL=$url npx prisma migrate diff --config "prisma/$provider.config.ts" \
    --from-schema-datamodel "$tmp/$provider.prisma" \
    --to-schema-datamodel "prisma/$provider/schema.prisma" --script > "$dir/migration.sql"
  echo "wrote $dir/migration.sql"
done
npm run db:generate --silent
