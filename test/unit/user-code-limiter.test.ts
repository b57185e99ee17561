/**
 * The wrong-user-code limiter of the device verification page
 * (src/auth/user-code-limiter.ts; RFC 8628 section 5.1) over in-memory
 * counters with a controllable clock: attempts counted before they are
 * checked, a right code giving back its own unit only, the limit and its
 * window, and addresses counted apart.
 */
import t, { type Test } from "tap";
import { createMemoryCounterStore } from "../../src/auth/counter-store.ts";
import { createUserCodeLimiter } from "../../src/auth/user-code-limiter.ts";

function setUp(t: Test) {
  let now = Date.now();
  const store = createMemoryCounterStore({ now: () => now });
  t.teardown(() => store.close());
  const limiter = createUserCodeLimiter(store, { maxFailures: 3, windowMs: 60_000 });
  return { limiter, store, advance: (ms: number) => (now += ms) };
}

t.test("past the limit the next attempt is blocked, with the window's remaining time", async (t) => {
  const { limiter } = setUp(t);
  for (let i = 0; i < 3; i++) t.equal((await limiter.reserve("198.51.100.7")).blocked, false, `wrong code ${i + 1}`);
  const blocked = await limiter.reserve("198.51.100.7");
  t.equal(blocked.blocked, true);
  t.ok(blocked.blocked && blocked.retryAfterSeconds > 0 && blocked.retryAfterSeconds <= 60);
  t.equal((await limiter.reserve("203.0.113.9")).blocked, false, "another address is counted apart");
});

t.test("parallel attempts are all counted before any is checked", async (t) => {
  const { limiter } = setUp(t);
  const attempts = await Promise.all(Array.from({ length: 10 }, () => limiter.reserve("198.51.100.7")));
  t.equal(attempts.filter((a) => !a.blocked).length, 3);
});

t.test("a right code gives back its own unit, once, and does not reset the count", async (t) => {
  const { limiter, store } = setUp(t);
  await limiter.reserve("198.51.100.7");
  await limiter.reserve("198.51.100.7");
  const right = await limiter.reserve("198.51.100.7");
  if (right.blocked) throw new Error("not blocked yet");
  await right.release();
  await right.release();
  t.equal((await store.peek("usercode:198.51.100.7"))?.count, 2, "the two wrong codes stay counted");
  t.equal((await limiter.reserve("198.51.100.7")).blocked, false);
  t.equal((await limiter.reserve("198.51.100.7")).blocked, true);
});

t.test("the window passes", async (t) => {
  const { limiter, advance } = setUp(t);
  for (let i = 0; i < 3; i++) await limiter.reserve("198.51.100.7");
  t.equal((await limiter.reserve("198.51.100.7")).blocked, true);
  advance(60_001);
  t.equal((await limiter.reserve("198.51.100.7")).blocked, false);
});
