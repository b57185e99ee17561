/**
 * The benchmark (bench/, `npm run bench`) runs: every scenario, a handful of
 * requests against Gatehouse and against the bare oidc-provider baseline,
 * all answered as expected. No timing assertions (docs/PERFORMANCE.md).
 */
import t from "tap";
import { runBench } from "../../bench/run.ts";
import { scenarioNames } from "../../bench/scenarios.ts";

t.test("every benchmark scenario answers on Gatehouse and on the baseline", async (t) => {
  const report = await runBench({
    quick: true,
    postgresUrl: undefined,
    connections: 2,
    durationMs: 10_000,
    maxRequests: 5,
    rounds: 1,
    scenarios: [...scenarioNames],
    argon2: true,
  });
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
  t.ok(report.memoryKiB.gatehouse.atEnd === undefined || report.memoryKiB.gatehouse.atEnd > 0, "resident memory read (Linux)");
});
