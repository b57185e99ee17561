/**
 * The layered sign-in limiter (src/auth/sign-in-limiter.ts; OWASP
 * Authentication Cheat Sheet, "Account lockout") over in-memory counters with
 * a controllable clock: what a success resets and what it leaves alone, the
 * growing delays, the hard limit and its window, and reservations (an
 * attempt is counted before it is verified, released on success, given back
 * when never evaluated). (IPs cannot be faked over HTTP without TRUST_PROXY,
 * so this is where several addresses are tested.)
 */
import t, { type Test } from "tap";
import { createMemoryCounterStore, type CounterStore } from "../../src/auth/counter-store.ts";
import { createSignInLimiter, type Reservation, type SignInLimits } from "../../src/auth/sign-in-limiter.ts";

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
  /** A failed attempt: reserved, verified wrong, so its reservation stays counted. */
  const fail = async (acct: string | undefined, ip: string): Promise<Reservation> => {
    const reserved = await limiter.reserve(acct, ip);
    if (reserved.blocked) throw new Error(`unexpectedly blocked: ${acct} from ${ip}`);
    return reserved;
  };
  /** A successful attempt: reserved, then released. */
  const succeed = async (acct: string, ip: string) => {
    const reserved = await limiter.reserve(acct, ip);
    if (reserved.blocked) throw new Error(`unexpectedly blocked: ${acct} from ${ip}`);
    await reserved.release();
  };
  /** Whether an attempt would be let through now, leaving nothing counted. */
  const check = async (acct: string, ip: string) => {
    const reserved = await limiter.reserve(acct, ip);
    if (reserved.blocked) return reserved;
    await reserved.cancel();
    return { blocked: false as const };
  };
  return { store, limiter, clock, count, fail, succeed, check };
}

t.test("a success from one IP does not reset the counters another IP built up", async (t) => {
  const { count, fail, succeed, check } = setUp(t);
  await fail(account, ipA);
  await fail(account, ipB);
  await fail(account, ipB);
  t.equal(await count(`acctip:${account}|${ipA}`), 1);
  t.equal(await count(`acctip:${account}|${ipB}`), 2);
  t.equal(await count(`acct:${account}`), 3);

  await succeed(account, ipA);

  t.equal(await count(`acctip:${account}|${ipA}`), 0, "A's account+IP counter is reset");
  t.equal(await count(`acctip:${account}|${ipB}`), 2, "B's account+IP counter is unchanged");
  t.equal(await count(`acct:${account}`), 3, "the account counter is unchanged");
  t.equal(await count(`ip:${ipB}`), 2, "B's IP counter is unchanged");
  t.equal(await count(`ip:${ipA}`), 1, "A's IP counter is unchanged too (many users may share one address)");

  // Behaviourally: B's next failures still count from where they were.
  const third = await fail(account, ipB);
  t.equal(third.failures, 4, "B's next failure is the account's fourth");
  await fail(account, ipB);
  t.same(await check(account, ipB), { blocked: true, retryAfterSeconds: 900 }, "and B reaches the account limit as if A had never signed in");
  t.equal((await check(account, ipA)).blocked, true, "the account limit holds from A too: it is per account");
});

t.test("failures are answered after growing delays, capped at 5 s", async (t) => {
  const { fail } = setUp(t, { maxFailures: 20 });
  const delays: number[] = [];
  for (let i = 0; i < 10; i++) delays.push((await fail(account, ipA)).delayMs);
  t.same(delays.slice(0, 6), [0, 250, 500, 1000, 2000, 4000], "no delay for the first failure, then 250 ms doubling");
  for (let i = 2; i < delays.length; i++) t.ok(delays[i]! >= delays[i - 1]!, `failure ${i + 1} waits at least as long as failure ${i}`);
  t.equal(Math.max(...delays), 5000, "never more than 5 s");
});

t.test("the delay follows the worse of the account and account+IP counters", async (t) => {
  const { fail } = setUp(t);
  await fail(account, ipA);
  await fail(account, ipA);
  const fromB = await fail(account, ipB);
  t.equal(fromB.failures, 3, "a new IP does not start the account from zero");
  t.equal(fromB.delayMs, 500);
});

t.test("at the limit the account is blocked until the window passes", async (t) => {
  const { fail, check, clock } = setUp(t);
  for (let i = 1; i <= 4; i++) {
    await fail(account, ipA);
    t.same(await check(account, ipA), { blocked: false }, `not blocked after ${i} failures`);
  }
  const fifth = await fail(account, ipA);
  t.equal(fifth.failures, limits.maxFailures);
  const blocked = await check(account, ipA);
  t.equal(blocked.blocked, true, "blocked after the fifth");
  t.equal(blocked.blocked && blocked.retryAfterSeconds, 900, "for the rest of the window");
  t.equal((await check("someone.else@example.test", ipA)).blocked, false, "another account from the same IP is not blocked");

  clock.advance(limits.windowMs - 1000);
  t.equal((await check(account, ipA)).blocked, true, "still blocked just before the window ends");
  clock.advance(1000);
  t.same(await check(account, ipA), { blocked: false }, "free again once the window has passed");
  t.equal((await fail(account, ipA)).failures, 1, "and the next failure starts a new window");
});

t.test("one IP failing across many accounts hits the per-IP limit", async (t) => {
  const { fail, check } = setUp(t, { maxFailuresPerIp: 10 });
  for (let i = 0; i < 10; i++) await fail(`user${i}@example.test`, ipA);
  t.equal((await check("fresh@example.test", ipA)).blocked, true, "a fresh account from that IP is blocked");
  t.equal((await check("fresh@example.test", ipB)).blocked, false, "from another IP it is not");
});

t.test("parallel reservations: exactly the limit is let through, however many arrive at once", async (t) => {
  const { limiter, count } = setUp(t);
  const results = await Promise.all(Array.from({ length: 20 }, () => limiter.reserve(account, ipA)));
  t.equal(results.filter((r) => !r.blocked).length, limits.maxFailures, `${limits.maxFailures} reserved`);
  t.ok(results.filter((r) => r.blocked).every((r) => r.blocked && r.retryAfterSeconds > 0), "the rest blocked, with Retry-After");
  t.same(
    results.flatMap((r) => (r.blocked ? [] : [r.failures])).sort(),
    [1, 2, 3, 4, 5],
    "each reservation knows its place among the failures (for its delay)",
  );
  t.equal(await count(`acct:${account}`), limits.maxFailures, "refused attempts leave nothing counted on the account");
  t.equal(await count(`ip:${ipA}`), limits.maxFailures, "nor on the address");
});

t.test("a success gives its unit back: successes never use up the failure budget", async (t) => {
  const { succeed, fail, count } = setUp(t);
  for (let i = 0; i < 10; i++) await succeed(account, ipA);
  t.equal(await count(`acct:${account}`), 0, "ten successes leave the account at zero");
  t.equal(await count(`ip:${ipA}`), 0, "and the address");
  await fail(account, ipA);
  t.equal(await count(`acct:${account}`), 1, "a failure after them is the first");
});

t.test("a cancelled reservation (never evaluated) is given back on every counter", async (t) => {
  const { limiter, fail, count } = setUp(t);
  await fail(account, ipA);
  const reserved = await limiter.reserve(account, ipA);
  t.equal(reserved.blocked, false);
  if (reserved.blocked) return;
  await reserved.cancel();
  t.equal(await count(`acct:${account}`), 1, "the account counter is back to the one failure");
  t.equal(await count(`acctip:${account}|${ipA}`), 1, "the account+IP counter too (cancel does not clear it)");
  t.equal(await count(`ip:${ipA}`), 1, "and the address counter");
  await t.rejects(reserved.release(), /already released or cancelled/, "a reservation is settled once");
});

t.test("the fifth failure is the one that reaches the limit", async (t) => {
  const { fail } = setUp(t);
  const flags: boolean[] = [];
  for (let i = 0; i < limits.maxFailures; i++) flags.push((await fail(account, ipA)).reachesLimit);
  t.same(flags, [false, false, false, false, true]);
  t.equal((await fail(undefined, ipB)).reachesLimit, false, "an attempt without an account never locks one");
});

t.test("extend: an attempt that names its account only after it started (a passkey)", async (t) => {
  const { limiter, fail, count } = setUp(t);
  const byIp = await limiter.reserve(undefined, ipA);
  t.equal(byIp.blocked, false);
  if (byIp.blocked) return;
  t.equal(await count(`acct:${account}`), 0, "before: only the address counts");
  t.equal(await count(`ip:${ipA}`), 1);
  const extended = await byIp.extend(account);
  t.equal(extended.blocked, false);
  if (extended.blocked) return;
  t.equal(await count(`acct:${account}`), 1, "extended: the account counts too");
  await extended.release();
  t.equal(await count(`acct:${account}`), 0, "released: every unit given back");
  t.equal(await count(`ip:${ipA}`), 0);

  for (let i = 0; i < limits.maxFailures; i++) await fail(account, ipB);
  const second = await limiter.reserve(undefined, ipA);
  if (second.blocked) return t.fail("the address is not over its limit");
  const refused = await second.extend(account);
  t.match(refused, { blocked: true }, "a locked account refuses the extension");
  t.equal(await count(`acct:${account}`), limits.maxFailures, "and the account counter is unchanged");
  await second.cancel();
  t.equal(await count(`ip:${ipA}`), 0, "cancelling gives the address's unit back");
});
