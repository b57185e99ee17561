/**
 * The cap on argon2 work (src/auth/semaphore.ts, src/auth/passwords.ts): at
 * most maxConcurrent tasks run, at most maxQueue wait, and a task beyond that
 * is refused at once with SemaphoreFullError instead of queueing without
 * bound (OWASP Denial of Service Cheat Sheet).
 */
import t from "tap";
import { availableParallelism } from "node:os";
import { createSemaphore, SemaphoreFullError } from "../../src/auth/semaphore.ts";
import { argon2Semaphore, hashPassword, verifyPassword } from "../../src/auth/passwords.ts";

const argon2 = { memoryCost: 19456, timeCost: 2, parallelism: 1 };

t.test("at most maxConcurrent run, at most maxQueue wait, the rest are refused at once", async (t) => {
  const semaphore = createSemaphore({ maxConcurrent: 2, maxQueue: 3 });
  let running = 0;
  let most = 0;
  const gates: (() => void)[] = [];
  const task = () =>
    new Promise<string>((resolve) => {
      running += 1;
      most = Math.max(most, running);
      gates.push(() => {
        running -= 1;
        resolve("done");
      });
    });
  const results = Array.from({ length: 10 }, () => semaphore.run(task).then((v) => v, (e: unknown) => e));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(semaphore.active, 2, "two run");
  t.equal(semaphore.queued, 3, "three wait");
  t.equal(running, 2, "and only two tasks were started");
  const settled = await Promise.all(results.slice(5));
  t.ok(settled.every((e) => e instanceof SemaphoreFullError), "the other five were refused without waiting for any task");
  while (gates.length > 0) {
    gates.shift()!();
    await new Promise((resolve) => setImmediate(resolve));
  }
  t.same(await Promise.all(results.slice(0, 5)), Array(5).fill("done"), "the five admitted all ran");
  t.equal(most, 2, "never more than two at once");
  t.equal(semaphore.active, 0);
  t.equal(semaphore.queued, 0);
});

t.test("a task that throws frees its slot", async (t) => {
  const semaphore = createSemaphore({ maxConcurrent: 1, maxQueue: 0 });
  await t.rejects(semaphore.run(async () => Promise.reject(new Error("boom"))), /boom/);
  t.equal(await semaphore.run(async () => 7), 7, "the next task runs");
});

t.test("argon2 hashing and verification go through one capped semaphore", async (t) => {
  const cpus = availableParallelism();
  t.same(argon2Semaphore.limits, { maxConcurrent: cpus, maxQueue: 32 * cpus }, `one hash per CPU (${cpus}), 32 queued per CPU`);
  const hash = await hashPassword("correct horse battery staple", argon2);
  const total = argon2Semaphore.limits.maxConcurrent + argon2Semaphore.limits.maxQueue + 10;
  let most = 0;
  const started = performance.now();
  const attempts = Array.from({ length: total }, () =>
    verifyPassword(hash, "wrong password").then(
      (valid) => ({ valid, ms: performance.now() - started }),
      (error: unknown) => ({ error, ms: performance.now() - started }),
    ),
  );
  const sampler = setInterval(() => (most = Math.max(most, argon2Semaphore.active)), 1);
  const results = await Promise.all(attempts);
  clearInterval(sampler);
  const refused = results.filter((r) => "error" in r);
  t.equal(refused.length, 10, `the ${total - 10} that fit ran, the last 10 were refused`);
  t.ok(refused.every((r) => "error" in r && r.error instanceof SemaphoreFullError), "with SemaphoreFullError");
  const slowestRefusal = Math.max(...refused.map((r) => r.ms));
  const fastestVerification = Math.min(...results.filter((r) => !("error" in r)).map((r) => r.ms));
  t.ok(slowestRefusal < fastestVerification, `refusals came before any verification finished (${Math.round(slowestRefusal)} ms < ${Math.round(fastestVerification)} ms)`);
  t.ok(most <= cpus, `never more than ${cpus} argon2 verifications at once (saw ${most})`);
  t.ok(results.filter((r) => !("error" in r)).every((r) => "valid" in r && r.valid === false), "the admitted ones were evaluated");
});
