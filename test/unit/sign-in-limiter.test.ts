/**
 * The layered sign-in limiter (src/auth/sign-in-limiter.ts, SPEC section 10)
 * over in-memory counters with a controllable clock: what a success resets and
 * what it leaves alone, the growing delays, the hard limit and its window.
 * (IPs cannot be faked over HTTP without TRUST_PROXY, so this is where
 * several addresses are tested.)
 */
import t, { type Test } from "tap";
import { createMemoryCounterStore, type CounterStore } from "../../src/auth/counter-store.ts";
import { createSignInLimiter, type SignInLimits } from "../../src/auth/sign-in-limiter.ts";

const limits: SignInLimits = { maxFailures: 5, maxFailuresPerIp: 50, windowMs: 15 * 60 * 1000, baseDelayMs: 250 };
const account = "victim@example.test";
const ipA = "198.51.100.7";
const ipB = "203.0.113.9";

function setUp(t: Test, overrides: Partial<SignInLimits> = {}) {
  // Starts at the wall clock: the limiter computes Retry-After from Date.now().
  let now = Date.now();
  const clock = { now: () => now, advance: (ms: number) => (now += ms) };
  const store: CounterStore = createMemoryCounterStore({ now: clock.now });
  t.teardown(() => store.close());
  const limiter = createSignInLimiter(store, { ...limits, ...overrides });
  /** The count of a counter as the limiter names them (acct:, ip:, acctip:). */
  const count = async (key: string) => (await store.peek(key))?.count ?? 0;
  return { store, limiter, clock, count };
}

t.test("a success from one IP does not reset the counters another IP built up", async (t) => {
  const { limiter, count } = setUp(t);
  await limiter.recordFailure(account, ipA);
  await limiter.recordFailure(account, ipB);
  await limiter.recordFailure(account, ipB);
  t.equal(await count(`acctip:${account}|${ipA}`), 1);
  t.equal(await count(`acctip:${account}|${ipB}`), 2);
  t.equal(await count(`acct:${account}`), 3);

  await limiter.recordSuccess(account, ipA);

  t.equal(await count(`acctip:${account}|${ipA}`), 0, "A's account+IP counter is reset");
  t.equal(await count(`acctip:${account}|${ipB}`), 2, "B's account+IP counter is unchanged");
  t.equal(await count(`acct:${account}`), 3, "the account counter is unchanged");
  t.equal(await count(`ip:${ipB}`), 2, "B's IP counter is unchanged");
  t.equal(await count(`ip:${ipA}`), 1, "A's IP counter is unchanged too (many users may share one address)");

  // Behaviourally: B's next failures still count from where they were.
  const third = await limiter.recordFailure(account, ipB);
  t.equal(third.failures, 4, "B's next failure is the account's fourth");
  await limiter.recordFailure(account, ipB);
  t.same(await limiter.check(account, ipB), { blocked: true, retryAfterSeconds: 900 }, "and B reaches the account limit as if A had never signed in");
  t.equal((await limiter.check(account, ipA)).blocked, true, "the account limit holds from A too: it is per account");
});

t.test("failures are answered after growing delays, capped at 5 s", async (t) => {
  const { limiter } = setUp(t, { maxFailures: 20 });
  const delays: number[] = [];
  for (let i = 0; i < 10; i++) delays.push((await limiter.recordFailure(account, ipA)).delayMs);
  t.same(delays.slice(0, 6), [0, 250, 500, 1000, 2000, 4000], "no delay for the first failure, then 250 ms doubling");
  for (let i = 2; i < delays.length; i++) t.ok(delays[i]! >= delays[i - 1]!, `failure ${i + 1} waits at least as long as failure ${i}`);
  t.equal(Math.max(...delays), 5000, "never more than 5 s");
});

t.test("the delay follows the worse of the account and account+IP counters", async (t) => {
  const { limiter } = setUp(t);
  await limiter.recordFailure(account, ipA);
  await limiter.recordFailure(account, ipA);
  const fromB = await limiter.recordFailure(account, ipB);
  t.equal(fromB.failures, 3, "a new IP does not start the account from zero");
  t.equal(fromB.delayMs, 500);
});

t.test("at the limit the account is blocked until the window passes", async (t) => {
  const { limiter, clock } = setUp(t);
  for (let i = 1; i <= 4; i++) {
    await limiter.recordFailure(account, ipA);
    t.same(await limiter.check(account, ipA), { blocked: false }, `not blocked after ${i} failures`);
  }
  const fifth = await limiter.recordFailure(account, ipA);
  t.equal(fifth.failures, limits.maxFailures);
  const blocked = await limiter.check(account, ipA);
  t.equal(blocked.blocked, true, "blocked after the fifth");
  t.equal(blocked.blocked && blocked.retryAfterSeconds, 900, "for the rest of the window");
  t.equal((await limiter.check("someone.else@example.test", ipA)).blocked, false, "another account from the same IP is not blocked");

  clock.advance(limits.windowMs - 1000);
  t.equal((await limiter.check(account, ipA)).blocked, true, "still blocked just before the window ends");
  clock.advance(1000);
  t.same(await limiter.check(account, ipA), { blocked: false }, "free again once the window has passed");
  t.equal((await limiter.recordFailure(account, ipA)).failures, 1, "and the next failure starts a new window");
});

t.test("one IP failing across many accounts hits the per-IP limit", async (t) => {
  const { limiter } = setUp(t, { maxFailuresPerIp: 10 });
  for (let i = 0; i < 10; i++) await limiter.recordFailure(`user${i}@example.test`, ipA);
  t.equal((await limiter.check("fresh@example.test", ipA)).blocked, true, "a fresh account from that IP is blocked");
  t.equal((await limiter.check("fresh@example.test", ipB)).blocked, false, "from another IP it is not");
});
