// Prisma CLI configuration for SQLite (the default database).
// Used by `gatehouse migrate` and the npm db:* scripts: prisma --config prisma/sqlite.config.ts
import { defineConfig } from "prisma/config";
import { PrismaBetterSQLite3 } from "@prisma/adapter-better-sqlite3";

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: "sqlite/schema.prisma",
  migrations: { path: "sqlite/migrations" },
  async adapter() {
    return new PrismaBetterSQLite3({ url: process.env.DATABASE_URL ?? "file:./data/gatehouse.db" });
  },
});
