/**
 * The benchmark (bench/, `npm run bench`) runs: every scenario, a handful of
 * requests against Gatehouse and against the bare oidc-provider baseline,
 * all answered as expected, with the baseline on either store (in memory, or
 * SQLite rows: bench/baseline-store.ts) and behind either host (Node's
 * server, or a bare Fastify app). No timing assertions
 * (docs/PERFORMANCE.md).
 */
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import t from "tap";
import { createSqliteStore } from "../../bench/baseline-store.ts";
import { runBench, type BenchOptions } from "../../bench/run.ts";
import { scenarioNames } from "../../bench/scenarios.ts";
import { runLoad, userDone } from "../../bench/load.ts";

/** Every scenario, five iterations on two connections, one round. */
const smoke = (options: Partial<BenchOptions>) =>
  runBench({
    quick: true,
    postgresUrl: undefined,
    connections: 2,
    durationMs: 10_000,
    maxRequests: 5,
    rounds: 1,
    scenarios: [...scenarioNames],
    argon2: true,
    ...options,
  });

t.test("every benchmark scenario answers on Gatehouse and on the baseline", async (t) => {
  const report = await smoke({});
  t.same([report.options.baselineStore, report.options.baselineHost], ["memory", "node"], "the default baseline: in memory, on Node's server");
  t.same(
    report.results.map((r) => r.scenario),
    [...scenarioNames, "argon2_verify"],
  );
  for (const result of report.results) {
    const servers = result.scenario === "argon2_verify" ? (["gatehouse"] as const) : (["gatehouse", "baseline"] as const);
    for (const server of servers) {
      const run = result[server][0]!;
      t.ok(run.count > 0, `${result.scenario} on ${server} ran`);
      t.equal(run.errors, 0, `${result.scenario} on ${server}: no errors${run.firstError ? ` (${run.firstError})` : ""}`);
    }
  }
  // Statements per request, from Gatehouse's own counter: none for the
  // static documents, at least one row written per token issued.
  const statements = new Map(report.results.map((r) => [r.scenario, r.statementsPerIteration]));
  t.equal(statements.get("discovery"), 0, "discovery reads nothing from the database");
  t.equal(statements.get("jwks"), 0, "nor does the JWKS");
  t.ok((statements.get("client_credentials") ?? 0) >= 1, `client_credentials writes its token (${statements.get("client_credentials")} statements)`);
  t.ok((statements.get("refresh") ?? 0) >= 3, `refresh reads and writes (${statements.get("refresh")} statements)`);
  // The codes are prepared before the run: the run counts the exchanges alone
  // (the code read with its grant, consumed, the tokens written), not the
  // authorization requests that made them.
  const exchange = statements.get("code_exchange") ?? 0;
  t.ok(exchange >= 3 && exchange <= 8, `code_exchange reads, consumes and writes, and no more (${exchange} statements)`);
  t.ok(report.memoryKiB.gatehouse.atEnd === undefined || report.memoryKiB.gatehouse.atEnd > 0, "resident memory read (Linux)");
});

t.test("every scenario answers with the baseline on its SQLite store, in a bare Fastify app", async (t) => {
  const report = await smoke({ argon2: false, baselineStore: "sqlite", baselineHost: "fastify" });
  t.equal(report.options.baselineStore, "sqlite", "the report records the baseline's store");
  t.equal(report.options.baselineHost, "fastify", "and its host");
  t.same(
    report.results.map((r) => r.scenario),
    [...scenarioNames],
  );
  for (const result of report.results) {
    for (const server of ["gatehouse", "baseline"] as const) {
      t.equal(result[server].length, 1, `${result.scenario} on ${server}: one run`);
      const run = result[server][0]!;
      // runLoad stops at maxRequests: exactly 5 iterations, none failed.
      t.equal(run.count, 5, `${result.scenario} on ${server}: 5 iterations`);
      t.equal(run.errors, 0, `${result.scenario} on ${server}: no errors${run.firstError ? ` (${run.firstError})` : ""}`);
    }
    t.ok(result.ratio !== undefined && result.ratio > 0, `${result.scenario}: a ratio (${result.ratio})`);
  }
});

t.test("a virtual user with no work left stops, and that call is not counted", async (t) => {
  const work = new Map([
    ["a", 2],
    ["b", 5],
  ]);
  const run = await runLoad(
    [...work.keys()],
    async (user) => {
      const left = work.get(user)!;
      if (left === 0) return userDone;
      work.set(user, left - 1);
    },
    // Exactly the work there is: a "done" counted as started would leave one iteration undone.
    { durationMs: 10_000, maxRequests: 7 },
  );
  t.equal(run.count, 7, "2 + 5 iterations, the two answers of done not among them");
  t.equal(run.errors, 0);
});

t.test("the baseline's SQLite adapter keeps oidc-provider's adapter contract", async (t) => {
  const store = createSqliteStore();
  t.teardown(() => store.close());
  const tokens = store.adapter("AccessToken");
  const codes = store.adapter("AuthorizationCode");
  const sessions = store.adapter("Session");
  const devices = store.adapter("DeviceCode");

  await tokens.upsert("at1", { jti: "at1", grantId: "g1", accountId: "a", clientId: "c" }, 60);
  t.same(await tokens.find("at1"), { jti: "at1", grantId: "g1", accountId: "a", clientId: "c" });
  t.equal(await codes.find("at1"), undefined, "rows are per model");
  await tokens.upsert("at1", { jti: "at1", grantId: "g1", scope: "openid" }, 60);
  t.same(await tokens.find("at1"), { jti: "at1", grantId: "g1", scope: "openid" }, "upsert replaces the payload");

  await codes.upsert("c1", { jti: "c1", grantId: "g1" }, 60);
  await codes.consume("c1");
  const consumed = await codes.find("c1");
  t.type(consumed?.consumed, "number", "a consumed row reads with consumed");
  t.ok(Math.abs(Number(consumed?.consumed) - Date.now() / 1000) < 5, "consumed is the time in epoch seconds");

  await tokens.upsert("old", { jti: "old" }, -1);
  t.equal(await tokens.find("old"), undefined, "an expired row reads as missing");
  await tokens.upsert("forever", { jti: "forever" }, undefined as unknown as number);
  t.same(await tokens.find("forever"), { jti: "forever" }, "no expiresIn: no expiry");

  await sessions.upsert("s1", { jti: "s1", uid: "u1", accountId: "a" }, 60);
  t.same(await sessions.findByUid("u1"), { jti: "s1", uid: "u1", accountId: "a" });
  t.equal(await sessions.findByUid("u2"), undefined);
  await devices.upsert("d1", { jti: "d1", userCode: "ABCD-EFGH" }, 60);
  t.same(await devices.findByUserCode("ABCD-EFGH"), { jti: "d1", userCode: "ABCD-EFGH" });

  await tokens.revokeByGrantId("g1");
  t.equal(await tokens.find("at1"), undefined, "revokeByGrantId deletes the model's rows of the grant");
  t.ok(await codes.find("c1"), "and only that model's");
  await codes.destroy("c1");
  t.equal(await codes.find("c1"), undefined, "destroy deletes");

  const dir = dirname(store.file);
  t.ok(existsSync(store.file), "the database is a file");
  store.close();
  t.notOk(existsSync(dir), "close removes its folder");
});
