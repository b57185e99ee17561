-- Accounts signed up on /register sign in only once their email is verified
-- (docs/account-lifecycle.md). Written by hand as one ADD COLUMN: Prisma's SQLite
-- diff would rebuild the whole User table.
ALTER TABLE "User" ADD COLUMN "selfRegistered" BOOLEAN NOT NULL DEFAULT false;
