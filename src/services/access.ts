/** What an operator sees of a user's sessions and grants (README, "Admin API"). */
import type { Database } from "../db/database.ts";
import { listSessionsOfAccount } from "../db/sessions.ts";
import { listGrantsOfAccount } from "../db/grants.ts";

export interface SessionView {
  id: string;
  created_at: string;
  expires_at: string | null;
}

export interface GrantView {
  id: string;
  client_id: string | null;
  scope: string;
  created_at: string;
  expires_at: string | null;
}

export async function listUserSessions(db: Database, userId: string): Promise<SessionView[]> {
  return (await listSessionsOfAccount(db, userId)).map((s) => ({
    id: s.id,
    created_at: s.createdAt.toISOString(),
    expires_at: s.expiresAt?.toISOString() ?? null,
  }));
}

export async function listUserGrants(db: Database, userId: string): Promise<GrantView[]> {
  return (await listGrantsOfAccount(db, userId)).map((g) => {
    const payload = JSON.parse(g.payload) as { openid?: { scope?: string }; resources?: Record<string, string> };
    const scopes = [payload.openid?.scope ?? "", ...Object.values(payload.resources ?? {})].join(" ").split(" ").filter(Boolean);
    return {
      id: g.id,
      client_id: g.clientId,
      scope: [...new Set(scopes)].join(" "),
      created_at: g.createdAt.toISOString(),
      expires_at: g.expiresAt?.toISOString() ?? null,
    };
  });
}
