/** Reading the audit log: newest first, filtered, a page at a time (README, "Admin API"). */
import type { Database } from "../db/database.ts";
import { listAuditEvents, type AuditRow } from "../db/audit-events.ts";

export interface AuditEventView {
  id: string;
  seq: number;
  created_at: string;
  type: string;
  actor_type: string;
  actor_id: string | null;
  user_id: string | null;
  client_id: string | null;
  ip: string | null;
  user_agent: string | null;
  data: Record<string, unknown>;
}

function toView(row: AuditRow): AuditEventView {
  return {
    id: row.id,
    seq: row.seq,
    created_at: row.createdAt.toISOString(),
    type: row.type,
    actor_type: row.actorType,
    actor_id: row.actorId,
    user_id: row.userId,
    client_id: row.clientId,
    ip: row.ip,
    user_agent: row.userAgent,
    data: JSON.parse(row.data) as Record<string, unknown>,
  };
}

export async function listAudit(
  db: Database,
  query: { userId?: string; type?: string; beforeSeq?: number; limit: number },
): Promise<AuditEventView[]> {
  return (await listAuditEvents(db, query)).map(toView);
}
