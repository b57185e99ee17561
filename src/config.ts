/**
 * The only reader of process.env. Every variable (listed in .env.example) is
 * parsed and validated here once, at start-up; anything invalid throws a ConfigError whose
 * message is one line naming the variable, and the process entry prints it and exits.
 */

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export interface Config {
  readonly nodeEnv: string;
  readonly production: boolean;
  readonly port: number;
  readonly host: string;
  /** Issuer URL without a trailing slash. */
  readonly issuer: string;
  readonly databaseUrl: string;
  readonly databaseProvider: "sqlite" | "postgresql";
  readonly keysDir: string;
  /** Newest first; undefined outside production means "derive from the master key". */
  readonly cookieSecrets: readonly string[] | undefined;
  /** Raw 32-byte master keys, newest first; undefined means "use the development key file". */
  readonly masterKeys: readonly Buffer[] | undefined;
  readonly redisUrl: string | undefined;
  /**
   * false; true: exactly one proxy in front, the immediate peer (the client
   * address is the right-most X-Forwarded-For entry); or the proxies'
   * addresses and CIDRs, skipped right to left. Applied in app.ts.
   */
  readonly trustProxy: boolean | string;
  readonly logLevel: LogLevel;
  /** Lifetimes in seconds. */
  readonly accessTokenTtl: number;
  readonly refreshTokenTtl: number;
  readonly idTokenTtl: number;
  readonly sessionTtl: number;
  readonly refreshReuseGrace: number;
  readonly argon2: { readonly memoryCost: number; readonly timeCost: number; readonly parallelism: number };
  /** Seconds a new signing key is published before it signs. */
  readonly keyPublishAhead: number;
  /** Seconds between automatic rotations; undefined when `off`. */
  readonly keyRotationInterval: number | undefined;
  /** Seconds between an instance's checks of the key set (and runs of the key lifecycle). */
  readonly keysPollInterval: number;
  /** Seconds since the last sign-in within which sensitive account changes are allowed without signing in again. */
  readonly reauthMaxAge: number;
  /** Two-step verification: `optional` (users may turn it on) or `required` (every sign-in needs a second factor). */
  readonly mfa: "optional" | "required";
  /** Seconds between sweeps of expired rows. */
  readonly sweepInterval: number;
  /** PostgreSQL connections per instance (DATABASE_POOL_SIZE). */
  readonly databasePoolSize: number;
  /** Failed sign-ins allowed per account (and per account+IP) in a window. */
  readonly signInMaxFailures: number;
  /** Failed sign-ins allowed per IP in a window. */
  readonly signInMaxFailuresPerIp: number;
  /** Seconds of the sign-in failure window. */
  readonly signInWindow: number;
  /** Requests per minute per IP (IPv6 per /64) to the authorization endpoint and, counted apart, to PAR. */
  readonly authRateLimitPerIp: number;
  /** Requests per minute per IP, and per client, on the token, introspection and revocation endpoints. */
  readonly tokenRateLimitPerIp: number;
  readonly tokenRateLimitPerClient: number;
  /**
   * Whether oidc-provider's outgoing requests (back-channel logout, clients'
   * jwks_uri) may reach loopback and private addresses. Off: SSRF protection.
   */
  readonly outboundAllowPrivate: boolean;
  /**
   * Who may get an account (REGISTRATION): `invite` (operators invite people
   * by email), `open` (also a public sign-up page), `off` (operators create
   * accounts directly; no invitations).
   */
  readonly registration: Registration;
  /**
   * Requests per minute per IP (IPv6 per /64) to the anonymous forms that send
   * email (forgotten password, registration); each address also gets at most
   * a few emails an hour (auth/email-send-limiter.ts).
   */
  readonly emailRateLimitPerIp: number;
  /** The name people know this Gatehouse by (ISSUER_NAME): in emails' subjects, greetings and sender. */
  readonly issuerName: string;
  /** Email delivery (SMTP_URL, EMAIL_FROM), derived once here; see docs/email.md. */
  readonly email: EmailConfig;
}

/**
 * How email leaves Gatehouse. `smtp`: through SMTP_URL. `files`: no SMTP_URL
 * outside production, so every message is written as an .eml file into
 * `outboxDir` and its links are logged (a fresh clone can try every flow).
 * `off`: production without SMTP_URL; the email features are unavailable.
 */
export interface EmailConfig {
  readonly mode: "smtp" | "files" | "off";
  /** smtp:// or smtps:// URL; may carry credentials, so never log it. */
  readonly smtpUrl?: string;
  /** The From header, e.g. `Gatehouse <no-reply@id.example.com>`. */
  readonly from: string;
  /** Where files mode writes its .eml files (EMAIL_OUTBOX_DIR, default ./data/outbox). */
  readonly outboxDir: string;
  /** Seconds between polls of the outbox (EMAIL_POLL_INTERVAL); queueing also wakes the worker at once. */
  readonly pollInterval: number;
  /** Seconds before the first retry of a failed send, doubled each time up to an hour (EMAIL_RETRY_BASE). */
  readonly retryBase: number;
}

export type Registration = "invite" | "open" | "off";

export class ConfigError extends Error {
  readonly code = "invalid_configuration";
  constructor(
    readonly variable: string,
    detail: string,
  ) {
    super(`invalid configuration: ${variable} ${detail}`);
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | undefined>;

/** Parses and validates the environment (documented in .env.example). Throws ConfigError. */
export function loadConfig(env: Env = process.env): Config {
  const read = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === "" ? undefined : value.trim();
  };

  const nodeEnv = read("NODE_ENV") ?? "development";
  const production = nodeEnv === "production";
  const port = parseInteger("PORT", read("PORT"), 3000, 1, 65535);
  const host = read("HOST") ?? "127.0.0.1";
  const issuer = parseIssuer(read("ISSUER") ?? `http://localhost:${port}`);
  const { databaseUrl, databaseProvider } = parseDatabaseUrl(read("DATABASE_URL"));
  const cookieSecrets = parseCookieSecrets(read("COOKIE_SECRETS"));
  const masterKeys = parseMasterKeys(read("MASTER_KEYS"));

  if (production) {
    if (!cookieSecrets) throw new ConfigError("COOKIE_SECRETS", "is required when NODE_ENV=production");
    if (!masterKeys) throw new ConfigError("MASTER_KEYS", "is required when NODE_ENV=production");
    const url = new URL(issuer);
    if (url.protocol !== "https:" && !isLocalhost(url.hostname)) {
      throw new ConfigError("ISSUER", "must be an https: URL when NODE_ENV=production (http: is allowed on localhost only)");
    }
  }

  const trustProxy = parseTrustProxy(read("TRUST_PROXY"));
  if (issuer.startsWith("https:") && trustProxy === false) {
    // Gatehouse serves plain HTTP: an https issuer means a TLS proxy in front,
    // whose X-Forwarded-Proto must be trusted for cookies to be Secure.
    throw new ConfigError("TRUST_PROXY", "must be set when ISSUER is https: Gatehouse serves HTTP behind a TLS-terminating proxy");
  }
  const rotation = read("KEY_ROTATION_INTERVAL");
  const issuerName = parseIssuerName(read("ISSUER_NAME"));
  const email = parseEmail(read, { production, issuer, issuerName });
  return Object.freeze({
    nodeEnv,
    production,
    port,
    host,
    issuer,
    databaseUrl,
    databaseProvider,
    databasePoolSize: parseInteger("DATABASE_POOL_SIZE", read("DATABASE_POOL_SIZE"), 10, 1, 1000),
    keysDir: read("KEYS_DIR") ?? "./keys",
    cookieSecrets,
    masterKeys,
    redisUrl: parseRedisUrl(read("REDIS_URL")),
    trustProxy,
    logLevel: parseLogLevel(read("LOG_LEVEL")),
    accessTokenTtl: parseDuration("ACCESS_TOKEN_TTL", read("ACCESS_TOKEN_TTL"), "15m", 1),
    refreshTokenTtl: parseDuration("REFRESH_TOKEN_TTL", read("REFRESH_TOKEN_TTL"), "7d", 1),
    idTokenTtl: parseDuration("ID_TOKEN_TTL", read("ID_TOKEN_TTL"), "15m", 1),
    sessionTtl: parseDuration("SESSION_TTL", read("SESSION_TTL"), "14d", 1),
    refreshReuseGrace: parseDuration("REFRESH_REUSE_GRACE", read("REFRESH_REUSE_GRACE"), "0s", 0, 60),
    argon2: Object.freeze({
      // OWASP's minimum for argon2id: m=19 MiB, t=2, p=1. Lower values are refused.
      memoryCost: parseInteger("ARGON2_MEMORY_KIB", read("ARGON2_MEMORY_KIB"), 19456, 19456, 4 * 1024 * 1024),
      timeCost: parseInteger("ARGON2_ITERATIONS", read("ARGON2_ITERATIONS"), 2, 2, 100),
      parallelism: parseInteger("ARGON2_PARALLELISM", read("ARGON2_PARALLELISM"), 1, 1, 16),
    }),
    keyPublishAhead: parseDuration("KEY_PUBLISH_AHEAD", read("KEY_PUBLISH_AHEAD"), "24h", 0),
    keyRotationInterval:
      rotation === "off" ? undefined : parseDuration("KEY_ROTATION_INTERVAL", rotation, "90d", 3600),
    // At most 10 s: every instance serves a changed key set within 10 seconds.
    keysPollInterval: parseDuration("KEYS_POLL_INTERVAL", read("KEYS_POLL_INTERVAL"), "5s", 1, 10),
    reauthMaxAge: parseDuration("REAUTH_MAX_AGE", read("REAUTH_MAX_AGE"), "10m", 1, 86400),
    mfa: parseMfa(read("MFA")),
    sweepInterval: parseDuration("SWEEP_INTERVAL", read("SWEEP_INTERVAL"), "10m", 1),
    signInMaxFailures: parseInteger("SIGNIN_MAX_FAILURES", read("SIGNIN_MAX_FAILURES"), 5, 1, 1000),
    signInMaxFailuresPerIp: parseInteger("SIGNIN_MAX_FAILURES_PER_IP", read("SIGNIN_MAX_FAILURES_PER_IP"), 50, 1, 100000),
    signInWindow: parseDuration("SIGNIN_WINDOW", read("SIGNIN_WINDOW"), "15m", 1),
    authRateLimitPerIp: parseInteger("AUTH_RATE_LIMIT_PER_IP", read("AUTH_RATE_LIMIT_PER_IP"), 300, 1, 10_000_000),
    tokenRateLimitPerIp: parseInteger("TOKEN_RATE_LIMIT_PER_IP", read("TOKEN_RATE_LIMIT_PER_IP"), 600, 1, 10_000_000),
    tokenRateLimitPerClient: parseInteger("TOKEN_RATE_LIMIT_PER_CLIENT", read("TOKEN_RATE_LIMIT_PER_CLIENT"), 1200, 1, 10_000_000),
    outboundAllowPrivate: parseBoolean("OUTBOUND_ALLOW_PRIVATE", read("OUTBOUND_ALLOW_PRIVATE"), false),
    registration: parseRegistration(read("REGISTRATION")),
    emailRateLimitPerIp: parseInteger("EMAIL_RATE_LIMIT_PER_IP", read("EMAIL_RATE_LIMIT_PER_IP"), 10, 1, 10_000_000),
    issuerName,
    email,
  });
}

function parseIssuerName(raw: string | undefined): string {
  if (raw === undefined) return "Gatehouse";
  // It goes into email headers and bodies: printable text only.
  if (raw.length > 100 || /[\u0000-\u001f\u007f<>"]/.test(raw)) {
    throw new ConfigError("ISSUER_NAME", "must be at most 100 characters, without control characters, <, > or \"");
  }
  return raw;
}

// An addr-spec without quoting or comments (RFC 5322 section 3.4.1, the common subset).
const addressPattern = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;

/**
 * EMAIL_FROM: `address` or `Display Name <address>`. The display name may
 * not contain characters that would need quoting, so the header is written
 * as given.
 */
function parseEmailFrom(raw: string): string {
  const match = /^(?:([^<>"\u0000-\u001f\u007f,;:@]{1,100}?)\s*<([^<>\s]+)>|([^<>\s]+))$/.exec(raw);
  const address = match?.[2] ?? match?.[3];
  if (!address || address.length > 254 || !addressPattern.test(address)) {
    throw new ConfigError("EMAIL_FROM", `must be an email address or "Name <address>" (got ${JSON.stringify(raw)})`);
  }
  return match![1] ? `${match![1].trim()} <${address}>` : address;
}

function parseSmtpUrl(raw: string): string {
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    // reported below
  }
  // The URL may carry a password: never echo it.
  if (!url || (url.protocol !== "smtp:" && url.protocol !== "smtps:") || !url.hostname) {
    throw new ConfigError("SMTP_URL", "must be an smtp://user:password@host:port or smtps://... URL");
  }
  return raw;
}

function parseEmail(read: (name: string) => string | undefined, { production, issuer, issuerName }: { production: boolean; issuer: string; issuerName: string }): EmailConfig {
  const rawSmtp = read("SMTP_URL");
  const smtpUrl = rawSmtp === undefined ? undefined : parseSmtpUrl(rawSmtp);
  const rawFrom = read("EMAIL_FROM");
  const host = new URL(issuer).hostname.replace(/^\[|\]$/g, "");
  // An IP address is not a domain: the default sender then uses localhost's name.
  const domain = /^[0-9.]+$/.test(host) || host.includes(":") ? "localhost" : host;
  // A display name with RFC 5322 specials (a comma, say) must be quoted (section 3.2.3); ISSUER_NAME has no '"'.
  const displayName = /[(),.:;@[\]\\]/.test(issuerName) ? `"${issuerName}"` : issuerName;
  const from = rawFrom === undefined ? `${displayName} <no-reply@${domain}>` : parseEmailFrom(rawFrom);
  return Object.freeze({
    mode: smtpUrl ? "smtp" : production ? "off" : "files",
    ...(smtpUrl && { smtpUrl }),
    from,
    outboxDir: read("EMAIL_OUTBOX_DIR") ?? "./data/outbox",
    pollInterval: parseDuration("EMAIL_POLL_INTERVAL", read("EMAIL_POLL_INTERVAL"), "2s", 1, 3600),
    retryBase: parseDuration("EMAIL_RETRY_BASE", read("EMAIL_RETRY_BASE"), "10s", 1, 3600),
  } satisfies EmailConfig);
}

function parseMfa(raw: string | undefined): Config["mfa"] {
  if (raw === undefined || raw === "" || raw === "optional") return "optional";
  if (raw === "required") return "required";
  throw new ConfigError("MFA", `must be optional or required (got ${JSON.stringify(raw.slice(0, 40))})`);
}

function parseBoolean(name: string, raw: string | undefined, fallback: boolean): boolean {
  if (raw === undefined) return fallback;
  if (raw === "true" || raw === "false") return raw === "true";
  throw new ConfigError(name, `must be true or false (got ${JSON.stringify(raw)})`);
}

function parseInteger(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new ConfigError(name, `must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`);
  }
  return Number(raw);
}

const durationUnits: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Parses "900", "900s", "15m", "24h", "7d" into seconds. */
export function parseDuration(
  name: string,
  raw: string | undefined,
  fallback: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const text = raw ?? fallback;
  const match = /^(\d+)([smhd]?)$/.exec(text);
  const seconds = match ? Number(match[1]) * durationUnits[match[2] || "s"]! : NaN;
  if (!Number.isSafeInteger(seconds) || seconds < min || seconds > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}s` : `from ${min}s to ${max}s`;
    throw new ConfigError(name, `must be a duration such as 30s, 15m, 24h or 7d, ${range} (got ${JSON.stringify(text)})`);
  }
  return seconds;
}

function isLocalhost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "127.0.0.1" || hostname === "[::1]";
}

function parseIssuer(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError("ISSUER", `must be an absolute http(s) URL (got ${JSON.stringify(raw)})`);
  }
  if ((url.protocol !== "https:" && url.protocol !== "http:") || url.search || url.hash || url.username) {
    throw new ConfigError("ISSUER", `must be an http(s) URL without query, fragment or credentials (got ${JSON.stringify(raw)})`);
  }
  return url.href.replace(/\/$/, "");
}

function parseDatabaseUrl(raw: string | undefined): Pick<Config, "databaseUrl" | "databaseProvider"> {
  if (raw === undefined) return { databaseUrl: "file:./data/gatehouse.db", databaseProvider: "sqlite" };
  if (raw.startsWith("file:") && raw.length > "file:".length) return { databaseUrl: raw, databaseProvider: "sqlite" };
  if (/^postgres(ql)?:\/\//.test(raw)) {
    try {
      const url = new URL(raw);
      if (url.hostname && url.pathname.length > 1) return { databaseUrl: raw, databaseProvider: "postgresql" };
    } catch {
      // fall through to the error below
    }
    // The URL may carry a password: never echo it.
    throw new ConfigError("DATABASE_URL", "is not a valid postgresql://user:password@host:port/database URL");
  }
  throw new ConfigError("DATABASE_URL", "must be a file: (SQLite) or postgresql:// URL");
}

function parseCookieSecrets(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const secrets = raw.split(",").map((s) => s.trim());
  if (secrets.some((s) => s.length < 32)) {
    throw new ConfigError("COOKIE_SECRETS", "must be a comma-separated list of secrets of at least 32 characters each");
  }
  return secrets;
}

function parseMasterKeys(raw: string | undefined): Buffer[] | undefined {
  if (raw === undefined) return undefined;
  return raw.split(",").map((item) => {
    const text = item.trim();
    const key = Buffer.from(text, "base64");
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text) || key.length !== 32) {
      throw new ConfigError("MASTER_KEYS", "must be a comma-separated list of base64-encoded 32-byte keys (openssl rand -base64 32)");
    }
    return key;
  });
}

function parseRedisUrl(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (!/^rediss?:\/\/\S+$/.test(raw)) throw new ConfigError("REDIS_URL", "must be a redis:// or rediss:// URL");
  return raw;
}

/**
 * true, false, or the proxies' addresses: a comma-separated list of addresses,
 * CIDRs or proxy-addr's names (loopback, linklocal, uniquelocal). Hop counts are
 * refused: Fastify cannot check the immediate peer with one, so it trusts nothing.
 */
function parseTrustProxy(raw: string | undefined): boolean | string {
  if (raw === undefined || raw === "false") return false;
  if (raw === "true") return true;
  const items = raw.split(",").map((s) => s.trim());
  const ok = items.every((item) => ["loopback", "linklocal", "uniquelocal"].includes(item) || /^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(item));
  if (!/^\d+$/.test(raw) && ok) return items.join(",");
  throw new ConfigError(
    "TRUST_PROXY",
    `must be true, false, or the proxies' addresses (e.g. loopback or 10.0.0.0/8,192.168.1.5) (got ${JSON.stringify(raw)})`,
  );
}

const registrations: readonly Registration[] = ["invite", "open", "off"];

function parseRegistration(raw: string | undefined): Registration {
  if (raw === undefined) return "invite";
  if (!(registrations as readonly string[]).includes(raw)) {
    throw new ConfigError("REGISTRATION", `must be one of ${registrations.join(", ")} (got ${JSON.stringify(raw)})`);
  }
  return raw as Registration;
}

const logLevels: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

function parseLogLevel(raw: string | undefined): LogLevel {
  if (raw === undefined) return "info";
  if (!(logLevels as readonly string[]).includes(raw)) {
    throw new ConfigError("LOG_LEVEL", `must be one of ${logLevels.join(", ")} (got ${JSON.stringify(raw)})`);
  }
  return raw as LogLevel;
}
