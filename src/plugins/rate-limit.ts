/**
 * Shared pieces of the per-request rate limits (@fastify/rate-limit): the key
 * for a client address, the size of the in-memory store, and the 429 error.
 * Counters are shared through Redis when REDIS_URL is set (see plugins/oidc.ts).
 */
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import rateLimit, { normalizeIP } from "@fastify/rate-limit";
import type { Redis } from "ioredis";
import { AppError } from "../errors.ts";

/**
 * The rate-limit key of a client address: an IPv4 address as is, an
 * IPv4-mapped IPv6 address as its IPv4 address, and an IPv6 address as its
 * /64 network. One subscriber is usually given a whole /64 (RFC 6177), so
 * counting single IPv6 addresses would hand an attacker 2^64 budgets. Pass
 * Fastify's request.ip, which applies TRUST_PROXY.
 */
export function ipRateLimitKey(ip: string): string {
  const key = normalizeIP(ip, 64);
  return key.includes(":") ? `${key}/64` : key;
}

/**
 * Entries of each in-memory limiter (an LRU: the least recently seen
 * addresses are forgotten first), so that a flood of addresses cannot grow
 * the process without bound. @fastify/rate-limit's default is 5000.
 */
export const rateLimitCacheSize = 10_000;

/** The error a limiter throws: a JSON 429 through the error handler; Retry-After is already set. */
export function tooManyRequests(_request: unknown, context: { after: string }): AppError {
  return new AppError("too_many_requests", `Too many requests: try again in ${context.after}.`);
}

/**
 * @fastify/rate-limit, once for the whole app, per route only (global: false):
 * counters in Redis when REDIS_URL is set (README, "Several instances"), else
 * in each limiter's own in-memory LRU of `rateLimitCacheSize` entries.
 */
export const rateLimitPlugin = fp(
  async (app: FastifyInstance, { redis }: { redis: Redis | undefined }) => {
    await app.register(rateLimit, {
      global: false,
      errorResponseBuilder: tooManyRequests,
      ...(redis ? { redis, nameSpace: "gatehouse:request-rl:" } : {}),
    });
  },
  { name: "rate-limits" },
);

/** An onRequest hook allowing `max` requests a minute per client address (see ipRateLimitKey), counted under `name`. */
export function perAddressLimit(app: FastifyInstance, name: string, max: number) {
  return app.rateLimit({ max, timeWindow: 60_000, cache: rateLimitCacheSize, keyGenerator: (r) => `${name}:${ipRateLimitKey(r.ip)}` });
}
