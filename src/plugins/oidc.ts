/**
 * Mounts oidc-provider at the issuer's root through a route-level catch-all:
 * our own routes (/healthz, /interaction, /admin, ...) win by Fastify's
 * routing, and everything else is handed to the provider (mounting it as
 * middleware at "/" would swallow every route, oidc-provider issue #728).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import type { AppContext } from "../context.ts";
import { ipRateLimitKey, perAddressLimit, rateLimitCacheSize, tooManyRequests } from "./rate-limit.ts";
import { userCodeAcceptedOf } from "../oidc/device-flow.ts";
import { AppError } from "../errors.ts";
import { authenticatedClientOf } from "../oidc/provider.ts";
import { jwksMaxAge } from "../oidc/keys.ts";

/**
 * Pins the headers that oidc-provider (koa, with its `proxy` flag on) and our
 * own routes derive URLs and the client's address from, on every request,
 * before any route sees it: Host, X-Forwarded-Host and X-Forwarded-Proto come
 * from ISSUER, never from the request, and X-Forwarded-For is Fastify's
 * conclusion (request.ip, which applies TRUST_PROXY). So a client's
 * `Host: evil.example` cannot move discovery's endpoints, redirects or page
 * links off the issuer (oidc-provider docs, "Trusting TLS offloading
 * proxies"; RFC 9110 section 7.2 leaves the Host header to the client).
 * Registered at the root (app.ts) because the interaction and account routes
 * hand the raw request to oidc-provider too. app.inject() requests included.
 */
export const issuerHeadersPlugin = fp(
  async (app: FastifyInstance, { issuer }: { issuer: string }) => {
    const url = new URL(issuer);
    const host = url.host;
    const proto = url.protocol.slice(0, -1);
    app.addHook("onRequest", async (request) => {
      // Read before the rewrite: Fastify's view of X-Forwarded-For under TRUST_PROXY.
      const ip = request.ip;
      const headers = request.raw.headers;
      headers.host = host;
      headers["x-forwarded-host"] = host;
      headers["x-forwarded-proto"] = proto;
      if (ip) headers["x-forwarded-for"] = ip;
      else delete headers["x-forwarded-for"];
    });
  },
  { name: "issuer-headers" },
);

/**
 * Headers for the provider's responses, set before it writes them. Its HTML
 * pages (logout, errors) are ours and use no script; oidc-provider adds the
 * hash of its own inline form_post script to script-src itself. These routes
 * skip helmet (`helmet: false`): it would compute a CSP with fresh nonces for
 * every response, JSON included, and the provider's responses would not use
 * them; a fixed set of headers does the same work once.
 */
const providerHeaders: Record<string, string> = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'",
  // The rest of what helmet sets on our own routes (plugins/security.ts).
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "origin-agent-cluster": "?1",
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
  "x-dns-prefetch-control": "off",
  "x-download-options": "noopen",
  "x-frame-options": "DENY",
  "x-permitted-cross-domain-policies": "none",
  "x-xss-protection": "0",
};

/** HSTS on an https issuer, as helmet sets it on our own routes. */
const hsts = { "strict-transport-security": "max-age=31536000; includeSubDomains" };

/** A response of the provider's kept to be sent again: everything but per-request headers. */
interface KeptResponse {
  headers: [string, string | number | string[]][];
  body: Buffer;
}

/** Headers that belong to one response, never to a kept copy. */
const perResponseHeaders = new Set(["date", "connection", "keep-alive", "x-request-id", "access-control-allow-origin", "transfer-encoding"]);

/**
 * Discovery and the JWKS are the same bytes for every GET until the provider
 * is replaced (a key set change builds a new one, oidc/provider-host.ts):
 * the provider's first successful answer is kept per provider instance and
 * sent again as it is, with what varies per request set afresh: the request
 * id, and Access-Control-Allow-Origin, which oidc-provider's CORS handling
 * sets to the request's Origin or "*" (lib/shared/cors.js). Building the
 * document anew for each request was about half of a request's cost. Any
 * other method (a CORS preflight, a POST) goes to the provider.
 */
function keptDocuments(host: AppContext["host"], handle: (request: FastifyRequest, reply: FastifyReply) => void) {
  const kept = new WeakMap<object, Map<string, KeptResponse>>();
  return (request: FastifyRequest, reply: FastifyReply) => {
    const provider = host.provider;
    const path = request.routeOptions.url!;
    const copy = kept.get(provider)?.get(path);
    if (!copy) {
      // Let the provider answer, and keep its answer if it is a plain 200.
      const res = reply.raw;
      const end = res.end;
      res.end = function (this: typeof res, chunk?: unknown, ...rest: unknown[]) {
        if (res.statusCode === 200 && request.method === "GET" && (typeof chunk === "string" || Buffer.isBuffer(chunk))) {
          const headers = Object.entries(res.getHeaders())
            .filter(([name, value]) => value !== undefined && !perResponseHeaders.has(name))
            .map(([name, value]) => [name, value] as KeptResponse["headers"][number]);
          let byPath = kept.get(provider);
          if (!byPath) kept.set(provider, (byPath = new Map()));
          byPath.set(path, { headers, body: Buffer.from(chunk) });
        }
        return (end as (...a: unknown[]) => typeof res).call(this, chunk, ...rest);
      } as typeof res.end;
      handle(request, reply);
      return;
    }
    reply.hijack();
    const res = reply.raw;
    for (const [name, value] of copy.headers) res.setHeader(name, value);
    res.setHeader("x-request-id", request.id);
    res.setHeader("access-control-allow-origin", request.headers.origin || "*");
    res.writeHead(200);
    res.end(request.method === "HEAD" ? undefined : copy.body);
  };
}

/** The client_id that an HTTP Basic client authentication claims, if any: unauthenticated. */
function basicClientId(authorization: string | undefined): string | undefined {
  if (!authorization?.startsWith("Basic ")) return undefined;
  const decoded = Buffer.from(authorization.slice(6), "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  try {
    return colon > 0 ? decodeURIComponent(decoded.slice(0, colon)) : undefined;
  } catch {
    return undefined;
  }
}

export async function oidcPlugin(app: FastifyInstance, { host, config, userCodes }: AppContext): Promise<void> {
  // oidc-provider reads request bodies itself: leave the stream untouched.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_request, _payload, done) => done(null));

  const headers = Object.entries({ ...providerHeaders, ...(config.issuer.startsWith("https:") && hsts) });
  const handle = (request: FastifyRequest, reply: FastifyReply, onFinish?: () => void) => {
    reply.hijack();
    // The X-Forwarded-* headers the provider reads were pinned by
    // issuerHeadersPlugin (above) when the request arrived.
    const res = reply.raw;
    res.setHeader("x-request-id", request.id);
    for (const [name, value] of headers) res.setHeader(name, value);
    // Counted in the metrics by plugins/metrics.ts, like every other route.
    if (onFinish) res.on("finish", onFinish);
    host.callback(request.raw, res);
  };
  const documents = keptDocuments(host, handle);

  // Limits per minute (plugins/rate-limit.ts, registered by app.ts).
  const perIp = (name: string, max: number) => perAddressLimit(app, name, max);

  // Anonymous endpoints that write rows: each authorization request stores an
  // Interaction, each pushed authorization request (RFC 9126) a row of its own.
  app.route({ method: ["GET", "POST"], url: "/auth", helmet: false, onRequest: perIp("auth", config.authRateLimitPerIp), handler: handle });
  app.route({ method: "POST", url: "/request", helmet: false, onRequest: perIp("par", config.authRateLimitPerIp), handler: handle });

  // The device authorization grant (RFC 8628, oidc/device-flow.ts). Each
  // device authorization request stores a DeviceCode, and each visit to the
  // verification page a Session holding the form's secret: limited like
  // /auth. Every code submitted there is counted as wrong before
  // oidc-provider looks it up, and given back if it named a live device
  // code; past the limit the page answers 429 (RFC 8628 section 5.1).
  app.route({ method: "POST", url: "/device/auth", helmet: false, onRequest: perIp("device-auth", config.authRateLimitPerIp), handler: handle });
  const devicePagePerIp = perIp("device", config.authRateLimitPerIp);
  // helmet stays on for these two: their own 429 pages are HTML sent by
  // Fastify, not by the provider (whose answers get providerHeaders in handle).
  app.get("/device", { onRequest: devicePagePerIp }, handle);
  const reserveUserCode = async (request: FastifyRequest, reply: FastifyReply) => {
    const attempt = await userCodes.reserve(ipRateLimitKey(request.ip));
    if (attempt.blocked) {
      reply.header("retry-after", String(attempt.retryAfterSeconds));
      const minutes = Math.ceil(attempt.retryAfterSeconds / 60);
      throw new AppError("too_many_requests", `Too many wrong codes. Try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`);
    }
    return attempt;
  };
  app.post("/device", { onRequest: devicePagePerIp }, async (request, reply) => {
    const attempt = await reserveUserCode(request, reply);
    handle(request, reply, () => {
      if (!userCodeAcceptedOf(request.raw)) return;
      attempt.release().catch((err: unknown) => request.log.error({ err }, "could not release a user code attempt"));
    });
  });

  // Per-IP and per-client limits on the endpoints that authenticate clients
  // or answer about tokens. Every request counts against its address. Only a
  // request whose client authentication succeeded counts against the client
  // (after oidc-provider answered it: authenticatedClientOf), so naming a
  // client with a wrong secret cannot spend its budget. A client over budget
  // is refused up front when it names itself in HTTP Basic (the default
  // method); one authenticating in the body is named only once oidc-provider
  // has parsed it, so it is held to the per-IP limit alone.
  const tokenPerIp = perIp("token", config.tokenRateLimitPerIp);
  const clientBudget = app.createRateLimit({
    max: config.tokenRateLimitPerClient,
    timeWindow: 60_000,
    cache: rateLimitCacheSize,
    keyGenerator: (r) => `client:${authenticatedClientOf(r.raw) ?? basicClientId(r.headers.authorization)}`,
  } as Parameters<typeof app.createRateLimit>[0]);
  const checkClientBudget = async (request: FastifyRequest, reply: FastifyReply) => {
    if (!basicClientId(request.headers.authorization)) return;
    const budget = await clientBudget(request, { increment: false });
    if (budget.isAllowed || budget.remaining > 0) return;
    reply.header("retry-after", String(budget.ttlInSeconds));
    throw tooManyRequests(request, { after: `${budget.ttlInSeconds} seconds` });
  };
  const countAuthenticatedClient = (request: FastifyRequest) => {
    if (!authenticatedClientOf(request.raw)) return;
    clientBudget(request).catch((err: unknown) => request.log.error({ err }, "could not count a client's request"));
  };
  for (const url of ["/token", "/token/introspection", "/token/revocation"]) {
    app.route({
      method: "POST",
      url,
      helmet: false,
      onRequest: [tokenPerIp, checkClientBudget],
      handler: (request, reply) => handle(request, reply, () => countAuthenticatedClient(request)),
    });
  }

  // The JWKS may be cached, briefly: a new key is published KEY_PUBLISH_AHEAD
  // before it signs, and a cache that lives a tenth of that (at most 5
  // minutes) has it long before then. oidc-provider sets no Cache-Control on
  // its jwks response, so this header is the one that goes out.
  const jwksCacheControl = `public, max-age=${jwksMaxAge(config.keyPublishAhead)}`;
  app.get("/jwks", { helmet: false }, (request, reply) => {
    reply.raw.setHeader("cache-control", jwksCacheControl);
    documents(request, reply);
  });
  app.get("/.well-known/openid-configuration", { helmet: false }, documents);

  app.all("/*", { helmet: false }, handle);
}
