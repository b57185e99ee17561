/** Who asks for a change, for the audit log: an admin API client, the CLI's operator, a user. */
import type { AuditInput } from "./audit.ts";

export type Actor = Pick<AuditInput, "actorType" | "actorId" | "ip" | "userAgent">;

/** The operator at the `gatehouse` command line. */
export const cliOperator: Actor = { actorType: "operator", actorId: "cli" };

/** Gatehouse itself (start-up, jobs, tests' fixtures). */
export const systemActor: Actor = { actorType: "system" };
