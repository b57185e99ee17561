// Prisma CLI configuration for PostgreSQL: prisma --config prisma/postgresql.config.ts
import { defineConfig } from "prisma/config";
import { PrismaPg } from "@prisma/adapter-pg";

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: "postgresql/schema.prisma",
  migrations: { path: "postgresql/migrations" },
  async adapter() {
    const url = process.env.DATABASE_URL;
    if (!url) throw new Error("DATABASE_URL is required for PostgreSQL");
    // A short idle timeout lets the CLI exit as soon as it is done.
    return new PrismaPg({ connectionString: url, idleTimeoutMillis: 100, allowExitOnIdle: true });
  },
});
