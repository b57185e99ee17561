/**
 * How an oidc-provider payload is stored without the credentials in it. The
 * row of a credential (token, code, session, interaction, PAR, device code)
 * is keyed by its keyed hash (crypto/stored-ids.ts), so its payload must not
 * hold the credential either:
 * - a top-level field equal to the row's id (`jti`) is dropped and put back
 *   by find(id), which is given the id;
 * - a field holding another credential, or embedding the id (an
 *   Interaction's `returnTo`, the session cookie, a PAR or device code id;
 *   a DeviceCode's user code) is sealed under the row's id and opened on find;
 * - a DeviceCode's id is also sealed under its user code, for findByUserCode.
 * Everything else (accountId, clientId, grantId, uid, scopes) stays readable:
 * operators list and revoke by those.
 */
import type { StoredIds } from "../crypto/stored-ids.ts";

type Payload = Record<string, unknown>;

/**
 * Models whose ids are not credentials, stored as oidc-provider gives them:
 * Grant ids are what tokens point to (their grantId column) and what
 * operators revoke by, and presenting one grants nothing; ReplayDetection ids
 * are already digests. Every other model, present or future, is hashed.
 */
const clearIdModels = new Set(["Grant", "ReplayDetection"]);

/** Whether `model`'s rows are keyed by the keyed hash of their id. */
export function storesHashedId(model: string): boolean {
  return !clearIdModels.has(model);
}

/**
 * Payload fields holding another credential, or the id inside a longer value,
 * per model (oidc-provider lib/models/interaction.js and
 * lib/actions/authorization/interactions.js; lib/models/device_code.js).
 */
const sealedFields: Record<string, readonly (readonly string[])[]> = {
  Interaction: [["returnTo"], ["session", "cookie"], ["parJti"], ["deviceCode"], ["params", "request_uri"]],
  DeviceCode: [["userCode"]],
};

/** The one key Gatehouse adds to a stored payload. */
const meta = "@gatehouse";

interface Meta {
  /** Top-level fields that held the row's id. */
  id?: string[];
  /** sealedFields' values, sealed under the row's id. */
  sealed?: string;
  /** The row's id, sealed under the user code (DeviceCode). */
  idByUserCode?: string;
}

function take(payload: Payload, path: readonly string[]): unknown {
  let parent: unknown = payload;
  for (const key of path.slice(0, -1)) parent = (parent as Payload | undefined)?.[key];
  if (typeof parent !== "object" || parent === null) return undefined;
  const last = path[path.length - 1]!;
  const value = (parent as Payload)[last];
  delete (parent as Payload)[last];
  return value;
}

function put(payload: Payload, path: readonly string[], value: unknown): void {
  let parent = payload;
  for (const key of path.slice(0, -1)) {
    if (typeof parent[key] !== "object" || parent[key] === null) parent[key] = {};
    parent = parent[key] as Payload;
  }
  parent[path[path.length - 1]!] = value;
}

/** What to store for `payload` of row `id`: a copy without any credential in clear. */
export function protectPayload(ids: StoredIds, model: string, id: string, payload: Payload): Payload {
  // A deep copy: the caller's object is oidc-provider's.
  const stored = JSON.parse(JSON.stringify(payload)) as Payload;
  const info: Meta = {};
  const idFields = Object.keys(stored).filter((key) => stored[key] === id);
  for (const key of idFields) delete stored[key];
  if (idFields.length) info.id = idFields;
  const sealed: [readonly string[], unknown][] = [];
  for (const path of sealedFields[model] ?? []) {
    const value = take(stored, path);
    if (value !== undefined) sealed.push([path, value]);
  }
  if (sealed.length) info.sealed = ids.seal(id, JSON.stringify(sealed));
  if (typeof payload.userCode === "string") info.idByUserCode = ids.seal(`userCode:${payload.userCode}`, id);
  if (Object.keys(info).length) stored[meta] = info;
  return stored;
}

/**
 * The payload oidc-provider stored, from what protectPayload made. Without
 * `id` (a Session found by uid) the fields that held it stay out: only the
 * cookie holds a session's id.
 */
export function revealPayload(ids: StoredIds, id: string | undefined, stored: Payload): Payload {
  const info = stored[meta] as Meta | undefined;
  if (!info) return stored;
  delete stored[meta];
  if (id === undefined) return stored;
  for (const key of info.id ?? []) stored[key] = id;
  if (info.sealed) {
    for (const [path, value] of JSON.parse(ids.open(id, info.sealed)) as [string[], unknown][]) put(stored, path, value);
  }
  return stored;
}

/** The id of a row found by its user code, opened from what protectPayload sealed. */
export function idByUserCode(ids: StoredIds, userCode: string, stored: Payload): string | undefined {
  const sealed = (stored[meta] as Meta | undefined)?.idByUserCode;
  return sealed ? ids.open(`userCode:${userCode}`, sealed) : undefined;
}
