/**
 * The email templates (src/email/messages.ts) and the email configuration:
 * both parts from one source, values escaped in the HTML, links pinned to
 * the issuer.
 */
import t from "tap";
import { checkLink, escapeHtml, linksIn, renderEmail, type EmailMessage } from "../../src/email/messages.ts";
import { linkTo } from "../../src/email/outbox.ts";
import { loadConfig } from "../../src/config.ts";

const issuer = "https://id.example.com";
const ctx = { issuerName: "Example ID", issuer };

t.test("every message renders a subject, a text part and an HTML part with the issuer's name", async (t) => {
  const link = `${issuer}/email/verify/tok123`;
  const messages: EmailMessage[] = [
    { kind: "verify-email", link },
    { kind: "password-reset", link },
    { kind: "invitation", link },
    { kind: "password-changed" },
    { kind: "passkey-added", passkeyName: "YubiKey" },
    { kind: "passkey-removed", passkeyName: "YubiKey" },
    { kind: "mfa-enabled" },
    { kind: "mfa-disabled" },
    { kind: "recovery-code-used", left: 9 },
    { kind: "registration-attempt", link },
  ];
  const subjects = new Set<string>();
  for (const message of messages) {
    const r = renderEmail(message, { ...ctx, recipientName: "Ada" });
    t.match(r.subject, /Example ID/, `${message.kind}: subject names the issuer`);
    t.match(r.text, /^Hello Ada,\n/, `${message.kind}: text greets the recipient`);
    t.match(r.text, /Example ID\nhttps:\/\/id\.example\.com\n$/, `${message.kind}: text is signed with the issuer`);
    t.match(r.html, /<p[^>]*>Hello Ada,<\/p>/, `${message.kind}: html greets the recipient`);
    t.notMatch(r.subject, /[\r\n]/, `${message.kind}: one-line subject`);
    if ("link" in message) {
      t.ok(r.text.includes(`\n${link}\n`), `${message.kind}: the link on its own line in the text`);
      t.ok(r.html.includes(`href="${link}"`), `${message.kind}: the link in the HTML`);
    }
    if ("passkeyName" in message) {
      t.ok(r.text.includes('"YubiKey"') && r.html.includes("&quot;YubiKey&quot;"), `${message.kind}: names the passkey in both parts`);
    }
    subjects.add(r.subject);
  }
  t.equal(subjects.size, messages.length, "each kind has its own subject");
});

t.test("the text and HTML parts say the same paragraphs", async (t) => {
  const r = renderEmail({ kind: "password-changed" }, ctx);
  const htmlText = [...r.html.matchAll(/<p[^>]*>([^<]*)<\/p>/g)].map((m) => m[1]);
  t.ok(htmlText.length >= 3);
  for (const paragraph of htmlText.slice(0, 3)) t.ok(r.text.includes(paragraph!), `text has: ${paragraph}`);
  t.match(r.text, /^Hello,\n/, "no name: a plain greeting");
});

t.test("interpolated values are escaped in the HTML and flattened to one line in the text", async (t) => {
  const hostile = `<script>alert("x")</script>&'`;
  const r = renderEmail({ kind: "passkey-added", passkeyName: `${hostile}\nFake line` }, { ...ctx, issuerName: "Acme <b>", recipientName: `<img src=x onerror=alert(1)>` });
  t.notMatch(r.html, /<script>|<img|<b>/, "no markup from values");
  t.ok(r.html.includes("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"), "the passkey name escaped");
  t.ok(r.html.includes("Hello &lt;img src=x onerror=alert(1)&gt;,"), "the recipient's name escaped");
  t.ok(r.text.includes(`"${hostile} Fake line"`), "the text part shows the name as typed, on one line");
  t.equal(escapeHtml(`a&b<c>"d'`), "a&amp;b&lt;c&gt;&quot;d&#39;");
});

t.test("a link that is not on the issuer's origin is refused", async (t) => {
  for (const link of [
    "https://evil.example/email/verify/x",
    "http://id.example.com/email/verify/x",
    "https://id.example.com:444/x",
    "https://user:pw@id.example.com/x",
    "https://id.example.com.evil.example/x",
    "/email/verify/x",
    "javascript:alert(1)",
  ]) {
    t.throws(() => renderEmail({ kind: "password-reset", link }, ctx), /not an absolute URL|not on the issuer's origin/, link);
  }
  // An issuer with a path: links must stay under it.
  t.throws(() => checkLink("https://id.example.com/other/x", "https://id.example.com/auth"));
  t.equal(checkLink("https://id.example.com/auth/x", "https://id.example.com/auth"), "https://id.example.com/auth/x");
});

t.test("linkTo builds links on ISSUER only", async (t) => {
  const config = loadConfig({ ISSUER: "https://id.example.com/auth", TRUST_PROXY: "true" });
  t.equal(linkTo(config, "/password/reset/abc"), "https://id.example.com/auth/password/reset/abc");
  for (const bad of ["//evil.example/x", "password/reset", "/a b", "/\\evil.example"]) t.throws(() => linkTo(config, bad), bad);
});

t.test("linksIn lists the links of a text part, not the issuer's own address", async (t) => {
  const r = renderEmail({ kind: "invitation", link: `${issuer}/invitation/tok` }, ctx);
  t.same(linksIn(r.text, issuer), [`${issuer}/invitation/tok`]);
});

t.test("email configuration", async (t) => {
  const dev = loadConfig({});
  t.same(dev.email.mode, "files");
  t.equal(dev.email.outboxDir, "./data/outbox");
  t.equal(dev.email.from, "Gatehouse <no-reply@localhost>");
  t.equal(dev.issuerName, "Gatehouse");
  t.notOk(dev.email.smtpUrl);

  const smtp = loadConfig({ SMTP_URL: "smtps://u:p@mail.example.com:465", EMAIL_FROM: "Example ID <id@example.com>", ISSUER: "http://id.example.com" });
  t.equal(smtp.email.mode, "smtp");
  t.equal(smtp.email.smtpUrl, "smtps://u:p@mail.example.com:465");
  t.equal(smtp.email.from, "Example ID <id@example.com>");
  t.equal(loadConfig({ ISSUER: "http://id.example.com:8080", ISSUER_NAME: "Acme" }).email.from, "Acme <no-reply@id.example.com>");
  t.equal(loadConfig({ EMAIL_FROM: "bare@example.com" }).email.from, "bare@example.com");
  t.equal(loadConfig({ ISSUER_NAME: "Acme, Inc." }).email.from, '"Acme, Inc." <no-reply@localhost>', "a name with specials is quoted");

  const production = loadConfig({ NODE_ENV: "production", COOKIE_SECRETS: "c".repeat(32), MASTER_KEYS: Buffer.alloc(32, 7).toString("base64") });
  t.equal(production.email.mode, "off");

  t.throws(() => loadConfig({ SMTP_URL: "http://mail.example.com" }), { message: /^invalid configuration: SMTP_URL / });
  const secret = "s3cr3t-password";
  const error = (() => {
    try {
      loadConfig({ SMTP_URL: `smtp://user:${secret}@` });
    } catch (e) {
      return e as Error;
    }
  })();
  t.match(error?.message, /^invalid configuration: SMTP_URL /);
  t.notOk(error?.message.includes(secret), "the password is not echoed");
  for (const from of ["not an address", "a@b@c", "Name <a@b>\r\nBcc: x@y.z", "<>", "Eve, Mallory <e@x.org>"]) {
    t.throws(() => loadConfig({ EMAIL_FROM: from }), { message: /^invalid configuration: EMAIL_FROM / }, JSON.stringify(from));
  }
  t.throws(() => loadConfig({ ISSUER_NAME: "a\nb" }), { message: /ISSUER_NAME/ });
});

t.test("retries back off exponentially up to an hour; errors are kept without URLs", async (t) => {
  const { describeSendError, retryDelayMs, maxEmailAttempts } = await import("../../src/email/worker.ts");
  const within = (ms: number, expected: number) => ms >= expected * 0.9 && ms <= expected * 1.1;
  t.ok(within(retryDelayMs(10, 1), 10_000), "first retry: the base");
  t.ok(within(retryDelayMs(10, 2), 20_000), "then doubled");
  t.ok(within(retryDelayMs(10, 5), 160_000));
  t.ok(within(retryDelayMs(10, 29), 3_600_000), "at most an hour");
  let total = 0;
  for (let attempt = 1; attempt < maxEmailAttempts; attempt++) total += retryDelayMs(10, attempt);
  t.ok(total > 18 * 3600_000 && total < 30 * 3600_000, `all attempts span about a day (${Math.round(total / 3600_000)} h)`);

  const smtpError = Object.assign(new Error("Message failed"), { code: "EMESSAGE", responseCode: 451, response: "451 try later, see https://mail.example/help?t=abc\r\nmore" });
  t.equal(describeSendError(smtpError), "EMESSAGE 451 451 try later, see [url] more");
  t.equal(describeSendError(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:25"), { code: "ESOCKET" })), "ESOCKET connect ECONNREFUSED 127.0.0.1:25");
  t.ok(describeSendError(new Error("x".repeat(1000))).length <= 300, "bounded");
  t.notMatch(describeSendError(new Error("bad smtp://user:secret@host")), /secret/);
});
