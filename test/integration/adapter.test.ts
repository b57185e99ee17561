/**
 * Conformance suite for the Prisma-backed oidc-provider adapter
 * (src/oidc/adapter.ts, src/db/oidc-records.ts), run against every database
 * provider: the contract of oidc-provider's adapter interface (example/my_adapter.js),
 * the cases of oidc-provider's own memory adapter tests that apply to a table,
 * and what Gatehouse adds: indexed columns, revocation by grant, sweeping,
 * consumption as a compare-and-set, and credentials stored as keyed hashes
 * (a token's, code's or session's row is keyed by the HMAC of its id and its
 * payload keeps no copy of it), which oidc-provider must not notice.
 */
import { randomBytes } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import t, { type Test } from "tap";
import type { Adapter, AdapterPayload } from "oidc-provider";
import { createAdapterFactory } from "../../src/oidc/adapter.ts";
import { createClientStore } from "../../src/oidc/client-store.ts";
import { createMasterKeyRing } from "../../src/crypto/master-keys.ts";
import { auditKeyOf } from "../../src/services/audit.ts";
import { createStoredIds, storedIdsFor, type StoredIds } from "../../src/crypto/stored-ids.ts";
import { storesHashedId } from "../../src/oidc/stored-payloads.ts";
import { createClient } from "../../src/services/clients.ts";
import { deleteExpiredOidcRecords } from "../../src/db/oidc-records.ts";
import type { Database, DatabaseProvider } from "../../src/db/database.ts";
import { createTestDatabase, providers } from "../helpers/databases.ts";

/** The models oidc-provider calls revokeByGrantId on. */
const grantableModels = ["AccessToken", "AuthorizationCode", "RefreshToken", "DeviceCode", "BackchannelAuthenticationRequest"];

/** A fresh identifier, so that cases sharing one database never see each other's rows. */
function newId(prefix = "id"): string {
  return `${prefix}-${randomBytes(9).toString("base64url")}`;
}

function epochNow(): number {
  return Math.floor(Date.now() / 1000);
}

/** A token payload shaped like oidc-provider's (AccessToken, RefreshToken, codes...). */
function tokenPayload(kind: string, fields: Partial<AdapterPayload> = {}): AdapterPayload {
  const iat = epochNow();
  return {
    iat,
    exp: iat + 3600,
    kind,
    jti: newId("jti"),
    accountId: newId("account"),
    clientId: newId("client"),
    grantId: newId("grant"),
    scope: "openid profile offline_access",
    ...fields,
  };
}

/** A payload exercising everything JSON can carry, as a Session would. */
function richSessionPayload(): AdapterPayload {
  const clientId = newId("client");
  return {
    iat: 1_700_000_000,
    exp: 1_700_086_400,
    kind: "Session",
    jti: newId("session"),
    uid: newId("uid"),
    accountId: "account-ünïcødé-用户-🔑",
    loginTs: 1_700_000_000,
    amr: ["pwd", "hwk"],
    acr: "urn:mace:incommon:iap:silver",
    transient: false,
    authorizations: { [clientId]: { sid: newId("sid"), grantId: newId("grant"), persistsLogout: true } },
    extra: {
      text: 'quotes " and \\ backslash, tab\t, newline\n, line separator \u2028, emoji 👩‍💻, RTL שלום',
      numbers: [0, -1, 42, 3.5, -0.125, 1e-7, 2 ** 40, Number.MAX_SAFE_INTEGER],
      booleans: [true, false],
      nothing: null,
      empty: { object: {}, array: [], string: "" },
      deep: { a: { b: { c: { d: [{ e: "f" }, [1, [2, [3]]]] } } } },
    },
  };
}

interface Fixture {
  db: Database;
  /** The keys of the stored ids, as app.ts derives them from the master key ring. */
  ids: StoredIds;
  adapter(model: string): Adapter;
  /** The id the row of (model, id) is stored under: the keyed hash for credentials. */
  stored(model: string, id: string): string;
  /** The OidcRecord row of (model, id), read straight through Prisma. */
  row(model: string, id: string): ReturnType<Database["prisma"]["oidcRecord"]["findUnique"]>;
  /** Counts rows; `id` is the id oidc-provider uses (with `model`, translated to the stored id). */
  count(where: { model?: string; id?: string; grantId?: string }): Promise<number>;
  /** Moves a row's expiry into the past, as if its lifetime had elapsed. */
  expire(model: string, id: string): Promise<void>;
}

async function openFixture(t: Test, provider: DatabaseProvider): Promise<Fixture> {
  const ring = createMasterKeyRing([randomBytes(32)]);
  const db = await (await createTestDatabase(t, provider)).open({ auditKey: auditKeyOf(ring) });
  const ids = storedIdsFor(ring);
  const factory = createAdapterFactory(db, createClientStore(db, ring), ids);
  const stored = (model: string, id: string) => (storesHashedId(model) ? ids.of(id) : id);
  return {
    db,
    ids,
    adapter: factory,
    stored,
    row: (model, id) => db.prisma.oidcRecord.findUnique({ where: { model_id: { model, id: stored(model, id) } } }),
    count: (where) => db.prisma.oidcRecord.count({ where: where.model && where.id ? { ...where, id: stored(where.model, where.id) } : where }),
    async expire(model, id) {
      await db.prisma.oidcRecord.update({ where: { model_id: { model, id: stored(model, id) } }, data: { expiresAt: new Date(Date.now() - 1000) } });
    },
  };
}

function adapterSuite(t: Test, provider: DatabaseProvider): void {
  let f: Fixture;
  t.before(async () => {
    f = await openFixture(t, provider);
  });

  t.test("upsert and find", async (t) => {
    t.test("find returns the upserted payload unchanged", async (t) => {
      const payload = richSessionPayload();
      await f.adapter("Session").upsert(payload.jti!, payload, 3600);
      const found = await f.adapter("Session").find(payload.jti!);
      t.strictSame(found, payload);
      t.notOk(found && "consumed" in found, "a payload that was never consumed has no consumed key");
    });

    t.test("find of an unknown id returns undefined", async (t) => {
      for (const model of ["Session", "Grant", "AccessToken", "Interaction"]) {
        t.equal(await f.adapter(model).find(newId()), undefined, model);
      }
    });

    t.test("upserting again replaces the payload and the indexed columns", async (t) => {
      const adapter = f.adapter("DeviceCode");
      const id = newId();
      const first = tokenPayload("DeviceCode", { uid: newId("uid"), userCode: "ABCD-EFGH", deviceInfo: { ua: "old" } });
      await adapter.upsert(id, first, 600);
      const second = { kind: "DeviceCode", grantId: newId("grant"), accountId: newId("account"), error: "access_denied" };
      await adapter.upsert(id, second, undefined as unknown as number);

      t.strictSame(await adapter.find(id), second, "no key of the first payload survives");
      t.equal(await f.count({ model: "DeviceCode", id }), 1, "still one row");
      const row = await f.row("DeviceCode", id);
      t.equal(row?.grantId, second.grantId);
      t.equal(row?.accountId, second.accountId);
      t.equal(row?.clientId, null);
      t.equal(row?.uid, null);
      t.equal(row?.userCode, null);
      t.equal(row?.expiresAt, null, "the new expiresIn (none) replaces the old expiry");
      t.equal(await adapter.findByUserCode("ABCD-EFGH"), undefined, "the old user code no longer finds it");
      t.equal(await adapter.findByUid(first.uid as string), undefined, "the old uid no longer finds it");
    });

    t.test("a payload holding a NUL character round-trips", async (t) => {
      // Interaction params are the authorization request's query, as the client sent it.
      const payload = { kind: "Interaction", uid: newId("uid"), params: { client_id: "app", state: "a\u0000b" } };
      const saved = await f.adapter("Interaction").upsert(payload.uid, payload, 600).then(
        () => "saved",
        (error: Error) => error.message,
      );
      t.equal(saved, "saved", "the upsert succeeds");
      t.strictSame(await f.adapter("Interaction").find(payload.uid), payload, "find returns the payload");
    });

    t.test("concurrent upserts of one id leave one row holding one of the payloads", async (t) => {
      const adapter = f.adapter("Session");
      const id = newId();
      const payloads = Array.from({ length: 8 }, (_, i) => ({ kind: "Session", uid: newId("uid"), n: i }));
      await Promise.all(payloads.map((p) => adapter.upsert(id, p, 600)));
      t.equal(await f.count({ model: "Session", id }), 1);
      const found = await adapter.find(id);
      t.ok(
        payloads.some((p) => isDeepStrictEqual(p, found)),
        `the row holds one of the upserted payloads, not a mix: ${JSON.stringify(found)}`,
      );
    });
  });

  t.test("models are isolated", async (t) => {
    const id = newId();
    const access = tokenPayload("AccessToken");
    const refresh = tokenPayload("RefreshToken", { rotations: 2 });
    await f.adapter("AccessToken").upsert(id, access, 3600);
    await f.adapter("RefreshToken").upsert(id, refresh, 3600);

    const rowsOf = async () => (await f.count({ model: "AccessToken", id })) + (await f.count({ model: "RefreshToken", id }));
    t.equal(await rowsOf(), 2, "the same id under two models is two rows");
    t.strictSame(await f.adapter("AccessToken").find(id), access);
    t.strictSame(await f.adapter("RefreshToken").find(id), refresh);
    t.equal(await f.adapter("AuthorizationCode").find(id), undefined, "a third model does not see either");

    await f.adapter("RefreshToken").consume(id);
    t.equal((await f.adapter("AccessToken").find(id))?.consumed, undefined, "consuming one model's row leaves the other");

    await f.adapter("RefreshToken").destroy(id);
    t.equal(await f.adapter("RefreshToken").find(id), undefined);
    t.strictSame(await f.adapter("AccessToken").find(id), access, "destroying one model's row leaves the other");
    t.equal(await rowsOf(), 1);
  });

  t.test("findByUid", async (t) => {
    t.test("finds a Session and an Interaction by their uid, without the id only the cookie holds", async (t) => {
      const session = { ...richSessionPayload(), uid: newId("uid") };
      const interaction = {
        kind: "Interaction",
        jti: newId("interaction"),
        uid: newId("uid"),
        returnTo: "https://idp.example/auth/x",
        params: { client_id: "app", scope: "openid", redirect_uri: "https://app.example/cb" },
        prompt: { name: "login", reasons: ["no_session"], details: {} },
        session: { accountId: "a", uid: session.uid, cookie: "c" },
      };
      await f.adapter("Session").upsert(session.jti!, session, 3600);
      await f.adapter("Interaction").upsert(interaction.jti, interaction, 600);

      // oidc-provider reads accountId and authorizations of a session found by
      // uid (lib/models/token_helpers.js, lib/provider.js), never its id.
      const { jti: _sessionId, ...sessionWithoutId } = session;
      t.strictSame(await f.adapter("Session").findByUid(session.uid), sessionWithoutId);
      // oidc-provider never looks an Interaction up by uid; what was sealed under its id stays sealed.
      const { jti: _interactionId, returnTo: _returnTo, ...interactionRest } = interaction;
      t.strictSame(await f.adapter("Interaction").findByUid(interaction.uid), { ...interactionRest, session: { accountId: "a", uid: session.uid } });
      t.strictSame(await f.adapter("Session").find(session.jti!), session, "found by its id, everything comes back");
      t.strictSame(await f.adapter("Interaction").find(interaction.jti), interaction);
    });

    t.test("only finds rows of its own model", async (t) => {
      const uid = newId("uid");
      await f.adapter("Interaction").upsert(newId(), { kind: "Interaction", uid }, 600);
      t.equal(await f.adapter("Session").findByUid(uid), undefined);
    });

    t.test("an unknown uid returns undefined", async (t) => {
      t.equal(await f.adapter("Session").findByUid(newId("uid")), undefined);
    });

    t.test("a destroyed session is not found by uid", async (t) => {
      const session = { kind: "Session", jti: newId(), uid: newId("uid"), accountId: "a" };
      await f.adapter("Session").upsert(session.jti, session, 3600);
      await f.adapter("Session").destroy(session.jti);
      t.equal(await f.adapter("Session").findByUid(session.uid), undefined);
    });
  });

  t.test("findByUserCode", async (t) => {
    t.test("finds a DeviceCode by its user code", async (t) => {
      const payload = tokenPayload("DeviceCode", {
        userCode: "WDJB-MJHT",
        deviceInfo: { ip: "127.0.0.1", ua: "Smart TV 📺" },
        params: { client_id: "tv", scope: "openid" },
      });
      await f.adapter("DeviceCode").upsert(payload.jti!, payload, 600);
      t.strictSame(await f.adapter("DeviceCode").findByUserCode("WDJB-MJHT"), payload);
      t.equal(await f.adapter("DeviceCode").findByUserCode("NOPE-NOPE"), undefined, "an unknown user code");
      t.equal(await f.adapter("BackchannelAuthenticationRequest").findByUserCode("WDJB-MJHT"), undefined, "another model");
    });

    t.test("destroying one of two rows sharing a user code leaves the other findable", async (t) => {
      const adapter = f.adapter("DeviceCode");
      const userCode = newId("code");
      const first = tokenPayload("DeviceCode", { userCode });
      const second = tokenPayload("DeviceCode", { userCode });
      await adapter.upsert(first.jti!, first, 600);
      await adapter.upsert(second.jti!, second, 600);
      await adapter.destroy(first.jti!);
      t.strictSame(await adapter.findByUserCode(userCode), second);
    });

    t.test("a destroyed device code is not found by user code", async (t) => {
      const payload = tokenPayload("DeviceCode", { userCode: newId("code") });
      await f.adapter("DeviceCode").upsert(payload.jti!, payload, 600);
      await f.adapter("DeviceCode").destroy(payload.jti!);
      t.equal(await f.adapter("DeviceCode").findByUserCode(payload.userCode as string), undefined);
    });
  });

  t.test("consume", async (t) => {
    t.test("sets consumed to the current epoch seconds and leaves the rest of the payload", async (t) => {
      for (const model of ["AuthorizationCode", "RefreshToken", "DeviceCode", "PushedAuthorizationRequest"]) {
        const payload = tokenPayload(model, { codeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", resource: ["https://api.example"] });
        const adapter = f.adapter(model);
        await adapter.upsert(payload.jti!, payload, 600);
        const before = epochNow();
        await adapter.consume(payload.jti!);
        const after = epochNow();

        const found = await adapter.find(payload.jti!);
        const { consumed, ...rest } = found ?? {};
        t.type(consumed, "number", `${model}: consumed is a number`);
        t.ok(consumed >= before && consumed <= after, `${model}: consumed ${consumed} is within [${before}, ${after}]`);
        t.strictSame(rest, payload, `${model}: the rest of the payload is unchanged`);
        t.ok((await f.row(model, payload.jti!))?.consumedAt, `${model}: the consumedAt column is set`);
      }
    });

    t.test("a consumed row re-saved with its found payload stays consumed", async (t) => {
      const adapter = f.adapter("RefreshToken");
      const payload = tokenPayload("RefreshToken");
      await adapter.upsert(payload.jti!, payload, 600);
      await adapter.consume(payload.jti!);
      const consumed = await adapter.find(payload.jti!);
      await adapter.upsert(payload.jti!, consumed!, 600);
      t.strictSame(await adapter.find(payload.jti!), consumed);
    });

    t.test("a consumed device code is still found by user code, with consumed set", async (t) => {
      const payload = tokenPayload("DeviceCode", { userCode: newId("code") });
      await f.adapter("DeviceCode").upsert(payload.jti!, payload, 600);
      await f.adapter("DeviceCode").consume(payload.jti!);
      const found = await f.adapter("DeviceCode").findByUserCode(payload.userCode as string);
      t.type(found?.consumed, "number");
    });

    t.test("consuming an unknown id fails with invalid_grant and creates no row", async (t) => {
      // A row that vanished between find and consume was revoked: the redemption must not go on.
      const id = newId();
      await t.rejects(f.adapter("AuthorizationCode").consume(id), { name: "InvalidGrant", error: "invalid_grant", error_detail: "authorization code not found" });
      t.equal(await f.count({ model: "AuthorizationCode", id }), 0);
    });

    for (const [model, detail] of [
      ["AuthorizationCode", "authorization code already consumed"],
      ["RefreshToken", "refresh token already used"],
    ] as const) {
      t.test(`a second consume of a ${model} fails as a reuse: invalid_grant, row destroyed, grant revoked`, async (t) => {
        const grantId = newId("grant");
        const payload = tokenPayload(model, { grantId });
        const sibling = tokenPayload("AccessToken", { grantId });
        const unrelated = tokenPayload("AccessToken");
        await f.adapter("Grant").upsert(grantId, { kind: "Grant", jti: grantId, accountId: "a", clientId: "c" }, 3600);
        await f.adapter(model).upsert(payload.jti!, payload, 600);
        await f.adapter("AccessToken").upsert(sibling.jti!, sibling, 600);
        await f.adapter("AccessToken").upsert(unrelated.jti!, unrelated, 600);

        await f.adapter(model).consume(payload.jti!);
        await t.rejects(f.adapter(model).consume(payload.jti!), { name: "InvalidGrant", error: "invalid_grant", error_detail: detail, status: 400 });

        t.equal(await f.adapter(model).find(payload.jti!), undefined, "the reused row is destroyed");
        t.equal(await f.count({ grantId }), 0, "every row issued under the grant is deleted");
        t.equal(await f.adapter("Grant").find(grantId), undefined, "the Grant row is deleted");
        t.strictSame(await f.adapter("AccessToken").find(unrelated.jti!), unrelated, "another grant's rows stay");
      });
    }

    t.test("of concurrent consumes of one row exactly one succeeds", async (t) => {
      const payload = tokenPayload("RefreshToken");
      await f.adapter("RefreshToken").upsert(payload.jti!, payload, 600);
      const results = await Promise.allSettled(Array.from({ length: 8 }, () => f.adapter("RefreshToken").consume(payload.jti!)));
      t.equal(results.filter((r) => r.status === "fulfilled").length, 1, "one consume wins");
      for (const r of results) if (r.status === "rejected") t.match(r.reason, { error: "invalid_grant" });
    });

    t.test("within the refresh reuse grace a second consume succeeds and keeps the first consumption time", async (t) => {
      const graceful = createAdapterFactory(f.db, createClientStore(f.db, createMasterKeyRing([randomBytes(32)])), f.ids, 5)("RefreshToken");
      const payload = tokenPayload("RefreshToken");
      await graceful.upsert(payload.jti!, payload, 600);
      await graceful.consume(payload.jti!);
      const first = (await f.row("RefreshToken", payload.jti!))?.consumedAt;
      await new Promise((resolve) => setTimeout(resolve, 20));
      await t.resolves(graceful.consume(payload.jti!), "the retry within the grace is allowed");
      t.same((await f.row("RefreshToken", payload.jti!))?.consumedAt, first, "the first consumption time is kept");

      await f.db.prisma.oidcRecord.updateMany({ where: { model: "RefreshToken", id: f.stored("RefreshToken", payload.jti!) }, data: { consumedAt: new Date(Date.now() - 6000) } });
      await t.rejects(graceful.consume(payload.jti!), { name: "InvalidGrant", error: "invalid_grant", error_detail: "refresh token already used" }, "after the grace it is a reuse");
    });
  });

  t.test("destroy", async (t) => {
    t.test("removes the row", async (t) => {
      const payload = { kind: "Grant", jti: newId(), accountId: "a", clientId: "c", openid: { scope: "openid" } };
      await f.adapter("Grant").upsert(payload.jti, payload, 3600);
      t.equal(await f.count({ model: "Grant", id: payload.jti }), 1);
      await f.adapter("Grant").destroy(payload.jti);
      t.equal(await f.adapter("Grant").find(payload.jti), undefined);
      t.equal(await f.count({ model: "Grant", id: payload.jti }), 0);
    });

    t.test("destroying an unknown id does not throw", async (t) => {
      await t.resolves(f.adapter("Grant").destroy(newId()));
    });
  });

  t.test("revokeByGrantId", async (t) => {
    for (const model of grantableModels) {
      t.test(`deletes only ${model} rows of that grant`, async (t) => {
        const grantId = newId("grant");
        const otherGrantId = newId("grant");
        const otherModel = model === "AccessToken" ? "RefreshToken" : "AccessToken";
        const revoked = [tokenPayload(model, { grantId }), tokenPayload(model, { grantId })];
        const kept = tokenPayload(model, { grantId: otherGrantId });
        const sibling = tokenPayload(otherModel, { grantId });
        for (const p of [...revoked, kept]) await f.adapter(model).upsert(p.jti!, p, 600);
        await f.adapter(otherModel).upsert(sibling.jti!, sibling, 600);
        await f.adapter("Grant").upsert(grantId, { kind: "Grant", jti: grantId, accountId: "a", clientId: "c" }, 3600);

        await f.adapter(model).revokeByGrantId(grantId);

        t.equal(await f.count({ model, grantId }), 0, "this model's rows of the grant are gone");
        for (const p of revoked) t.equal(await f.adapter(model).find(p.jti!), undefined);
        t.equal(await f.count({ model, grantId: otherGrantId }), 1, "another grant's row stays");
        t.strictSame(await f.adapter(model).find(kept.jti!), kept);
        t.equal(await f.count({ model: otherModel, grantId }), 1, "another model's row of the grant stays");
        t.strictSame(await f.adapter(otherModel).find(sibling.jti!), sibling);
        t.equal(await f.count({ model: "Grant", id: grantId }), 1, "the Grant row itself stays");
      });
    }

    t.test("a row moved to another grant follows it", async (t) => {
      const adapter = f.adapter("AccessToken");
      const id = newId();
      const [first, second] = [newId("grant"), newId("grant")];
      await adapter.upsert(id, tokenPayload("AccessToken", { grantId: first }), 600);
      const moved = tokenPayload("AccessToken", { grantId: second });
      await adapter.upsert(id, moved, 600);

      await adapter.revokeByGrantId(first);
      t.strictSame(await adapter.find(id), moved, "revoking the old grant leaves it");
      await adapter.revokeByGrantId(second);
      t.equal(await adapter.find(id), undefined, "revoking the new grant deletes it");
    });

    t.test("revoking every grantable model and destroying the Grant leaves no row of the grant", async (t) => {
      const grantId = newId("grant");
      await f.adapter("Grant").upsert(grantId, { kind: "Grant", jti: grantId, accountId: "a", clientId: "c" }, 3600);
      for (const model of grantableModels) {
        const p = tokenPayload(model, { grantId, userCode: model === "DeviceCode" ? newId("code") : undefined });
        await f.adapter(model).upsert(p.jti!, p, 600);
      }
      t.equal(await f.count({ grantId }), grantableModels.length);

      // What oidc-provider's revoke helper does on logout or token revocation.
      await Promise.all([...grantableModels.map((m) => f.adapter(m).revokeByGrantId(grantId)), f.adapter("Grant").destroy(grantId)]);
      t.equal(await f.count({ grantId }), 0);
      t.equal(await f.count({ model: "Grant", id: grantId }), 0);
    });

    t.test("revoking an unknown grant does not throw", async (t) => {
      await t.resolves(f.adapter("RefreshToken").revokeByGrantId(newId("grant")));
    });
  });

  t.test("expiry", async (t) => {
    t.test("expiresIn sets the row's expiry that many seconds from now", async (t) => {
      const payload = tokenPayload("AccessToken");
      const before = Date.now();
      // A minute, so that a slow machine still finds the row before it expires.
      await f.adapter("AccessToken").upsert(payload.jti!, payload, 60);
      const after = Date.now();
      const expiresAt = (await f.row("AccessToken", payload.jti!))?.expiresAt?.getTime();
      t.ok(expiresAt !== undefined && expiresAt >= before + 60_000 && expiresAt <= after + 60_000, `expiresAt ${expiresAt}`);
      t.strictSame(await f.adapter("AccessToken").find(payload.jti!), payload, "it is found before it expires");
    });

    t.test("an expired row is not found", async (t) => {
      const payload = tokenPayload("AccessToken");
      await f.adapter("AccessToken").upsert(payload.jti!, payload, 1);
      await f.expire("AccessToken", payload.jti!);
      t.equal(await f.adapter("AccessToken").find(payload.jti!), undefined);
      t.equal(await f.count({ model: "AccessToken", id: payload.jti! }), 1, "the row is still there until swept");
    });

    t.test("an expired row is not found by uid nor by user code", async (t) => {
      const session = { kind: "Session", jti: newId(), uid: newId("uid"), accountId: "a" };
      const device = tokenPayload("DeviceCode", { userCode: newId("code") });
      await f.adapter("Session").upsert(session.jti, session, 1);
      await f.adapter("DeviceCode").upsert(device.jti!, device, 1);
      t.strictSame(await f.adapter("Session").findByUid(session.uid), { kind: "Session", uid: session.uid, accountId: "a" }, "found by uid before");
      t.strictSame(await f.adapter("DeviceCode").findByUserCode(device.userCode as string), device, "found by user code before");

      await f.expire("Session", session.jti);
      await f.expire("DeviceCode", device.jti!);
      t.equal(await f.adapter("Session").findByUid(session.uid), undefined);
      t.equal(await f.adapter("DeviceCode").findByUserCode(device.userCode as string), undefined);
    });

    t.test("a consumed row that expired is not found", async (t) => {
      const payload = tokenPayload("AuthorizationCode");
      await f.adapter("AuthorizationCode").upsert(payload.jti!, payload, 60);
      await f.adapter("AuthorizationCode").consume(payload.jti!);
      await f.expire("AuthorizationCode", payload.jti!);
      t.equal(await f.adapter("AuthorizationCode").find(payload.jti!), undefined);
    });

    t.test("a row upserted without expiresIn never expires", async (t) => {
      const payload = { kind: "Grant", jti: newId(), accountId: "a", clientId: "c" };
      await f.adapter("Grant").upsert(payload.jti, payload, undefined as unknown as number);
      t.equal((await f.row("Grant", payload.jti))?.expiresAt, null, "no expiry");
      t.strictSame(await f.adapter("Grant").find(payload.jti), payload, "found");
    });

    t.test("a lifetime of zero or less is already over, as in oidc-provider's memory adapter", async (t) => {
      for (const expiresIn of [0, -5]) {
        const payload = { kind: "ReplayDetection", jti: newId() };
        await f.adapter("ReplayDetection").upsert(payload.jti, payload, expiresIn);
        t.ok((await f.row("ReplayDetection", payload.jti))?.expiresAt, `expiresIn ${expiresIn}: an expiry is stored, so the row is swept`);
        t.equal(await f.adapter("ReplayDetection").find(payload.jti), undefined, `expiresIn ${expiresIn}: not found`);
      }
    });
  });

  t.test("indexed columns", async (t) => {
    t.test("a Grant row carries its accountId and clientId", async (t) => {
      const grant = {
        kind: "Grant",
        jti: newId("grant"),
        accountId: newId("account"),
        clientId: newId("client"),
        openid: { scope: "openid email", claims: ["sub", "email"] },
        resources: { "https://api.example": "read write" },
      };
      await f.adapter("Grant").upsert(grant.jti, grant, 3600);
      const row = await f.row("Grant", grant.jti);
      t.equal(row?.accountId, grant.accountId);
      t.equal(row?.clientId, grant.clientId);
      t.equal(row?.grantId, null, "a Grant payload has no grantId");
      t.equal(row?.uid, null);
      t.equal(row?.userCode, null);
      t.equal(row?.consumedAt, null);
    });

    t.test("a token row carries its grantId, accountId and clientId", async (t) => {
      const token = tokenPayload("AccessToken");
      await f.adapter("AccessToken").upsert(token.jti!, token, 3600);
      const row = await f.row("AccessToken", token.jti!);
      t.equal(row?.grantId, token.grantId);
      t.equal(row?.accountId, token.accountId);
      t.equal(row?.clientId, token.clientId);
    });

    t.test("Session and DeviceCode rows carry their uid and userCode", async (t) => {
      const session = { kind: "Session", jti: newId(), uid: newId("uid"), accountId: newId("account") };
      const device = tokenPayload("DeviceCode", { userCode: newId("code") });
      await f.adapter("Session").upsert(session.jti, session, 3600);
      await f.adapter("DeviceCode").upsert(device.jti!, device, 600);
      const sessionRow = await f.row("Session", session.jti);
      t.equal(sessionRow?.uid, session.uid);
      t.equal(sessionRow?.accountId, session.accountId);
      t.equal((await f.row("DeviceCode", device.jti!))?.userCode, f.ids.of(device.userCode as string), "the user code's keyed hash");
    });

    t.test("a non-string value leaves the column empty and the payload intact", async (t) => {
      const payload = { kind: "AccessToken", jti: newId(), accountId: 42, clientId: ["c"], grantId: { id: "g" } };
      await f.adapter("AccessToken").upsert(payload.jti, payload as unknown as AdapterPayload, 600);
      const row = await f.row("AccessToken", payload.jti);
      t.equal(row?.accountId, null);
      t.equal(row?.clientId, null);
      t.equal(row?.grantId, null);
      t.strictSame(await f.adapter("AccessToken").find(payload.jti), payload);
    });
  });

  t.test("the mostly-empty columns have partial indexes, and lookups use them", async (t) => {
    // A token row with no uid, user code, grant or account adds no entry to
    // those indexes (migration 20261126144316_partial_oidc_indexes).
    const partial = ["OidcRecord_grantId_idx", "OidcRecord_model_uid_idx", "OidcRecord_model_userCode_idx", "OidcRecord_model_accountId_idx"];
    const definitions = new Map(
      provider === "sqlite"
        ? (await f.db.prisma.$queryRawUnsafe<{ name: string; sql: string }[]>(`SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'OidcRecord'`)).map((r) => [r.name, r.sql ?? ""])
        : (await f.db.prisma.$queryRawUnsafe<{ name: string; sql: string }[]>(`SELECT indexname AS name, indexdef AS sql FROM pg_indexes WHERE tablename = 'OidcRecord'`)).map((r) => [r.name, r.sql]),
    );
    for (const name of partial) t.match(definitions.get(name), /WHERE .*IS NOT NULL/i, `${name} is partial`);
    t.notMatch(definitions.get("OidcRecord_model_clientId_idx"), /WHERE/i, "clientId, set on every token, keeps a full index");
    if (provider === "sqlite") {
      // The statements the adapter runs on these columns (db/oidc-records.ts).
      const plans = [
        [`SELECT "payload" FROM "OidcRecord" WHERE "model" = ? AND "uid" = ? ORDER BY "createdAt" DESC LIMIT 1`, "OidcRecord_model_uid_idx"],
        [`SELECT "payload" FROM "OidcRecord" WHERE "model" = ? AND "userCode" IN (?, ?)`, "OidcRecord_model_userCode_idx"],
        [`DELETE FROM "OidcRecord" WHERE "grantId" = ? AND "model" = ?`, "OidcRecord_grantId_idx"],
        [`SELECT "id" FROM "OidcRecord" WHERE "model" = ? AND "accountId" = ?`, "OidcRecord_model_accountId_idx"],
      ] as const;
      for (const [sql, index] of plans) {
        const args = Array.from({ length: sql.split("?").length - 1 }, () => "x");
        const plan = await f.db.prisma.$queryRawUnsafe<{ detail: string }[]>(`EXPLAIN QUERY PLAN ${sql}`, ...args);
        t.match(plan.map((r) => r.detail).join(" "), new RegExp(`USING INDEX ${index}\\b`), `${sql.slice(0, 50)}... uses ${index}`);
      }
    }
  });

  t.test("credentials are stored as keyed hashes", async (t) => {
    const credentialModels = [
      "AccessToken",
      "AuthorizationCode",
      "RefreshToken",
      "ClientCredentials",
      "Session",
      "Interaction",
      "PushedAuthorizationRequest",
      "DeviceCode",
      "BackchannelAuthenticationRequest",
    ];
    const rawRow = (model: string, storedId: string) => f.db.prisma.oidcRecord.findUnique({ where: { model_id: { model, id: storedId } } });

    for (const model of credentialModels) {
      t.test(`a ${model} row is keyed by the HMAC of its id and holds no copy of it`, async (t) => {
        const payload = tokenPayload(model, { uid: newId("uid") });
        const id = payload.jti!;
        await f.adapter(model).upsert(id, payload, 600);
        t.equal(await f.db.prisma.oidcRecord.count({ where: { id } }), 0, "no row under the id itself");
        const row = await rawRow(model, f.ids.of(id));
        t.ok(row, "a row under the keyed hash");
        t.notOk(row?.payload.includes(id), "the stored payload does not contain the id");
        t.strictSame(await f.adapter(model).find(id), payload, "find(id) returns the payload, jti included");
      });
    }

    t.test("Grant and ReplayDetection ids are not credentials: stored as given", async (t) => {
      for (const model of ["Grant", "ReplayDetection"]) {
        const payload = { kind: model, jti: newId(), accountId: "a", clientId: "c" };
        await f.adapter(model).upsert(payload.jti, payload, 600);
        t.ok(await rawRow(model, payload.jti), `${model}: row under its own id`);
        t.strictSame(await f.adapter(model).find(payload.jti), payload);
      }
    });

    t.test("with another key nothing is found, consumed or destroyed", async (t) => {
      const other = createAdapterFactory(f.db, createClientStore(f.db, createMasterKeyRing([randomBytes(32)])), createStoredIds([randomBytes(32).toString("base64url")]));
      const payload = tokenPayload("RefreshToken");
      await f.adapter("RefreshToken").upsert(payload.jti!, payload, 600);
      t.equal(await other("RefreshToken").find(payload.jti!), undefined);
      await t.rejects(other("RefreshToken").consume(payload.jti!), { name: "InvalidGrant" });
      await other("RefreshToken").destroy(payload.jti!);
      t.strictSame(await f.adapter("RefreshToken").find(payload.jti!), payload, "the row is untouched");
    });

    t.test("an Interaction's other credentials are sealed under its id and come back on find", async (t) => {
      const uid = newId("interaction");
      const sessionCookie = newId("session");
      const parId = newId("par");
      const deviceCode = newId("device");
      const interaction = {
        iat: epochNow(),
        exp: epochNow() + 600,
        kind: "Interaction",
        jti: uid,
        returnTo: `https://idp.example/auth/${uid}`,
        prompt: { name: "login", reasons: ["no_session"], details: {} },
        params: { client_id: "app", request_uri: `urn:ietf:params:oauth:request_uri:${parId}`, state: "xyz" },
        session: { accountId: "a", uid: newId("uid"), cookie: sessionCookie },
        parJti: parId,
        deviceCode,
        cid: newId("cid"),
      };
      await f.adapter("Interaction").upsert(uid, interaction, 600);
      const row = await rawRow("Interaction", f.ids.of(uid));
      for (const [name, value] of [["uid", uid], ["session cookie", sessionCookie], ["PAR id", parId], ["device code", deviceCode]]) {
        t.notOk(row?.payload.includes(value!), `the stored payload does not contain the ${name}`);
      }
      t.match(row?.payload, /"state":"xyz"/, "the rest stays readable");
      t.strictSame(await f.adapter("Interaction").find(uid), interaction, "find(uid) restores every field");
    });

    t.test("a DeviceCode's user code is stored as its keyed hash and finds the whole payload", async (t) => {
      const userCode = "BCDF-GHJK";
      const payload = tokenPayload("DeviceCode", { userCode, params: { client_id: "tv" } });
      await f.adapter("DeviceCode").upsert(payload.jti!, payload, 600);
      const row = await rawRow("DeviceCode", f.ids.of(payload.jti!));
      t.equal(row?.userCode, f.ids.of(userCode));
      t.notOk(row?.payload.includes(userCode), "the user code is not in the payload");
      t.strictSame(await f.adapter("DeviceCode").findByUserCode(userCode), payload, "its device code (jti) included");
      t.strictSame(await f.adapter("DeviceCode").find(payload.jti!), payload, "and find restores the user code");
    });

    t.test("an altered sealed field is refused, not returned half-open", async (t) => {
      const uid = newId("interaction");
      await f.adapter("Interaction").upsert(uid, { kind: "Interaction", jti: uid, returnTo: `https://idp.example/auth/${uid}` }, 600);
      const row = await rawRow("Interaction", f.ids.of(uid));
      const stored = JSON.parse(row!.payload) as { "@gatehouse": { sealed: string } };
      stored["@gatehouse"].sealed = stored["@gatehouse"].sealed.slice(0, -4) + "AAAA";
      await f.db.prisma.oidcRecord.update({ where: { model_id: { model: "Interaction", id: row!.id } }, data: { payload: JSON.stringify(stored) } });
      await t.rejects(f.adapter("Interaction").find(uid), { code: "stored_id_error" });
    });

    t.test("after a master key rotation, rows written under the older key are still found, consumed and destroyed", async (t) => {
      const [oldKey, newKey] = [randomBytes(32), randomBytes(32)];
      const store = createClientStore(f.db, createMasterKeyRing([oldKey]));
      const before = createAdapterFactory(f.db, store, storedIdsFor(createMasterKeyRing([oldKey])));
      const after = createAdapterFactory(f.db, store, storedIdsFor(createMasterKeyRing([newKey, oldKey])));
      const withoutOld = createAdapterFactory(f.db, store, storedIdsFor(createMasterKeyRing([newKey])));
      const session = { kind: "Session", jti: newId(), uid: newId("uid"), accountId: "a" };
      const code = tokenPayload("AuthorizationCode");
      const interaction = { kind: "Interaction", jti: newId(), returnTo: "https://idp.example/auth/x" };
      await before("Session").upsert(session.jti, session, 600);
      await before("AuthorizationCode").upsert(code.jti!, code, 600);
      await before("Interaction").upsert(interaction.jti, interaction, 600);

      t.strictSame(await after("Session").find(session.jti), session, "found under the older key");
      t.strictSame(await after("Interaction").find(interaction.jti), interaction, "its sealed fields open with the older key");
      await t.resolves(after("AuthorizationCode").consume(code.jti!), "consumed under the older key");
      await after("Interaction").destroy(interaction.jti);
      t.equal(await before("Interaction").find(interaction.jti), undefined, "destroyed under the older key");

      await after("Session").upsert(session.jti, session, 600);
      t.equal(await f.db.prisma.oidcRecord.count({ where: { model: "Session", uid: session.uid } }), 1, "re-saving moves the row, not copies it");
      t.strictSame(await withoutOld("Session").find(session.jti), session, "now under the newest key");
      t.equal(await withoutOld("AuthorizationCode").find(code.jti!), undefined, "once the older key is gone, its rows are not found");
    });
  });

  t.test("the Client model", async (t) => {
    const ring = createMasterKeyRing([randomBytes(32)]);
    // The client store must open secrets with the ring that sealed them.
    const adapter = createAdapterFactory(f.db, createClientStore(f.db, ring), storedIdsFor(ring))("Client");

    t.test("find returns a confidential client's metadata with its secret", async (t) => {
      const created = await createClient(f.db, ring, {
        name: "Adapter test app",
        grantTypes: ["authorization_code", "refresh_token"],
        scope: "openid profile email",
        redirectUris: ["https://app.example/callback", "http://127.0.0.1:8080/cb"],
      });
      const metadata = await adapter.find(created.client_id);
      t.equal(metadata?.client_id, created.client_id);
      t.type(created.client_secret, "string");
      t.equal(metadata?.client_secret, created.client_secret, "the original secret, unsealed");
      t.strictSame(metadata?.redirect_uris, ["https://app.example/callback", "http://127.0.0.1:8080/cb"]);
      t.strictSame(metadata?.grant_types, ["authorization_code", "refresh_token"]);
      t.equal(metadata?.scope, "openid profile email");
      t.equal(metadata?.token_endpoint_auth_method, "client_secret_basic");

      const row = await f.db.prisma.client.findUnique({ where: { id: created.client_id } });
      t.ok(row?.secretEncrypted, "a sealed secret is stored");
      t.notOk(row?.secretEncrypted?.includes(created.client_secret!), "the secret is not stored in clear");
    });

    t.test("find returns a public client's metadata without a secret", async (t) => {
      const created = await createClient(f.db, ring, { name: "SPA", public: true, redirectUris: ["https://spa.example/cb"] });
      t.equal(created.client_secret, undefined);
      const metadata = await adapter.find(created.client_id);
      t.equal(metadata?.client_id, created.client_id);
      t.notOk(metadata && "client_secret" in metadata, "no client_secret key");
      t.equal(metadata?.token_endpoint_auth_method, "none");
    });

    t.test("an unknown client id returns undefined", async (t) => {
      t.equal(await adapter.find(newId("client")), undefined);
    });

    t.test("upsert and destroy throw and write nothing", async (t) => {
      const id = newId("client");
      await t.rejects(adapter.upsert(id, { client_id: id, client_secret: "x" }, 0));
      await t.rejects(adapter.destroy(id));
      t.equal(await f.db.prisma.client.count({ where: { id } }), 0);
      t.equal(await f.count({ model: "Client" }), 0, "no Client row in OidcRecord");
    });

    t.test("findByUid and findByUserCode return undefined", async (t) => {
      t.equal(await adapter.findByUid("anything"), undefined);
      t.equal(await adapter.findByUserCode("anything"), undefined);
    });
  });

  t.test("sweeping expired rows", async (t) => {
    // Its own database: the sweep counts every expired row in the table.
    const s = await openFixture(t, provider);
    const expired = [tokenPayload("AccessToken"), tokenPayload("AuthorizationCode"), { kind: "Session", jti: newId(), uid: newId("uid") }];
    const live = tokenPayload("RefreshToken");
    const forever = { kind: "Grant", jti: newId(), accountId: "a", clientId: "c" };
    for (const p of expired) {
      await s.adapter(p.kind!).upsert(p.jti!, p, 60);
      await s.expire(p.kind!, p.jti!);
    }
    await s.adapter("RefreshToken").upsert(live.jti!, live, 3600);
    await s.adapter("Grant").upsert(forever.jti, forever, undefined);

    t.test("deletes exactly the expired rows and returns their count", async (t) => {
      t.equal(await deleteExpiredOidcRecords(s.db), expired.length);
      for (const p of expired) t.equal(await s.count({ model: p.kind!, id: p.jti! }), 0, `${p.kind} swept`);
      t.equal(await s.db.prisma.oidcRecord.count(), 2, "the live and the never-expiring rows stay");
      t.strictSame(await s.adapter("RefreshToken").find(live.jti!), live);
      t.strictSame(await s.adapter("Grant").find(forever.jti), forever);
    });

    t.test("a second sweep deletes nothing", async (t) => {
      t.equal(await deleteExpiredOidcRecords(s.db), 0);
      t.equal(await s.db.prisma.oidcRecord.count(), 2);
    });

    t.test("a sweep at a later time deletes what has expired by then, never rows without expiry", async (t) => {
      const later = new Date(Date.now() + 2 * 3600 * 1000);
      t.equal(await deleteExpiredOidcRecords(s.db, later), 1);
      t.equal(await s.count({ model: "RefreshToken", id: live.jti! }), 0);
      const farFuture = new Date("9999-12-31T00:00:00Z");
      t.equal(await deleteExpiredOidcRecords(s.db, farFuture), 0);
      t.strictSame(await s.adapter("Grant").find(forever.jti), forever);
    });
  });
}

for (const provider of providers(t)) {
  t.test(provider, async (t) => adapterSuite(t, provider));
}
