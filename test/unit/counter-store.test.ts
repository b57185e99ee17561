/**
 * The in-memory counter store (src/auth/counter-store.ts): increment and
 * decrement are the reservation primitives, and the store holds at most
 * `maxKeys` keys however many distinct keys are counted, forgetting the least
 * recently counted first (OWASP Denial of Service Cheat Sheet: bound what a
 * client can make the server keep).
 */
import t from "tap";
import { createMemoryCounterStore, defaultMaxCounterKeys } from "../../src/auth/counter-store.ts";

t.test("a flood of distinct keys cannot grow the store beyond maxKeys", async (t) => {
  const store = createMemoryCounterStore({ maxKeys: 1000 });
  t.teardown(() => store.close());
  await store.increment("acct:victim@example.test", 60_000);
  for (let i = 0; i < 50_000; i++) {
    await store.increment(`acct:flood-${i}@example.test`, 60_000);
    if (store.size > 1000) return t.fail(`the store grew to ${store.size} keys`);
  }
  t.equal(store.size, 1000, "exactly maxKeys keys are kept");
  t.equal(await store.peek("acct:flood-0@example.test"), undefined, "the least recently counted keys were forgotten");
  t.equal((await store.peek("acct:flood-49999@example.test"))?.count, 1, "the most recent are kept");
});

t.test("counting a key again keeps it (least recently counted goes first)", async (t) => {
  const store = createMemoryCounterStore({ maxKeys: 3 });
  t.teardown(() => store.close());
  await store.increment("a", 60_000);
  await store.increment("b", 60_000);
  await store.increment("c", 60_000);
  await store.increment("a", 60_000);
  await store.increment("d", 60_000);
  t.equal((await store.peek("a"))?.count, 2, "a, counted again, is kept");
  t.equal(await store.peek("b"), undefined, "b, the least recently counted, is gone");
  t.equal(store.size, 3);
});

t.test("the default bound is 100 000 keys", async (t) => {
  t.equal(defaultMaxCounterKeys, 100_000);
});

t.test("decrement takes one back, drops the key at zero, and never opens a window", async (t) => {
  let now = 1_000_000;
  const store = createMemoryCounterStore({ now: () => now });
  t.teardown(() => store.close());
  await store.increment("k", 1000);
  await store.increment("k", 1000);
  await store.decrement("k");
  t.equal((await store.peek("k"))?.count, 1);
  await store.decrement("k");
  t.equal(await store.peek("k"), undefined, "gone at zero");
  t.equal(store.size, 0, "and not kept in memory");
  await store.decrement("k");
  t.equal(await store.peek("k"), undefined, "a decrement of a missing key does not create it");
  await store.increment("k", 1000);
  now += 1000;
  await store.decrement("k");
  t.equal(await store.peek("k"), undefined, "a decrement after the window ended is a no-op");
  t.equal((await store.increment("k", 1000)).count, 1, "and the next increment starts a new window at 1");
});
