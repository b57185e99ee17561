/**
 * Prisma's SQL template tag and its helpers, for the statements that db/
 * writes by hand (`db.prisma.$queryRaw(sql\`...\`)`): values are always bound
 * parameters, never spliced into the text. The same helpers serve both
 * generated clients, so they come from Prisma's runtime, not from either.
 */
export { sqltag as sql, join, type Sql } from "@prisma/client/runtime/client";
