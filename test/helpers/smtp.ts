/**
 * A real SMTP server in the test process (the `smtp-server` package, plain
 * SMTP on a loopback port, no STARTTLS, any or no credentials) that
 * parses every message it accepts with `mailparser`, so tests read what a
 * mail client would: headers, text and HTML parts. It can be stopped and
 * started again on the same port (an SMTP outage), and can refuse chosen
 * recipients with a 550 reply. Stopped at teardown.
 *
 *   const smtp = await startSmtpServer(t);
 *   const running = await startApp(t, { env: { SMTP_URL: smtp.url } });
 *   ... something that emails ada@example.test ...
 *   const mail = await smtp.waitFor((m) => m.to.includes("ada@example.test"));
 *   t.match(mail.parsed.text, /.../);
 */
import { EventEmitter } from "node:events";
import type { Test } from "tap";
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from "smtp-server";
import { simpleParser, type ParsedMail } from "mailparser";
import { freePort } from "./processes.ts";

export interface ReceivedMail {
  /** The envelope's recipients (RCPT TO), lower-cased. */
  to: string[];
  /** The envelope's sender (MAIL FROM). */
  from: string | undefined;
  /** The message as it arrived. */
  raw: string;
  /** The message parsed by mailparser: subject, text, html, headers, ... */
  parsed: ParsedMail;
  receivedAt: Date;
}

export interface TestSmtpServer {
  /** smtp://127.0.0.1:<port>, for SMTP_URL. */
  readonly url: string;
  readonly port: number;
  /** Every message accepted so far, in order of arrival (kept across stop/start). */
  readonly messages: ReceivedMail[];
  /** Whether it is accepting connections. */
  readonly running: boolean;
  /**
   * The first message (already received or arriving within `timeoutMs`,
   * default 10 s) that `predicate` accepts; rejects on timeout with what did
   * arrive, so a failure says why.
   */
  waitFor(predicate?: (mail: ReceivedMail) => boolean, timeoutMs?: number): Promise<ReceivedMail>;
  /** Stops listening and drops open connections (an outage). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

export interface SmtpServerOptions {
  /** Start listening at once (default true); false starts "down". */
  listen?: boolean;
  /** Refuse RCPT TO for addresses this returns true for, with a permanent 550. */
  rejectRecipient?: (address: string) => boolean;
}

export async function startSmtpServer(t: Test, options: SmtpServerOptions = {}): Promise<TestSmtpServer> {
  const port = await freePort();
  const messages: ReceivedMail[] = [];
  const arrivals = new EventEmitter();
  arrivals.setMaxListeners(100);
  let server: SMTPServer | undefined;

  const create = () =>
    new SMTPServer({
      // Any credentials are accepted (SMTP_URL may carry some), over plain SMTP.
      authOptional: true,
      allowInsecureAuth: true,
      onAuth(auth, _session, callback) {
        callback(null, { user: auth.username });
      },
      disabledCommands: ["STARTTLS"],
      // Do not wait for clients (nodemailer's pool keeps connections open) when stopping.
      closeTimeout: 50,
      logger: false,
      size: 1024 * 1024,
      onRcptTo(address, _session, callback) {
        if (options.rejectRecipient?.(address.address)) {
          // Worded as Postfix does: servers quote the refused address.
          const error = new Error(`5.1.1 <${address.address}>: Recipient address rejected: mailbox unavailable`) as Error & { responseCode: number };
          error.responseCode = 550;
          return callback(error);
        }
        callback();
      },
      onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback) {
        const chunks: Buffer[] = [];
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("end", () => {
          const raw = Buffer.concat(chunks).toString("utf8");
          simpleParser(raw)
            .then((parsed) => {
              const mail: ReceivedMail = {
                to: session.envelope.rcptTo.map((a) => a.address.toLowerCase()),
                from: session.envelope.mailFrom ? session.envelope.mailFrom.address : undefined,
                raw,
                parsed,
                receivedAt: new Date(),
              };
              messages.push(mail);
              arrivals.emit("mail", mail);
              callback();
            })
            .catch((error: Error) => callback(error));
        });
      },
    });

  const start = () =>
    new Promise<void>((resolve, reject) => {
      if (server) return resolve();
      const s = create();
      s.on("error", () => undefined);
      s.server.once("error", reject);
      s.listen(port, "127.0.0.1", () => {
        server = s;
        resolve();
      });
    });

  const stop = () =>
    new Promise<void>((resolve) => {
      const s = server;
      server = undefined;
      if (!s) return resolve();
      s.close(() => resolve());
    });

  const waitFor = (predicate: (mail: ReceivedMail) => boolean = () => true, timeoutMs = 10_000) =>
    new Promise<ReceivedMail>((resolve, reject) => {
      const found = messages.find(predicate);
      if (found) return resolve(found);
      const onMail = (mail: ReceivedMail) => {
        if (!predicate(mail)) return;
        clearTimeout(timer);
        arrivals.off("mail", onMail);
        resolve(mail);
      };
      const timer = setTimeout(() => {
        arrivals.off("mail", onMail);
        const seen = messages.map((m) => `${m.to.join(",")}: ${m.parsed.subject ?? ""}`);
        reject(new Error(`no matching email within ${timeoutMs} ms; received ${messages.length}: ${JSON.stringify(seen)}`));
      }, timeoutMs);
      arrivals.on("mail", onMail);
    });

  if (options.listen !== false) await start();
  t.teardown(stop);
  return {
    url: `smtp://127.0.0.1:${port}`,
    port,
    messages,
    get running() {
      return server !== undefined;
    },
    waitFor,
    stop,
    start,
  };
}

/**
 * Waits until the app's email worker has sent (or rescheduled) everything it
 * can now, so that a test reading the database or the audit log after a
 * change that emails someone does not race the worker's own writes
 * (EmailOutbox rows, email.sent events).
 */
export async function settleOutbox(app: { emailWorker: { runOnce(): Promise<void> } | undefined }): Promise<void> {
  await app.emailWorker?.runOnce();
}
