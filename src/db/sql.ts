/**
 * Helpers for the statements that db/ writes by hand.
 *
 * - `sql`, `join`: Prisma's template tag, for `db.prisma.$queryRaw(sql\`...\`)`
 *   where a statement goes through Prisma (values are always bound
 *   parameters, never spliced into the text). From Prisma's runtime, so they
 *   serve both generated clients.
 * - `placeholders`, `toDate`, `toBool`, `toJson`: for `db.sql` (database.ts),
 *   which hands a statement straight to the driver adapter and returns the
 *   values as the driver decoded them: dates as ISO 8601 text, SQLite's
 *   booleans as integers (or their text), JSON columns as text.
 */
export { sqltag as sql, join, type Sql } from "@prisma/client/runtime/client";

/** A statement's `?` placeholders as PostgreSQL's $1, $2, ... (db/ writes no `?` in literals). */
export function numbered(text: string): string {
  let n = 0;
  return text.replace(/\?/g, () => `$${++n}`);
}

/** `?, ?, ?` for an IN list of `values`. */
export function placeholders(values: readonly unknown[]): string {
  if (values.length === 0) throw new Error("an IN list needs at least one value");
  return values.map(() => "?").join(", ");
}

export function toDate(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value;
  return new Date(typeof value === "bigint" ? Number(value) : (value as string | number));
}

export function toBool(value: unknown): boolean {
  return value === true || value === 1 || value === 1n || value === "1" || value === "true";
}

export function toJson(value: unknown): unknown {
  return typeof value === "string" ? JSON.parse(value) : value;
}
