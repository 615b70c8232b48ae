import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { type TestServer, api, startTestServer, waitFor } from '../http/support.js';
import { makeIso } from '../tools/iso.js';

const run = promisify(execFile);
const FAST_RETRIES = { pollMs: 50, retryBaseMs: 1, retryMaxMs: 1 };

interface ReceivedMail {
  from: string;
  to: string[];
  raw: string;
  /** The connection had switched to TLS when the message was sent. */
  secure: boolean;
  user: string | null;
}

interface MailServer {
  port: number;
  mails: ReceivedMail[];
  /** The SMTP reply code RCPT TO answers with from now on (250: accept). */
  refuseWith(code: number): void;
  close(): Promise<void>;
}

/** A real SMTP server on 127.0.0.1 that offers STARTTLS with the given certificate and requires a sign-in. */
async function startMailServer(key: string, cert: string, credentials: { user: string; password: string }): Promise<MailServer> {
  const mails: ReceivedMail[] = [];
  let refusal = 250;
  const server = new SMTPServer({
    key,
    cert,
    secure: false,
    authMethods: ['PLAIN', 'LOGIN'],
    onAuth(auth, _session, callback) {
      if (auth.username === credentials.user && auth.password === credentials.password) callback(null, { user: auth.username });
      else callback(Object.assign(new Error('authentication failed'), { responseCode: 535 }));
    },
    onRcptTo(_address, _session, callback) {
      if (refusal === 250) callback();
      else callback(Object.assign(new Error('mailbox unavailable'), { responseCode: refusal }));
    },
    onData(stream, session: SMTPServerSession, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        mails.push({
          from: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map((entry) => entry.address),
          raw: Buffer.concat(chunks).toString('utf8'),
          secure: session.secure,
          user: typeof session.user === 'string' ? session.user : null,
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    port: address.port,
    mails,
    refuseWith(code) {
      refusal = code;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** The decoded text of a MIME part (quoted-printable or base64) whose content type starts with `type`. */
function part(raw: string, type: string): string {
  const start = raw.indexOf(`Content-Type: ${type}`);
  assert.ok(start >= 0, `no ${type} part in:\n${raw}`);
  const headerEnd = raw.indexOf('\r\n\r\n', start);
  const headers = raw.slice(start, headerEnd);
  const body = raw.slice(headerEnd + 4).split(/\r\n--/)[0] ?? '';
  if (/Content-Transfer-Encoding: base64/i.test(headers)) return Buffer.from(body.replace(/\s/g, ''), 'base64').toString('utf8');
  if (/Content-Transfer-Encoding: quoted-printable/i.test(headers)) {
    const bytes = body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/gi, (_whole, hex: string) => `%${hex}`);
    return decodeURIComponent(bytes);
  }
  return body;
}

describe('e-mail over SMTP', () => {
  let work: string;
  let isoPath: string;
  let key: string;
  let cert: string;
  let certFile: string;
  let mail: MailServer;
  let service: TestServer | undefined;
  const credentials = { user: 'mailer', password: 'smtp-Secret-77' };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-email-'));
    isoPath = (await makeIso({ dir: work, label: 'MAILED', dataMiB: 1, files: 1 })).path;
    const keyFile = join(work, 'smtp.key');
    certFile = join(work, 'smtp.crt');
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ]);
    key = await readFile(keyFile, 'utf8');
    cert = await readFile(certFile, 'utf8');
    mail = await startMailServer(key, cert, credentials);
  });
  after(async () => {
    await service?.close();
    await mail.close();
    await rm(work, { recursive: true, force: true });
  });

  function mailEnv(more: Record<string, string> = {}): Record<string, string> {
    return {
      DISK2ISO_NOTIFICATIONS_EMAIL_ON_COMPLETION: 'true',
      DISK2ISO_NOTIFICATIONS_EMAIL_ADDRESS: 'archive@example.org',
      DISK2ISO_NOTIFICATIONS_EMAIL_FROM: 'disk2iso@example.org',
      DISK2ISO_NOTIFICATIONS_SMTP_HOST: 'localhost',
      DISK2ISO_NOTIFICATIONS_SMTP_PORT: String(mail.port),
      DISK2ISO_NOTIFICATIONS_SMTP_SECURITY: 'starttls',
      DISK2ISO_NOTIFICATIONS_SMTP_USER: credentials.user,
      DISK2ISO_NOTIFICATIONS_SMTP_PASSWORD: credentials.password,
      DISK2ISO_NOTIFICATIONS_SMTP_CA_FILE: certFile,
      ...more,
    };
  }

  it("mails a finished job's summary over STARTTLS with a sign-in, as text and HTML in the chosen language", async () => {
    service = await startTestServer({
      devices: [isoPath],
      env: mailEnv({ DISK2ISO_NOTIFICATIONS_EMAIL_LANGUAGE: 'de', DISK2ISO_NOTIFICATIONS_LINK_BASE_URL: 'https://disk2iso.example.org/' }),
      notifications: FAST_RETRIES,
    });
    const { url } = service;
    const deviceId = (await api(url, 'GET', '/api/v1/devices')).body.devices[0].id;
    const job = await api(url, 'POST', '/api/v1/jobs', { device: deviceId });
    assert.equal(job.status, 201);
    await waitFor('the e-mail', () => mail.mails.length > 0);
    const [received] = mail.mails;
    assert.ok(received !== undefined);
    assert.equal(received.secure, true, 'sent after STARTTLS');
    assert.equal(received.user, credentials.user, 'signed in');
    assert.equal(received.from, 'disk2iso@example.org');
    assert.deepEqual(received.to, ['archive@example.org']);
    assert.match(received.raw, /^Subject: disk2iso: MAILED ist archiviert\r$/m);
    const text = part(received.raw, 'text/plain');
    const html = part(received.raw, 'text/html');
    const archived = (await api(url, 'GET', `/api/v1/jobs/${job.body.id}`)).body;
    const archive = (await api(url, 'GET', `/api/v1/archives/${archived.archive_id}`)).body;
    assert.match(text, /Das Image MAILED ist vollständig und im Archiv\./);
    assert.match(text, /Größe: 1,\d MB/);
    assert.match(text, /Dauer: \d+:\d\d/);
    assert.match(text, /Unlesbar: nichts/);
    assert.ok(text.includes(`SHA256: ${archive.checksums.sha256}`), text);
    assert.ok(text.includes(`MD5: ${archive.checksums.md5}`), text);
    assert.ok(text.includes(`Details: https://disk2iso.example.org/jobs/${job.body.id}`), text);
    assert.ok(html.includes(`<a href="https://disk2iso.example.org/jobs/${job.body.id}">`), html);
    assert.ok(html.includes('<th align="left">Größe</th>'), html);

    await waitFor('the delivery to be logged as sent', async () =>
      ((await api(url, 'GET', '/api/v1/notifications/deliveries')).body.deliveries as Array<{ status: string }>).some((entry) => entry.status === 'sent'),
    );
    const log = (await api(url, 'GET', '/api/v1/notifications/deliveries')).body.deliveries;
    assert.ok(log.every((entry: { channel: string; event_type: string }) => entry.channel === 'email' && entry.event_type === 'job.completed'));
    const shown = JSON.stringify((await api(url, 'GET', '/api/v1/system/config')).body);
    assert.ok(!shown.includes(credentials.password), 'the SMTP password is never shown');
  });

  it('keeps a refused e-mail pending and sends it once the server takes it, as the test e-mail shows', async () => {
    await service?.close();
    mail.mails.length = 0;
    mail.refuseWith(550);
    service = await startTestServer({ env: mailEnv(), notifications: FAST_RETRIES });
    const { url } = service;
    const test = await api(url, 'POST', '/api/v1/notifications/email/test');
    assert.equal(test.status, 202, JSON.stringify(test.body));
    const entry = async () =>
      ((await api(url, 'GET', '/api/v1/notifications/deliveries')).body.deliveries as Array<Record<string, unknown>>).find((row) => row.id === test.body.id);
    await waitFor('a refused attempt', async () => ((await entry())?.attempts as number) > 0);
    const refused = await entry();
    assert.equal(refused?.status, 'pending');
    assert.equal(refused?.last_status_code, 550);
    assert.match(String(refused?.last_error), /mailbox unavailable/);
    assert.equal(mail.mails.length, 0);

    mail.refuseWith(250);
    await waitFor('the e-mail after the refusals', async () => (await entry())?.status === 'sent');
    assert.equal(mail.mails.length, 1);
    assert.equal((await entry())?.last_status_code, 250);
    assert.match(mail.mails[0]?.raw ?? '', /^Subject: disk2iso: test e-mail\r$/m);
    assert.match(mail.mails[0]?.raw ?? '', new RegExp(`^Message-ID: <${test.body.id}@disk2iso>\\r$`, 'm'));
  });

  it('refuses to send the password to a server that does not offer STARTTLS when starttls is set', async () => {
    await service?.close();
    const plain = new SMTPServer({
      disabledCommands: ['STARTTLS'],
      authOptional: true,
      onData: (stream, _session, callback) => stream.resume().on('end', () => callback()),
    });
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    try {
      const port = (plain.server.address() as { port: number }).port;
      service = await startTestServer({ env: mailEnv({ DISK2ISO_NOTIFICATIONS_SMTP_PORT: String(port) }), notifications: { ...FAST_RETRIES, maxAttempts: 1 } });
      const test = await api(service.url, 'POST', '/api/v1/notifications/email/test');
      await waitFor('the attempt', async () =>
        ((await api(service?.url ?? '', 'GET', '/api/v1/notifications/deliveries')).body.deliveries as Array<{ status: string }>).some(
          (row) => row.status === 'failed',
        ),
      );
      const [row] = (await api(service.url, 'GET', '/api/v1/notifications/deliveries')).body.deliveries;
      assert.equal(row.id, test.body.id);
      assert.match(row.last_error, /STARTTLS/i);
    } finally {
      await new Promise<void>((resolve) => plain.close(() => resolve()));
    }
  });
});
