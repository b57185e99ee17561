// Derives prisma/<provider>/schema.prisma from prisma/models.prisma.
// Usage: node scripts/generate-schemas.mjs [--check]
// With --check it writes nothing and exits 1 when a derived file is stale.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const models = readFileSync(join(root, "prisma/models.prisma"), "utf8");
const check = process.argv.includes("--check");
let stale = false;

for (const provider of ["sqlite", "postgresql"]) {
  const header = `// GENERATED from prisma/models.prisma by scripts/generate-schemas.mjs: do not edit.

generator client {
  provider     = "prisma-client"
  output       = "../../src/db/generated/${provider}"
  engineType   = "client"
  moduleFormat = "esm"
}

datasource db {
  provider = "${provider}"
  // Unused at run time: Gatehouse connects through a driver adapter.
  url      = env("DATABASE_URL")
}

`;
  const file = join(root, "prisma", provider, "schema.prisma");
  const text = header + models;
  let current = "";
  try { current = readFileSync(file, "utf8"); } catch {}
  if (current === text) continue;
  if (check) { console.error(`${file} is stale: run npm run db:schemas`); stale = true; continue; }
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}
process.exit(stale ? 1 : 0);
