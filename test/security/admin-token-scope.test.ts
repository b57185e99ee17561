/**
 * Attack: an admin client whose allowed scope an operator has narrowed (say,
 * after its credentials leaked to an on-call tool that should only read)
 * keeps writing with the tokens it already holds, for as long as they live.
 * A token's scopes are checked against its client's current allowed scope at
 * each use: narrowing the scope or deleting the client takes effect at once.
 */
import t from "tap";
import { startApp, uniqueEmail } from "../helpers/http-flow.ts";
import { AdminApi, adminCall, makeAdminClient } from "../helpers/admin.ts";

t.test("narrowing or deleting an admin client takes effect on its live tokens", async (t) => {
  const running = await startApp(t);
  const operator = new AdminApi(running, (await makeAdminClient(running, "admin:read admin:write", "Operator")).token);
  const tool = await makeAdminClient(running, "admin:read admin:revoke admin:write", "Leaky tool");

  const createUser = () => adminCall(running, "POST", "/admin/v1/users", { token: tool.token, body: { email: uniqueEmail("made") } });
  t.equal((await createUser()).status, 201, "before: the tool's token writes");

  const narrowed = await operator.patch(`/admin/v1/clients/${tool.clientId}`, { scope: "admin:read" });
  t.equal(narrowed.status, 200, `the operator narrows the tool to admin:read (${narrowed.text.slice(0, 200)})`);

  const write = await createUser();
  t.equal(write.status, 403, "the same token can no longer write");
  t.match(write.headers.get("www-authenticate"), /insufficient_scope/);
  const revoke = await adminCall(running, "POST", "/admin/v1/revocations", { token: tool.token, body: { user_id: "no-such-user" } });
  t.equal(revoke.status, 403, "nor revoke");
  t.equal((await adminCall(running, "GET", "/admin/v1/users", { token: tool.token })).status, 200, "but still reads: admin:read is in both");

  const widened = await operator.patch(`/admin/v1/clients/${tool.clientId}`, { scope: "admin:read admin:revoke admin:write" });
  t.equal(widened.status, 200);
  t.equal((await createUser()).status, 201, "widening again restores the token's own scope, never more than it was issued");

  t.equal((await operator.delete(`/admin/v1/clients/${tool.clientId}`)).status, 204, "the operator deletes the tool");
  t.equal((await adminCall(running, "GET", "/admin/v1/users", { token: tool.token })).status, 401, "its token stops at once");
});

t.test("a token never gains a scope the client was later allowed", async (t) => {
  const running = await startApp(t);
  const operator = new AdminApi(running, (await makeAdminClient(running, "admin:read admin:write", "Operator")).token);
  const reader = await makeAdminClient(running, "admin:read", "Reader");
  t.equal((await operator.patch(`/admin/v1/clients/${reader.clientId}`, { scope: "admin:read admin:write" })).status, 200);
  const res = await adminCall(running, "POST", "/admin/v1/users", { token: reader.token, body: { email: uniqueEmail("made") } });
  t.equal(res.status, 403, "the token's own scope (admin:read) still bounds it");
});
