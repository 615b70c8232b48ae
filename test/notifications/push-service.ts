import assert from 'node:assert/strict';
import { createDecipheriv, createECDH, createHmac, createPublicKey, randomBytes, verify } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { requireTool, run } from '../tools/exec.js';

/**
 * A push service for the tests, written from the RFCs alone (no web-push on this side): an HTTPS
 * server with its own test CA that takes messages the way a browser vendor's push service does.
 * It checks the VAPID Authorization header (RFC 8292: an ES256 JWT signed with the key `k`, its
 * audience this origin, its expiry ahead) and decrypts the aes128gcm payload (RFC 8188, RFC 8291)
 * with the private key and auth secret of a subscription the test made like a browser.
 */

/** A browser's side of a subscription: what it sends the service (public) and what it keeps (private). */
export interface BrowserSubscription {
  endpoint: string;
  /** base64url, as PushSubscription.toJSON() gives them. */
  keys: { p256dh: string; auth: string };
  privateKey: Buffer;
  publicKey: Buffer;
  authSecret: Buffer;
}

interface ReceivedPush {
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The VAPID public key (k) the request named, base64url; checked against the JWT's signature. */
  vapidKey: string;
  claims: { aud: string; exp: number; sub: string };
}

export interface PushService {
  origin: string;
  /** The CA's certificate file, for notifications.push_ca_file. */
  caFile: string;
  received: ReceivedPush[];
  /** Requests refused for a bad VAPID header, with why. */
  refused: string[];
  /** Answer with this status for the subscription at `path` from now on (410: gone). */
  answer(path: string, status: number): void;
  subscribe(path: string): BrowserSubscription;
  close(): Promise<void>;
}

const b64url = (buffer: Buffer): string => buffer.toString('base64url');

/** A CA and a certificate for `localhost` signed by it. */
async function makeCertificates(dir: string): Promise<{ caFile: string; cert: Buffer; key: Buffer }> {
  const openssl = await requireTool('openssl', 'openssl');
  const file = (name: string) => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run(openssl, [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=disk2iso push test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await run(openssl, ['req', '-new', ...ec, '-keyout', file('push.key'), '-out', file('push.csr'), '-subj', '/CN=localhost']);
  await writeFile(
    file('push.ext'),
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n',
  );
  await run(openssl, [
    'x509',
    '-req',
    '-in',
    file('push.csr'),
    '-CA',
    file('ca.crt'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    file('push.ext'),
    '-out',
    file('push.crt'),
  ]);
  return { caFile: file('ca.crt'), cert: await readFile(file('push.crt')), key: await readFile(file('push.key')) };
}

/** RFC 8292 §2-3: `vapid t=<JWT>, k=<public key>`; the JWT is ES256 over the raw P-256 key k. Throws why it is not valid. */
function checkVapid(authorization: string | undefined, origin: string): Pick<ReceivedPush, 'vapidKey' | 'claims'> {
  const match = /^vapid t=([A-Za-z0-9_.-]+),\s*k=([A-Za-z0-9_-]+)$/.exec(authorization ?? '');
  if (match?.[1] === undefined || match[2] === undefined) throw new Error(`no vapid Authorization header: ${authorization}`);
  const [token, vapidKey] = [match[1], match[2]];
  const [header, payload, signature] = token.split('.');
  if (header === undefined || payload === undefined || signature === undefined) throw new Error('the JWT has not three parts');
  const head = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as { alg?: string; typ?: string };
  if (head.alg !== 'ES256') throw new Error(`alg ${head.alg}`);
  const point = Buffer.from(vapidKey, 'base64url');
  if (point.length !== 65 || point[0] !== 4) throw new Error('k is no uncompressed P-256 point');
  const key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b64url(point.subarray(1, 33)), y: b64url(point.subarray(33)) }, format: 'jwk' });
  const signed = verify('sha256', Buffer.from(`${header}.${payload}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));
  if (!signed) throw new Error('the JWT signature does not verify with k');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as ReceivedPush['claims'];
  if (claims.aud !== origin) throw new Error(`aud ${claims.aud} is not ${origin}`);
  const now = Date.now() / 1000;
  if (!(claims.exp > now && claims.exp <= now + 24 * 3600)) throw new Error(`exp ${claims.exp} is not within the next 24 h`);
  if (!/^(mailto:|https:)/.test(claims.sub)) throw new Error(`sub ${claims.sub}`);
  return { vapidKey, claims };
}

const hmac = (key: Buffer, ...data: Buffer[]): Buffer => {
  const mac = createHmac('sha256', key);
  for (const part of data) mac.update(part);
  return mac.digest();
};

/**
 * RFC 8291 §3.4 and RFC 8188 §2: the header (salt, record size, the sender's key as key id), then
 * one record; the keys from ECDH with the subscription's private key and its auth secret.
 */
export function decryptPush(body: Buffer, subscription: BrowserSubscription): string {
  const salt = body.subarray(0, 16);
  const recordSize = body.readUInt32BE(16);
  const idLength = body.readUInt8(20);
  const senderKey = body.subarray(21, 21 + idLength);
  const ciphertext = body.subarray(21 + idLength);
  assert.equal(idLength, 65, 'the key id is the sender public key');
  assert.ok(ciphertext.length <= recordSize, 'one record');
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(subscription.privateKey);
  const shared = ecdh.computeSecret(senderKey);
  const prkKey = hmac(subscription.authSecret, shared);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), subscription.publicKey, senderKey]);
  const ikm = hmac(prkKey, keyInfo, Buffer.from([1]));
  const prk = hmac(salt, ikm);
  const contentKey = hmac(prk, Buffer.from('Content-Encoding: aes128gcm\0'), Buffer.from([1])).subarray(0, 16);
  const nonce = hmac(prk, Buffer.from('Content-Encoding: nonce\0'), Buffer.from([1])).subarray(0, 12);
  const decipher = createDecipheriv('aes-128-gcm', contentKey, nonce);
  decipher.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
  const padded = Buffer.concat([decipher.update(ciphertext.subarray(0, ciphertext.length - 16)), decipher.final()]);
  // The last record ends in the delimiter 2, then zeros of padding.
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end--;
  assert.equal(padded[end], 2, 'the last record delimiter');
  return padded.subarray(0, end).toString('utf8');
}

export async function startPushService(dir: string): Promise<PushService> {
  const { caFile, cert, key } = await makeCertificates(dir);
  const received: ReceivedPush[] = [];
  const refused: string[] = [];
  const answers = new Map<string, number>();
  let origin = '';
  const server = createServer({ cert, key }, (request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const path = request.url ?? '';
      try {
        const vapid = checkVapid(request.headers.authorization, origin);
        if (request.headers['content-encoding'] !== 'aes128gcm') throw new Error(`content-encoding ${request.headers['content-encoding']}`);
        if (!/^\d+$/.test(String(request.headers.ttl))) throw new Error('no TTL');
        received.push({ path, headers: request.headers, body: Buffer.concat(chunks), ...vapid });
        response.writeHead(answers.get(path) ?? 201).end();
      } catch (error) {
        refused.push((error as Error).message);
        response.writeHead(401).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `https://localhost:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    caFile,
    received,
    refused,
    answer(path, status) {
      answers.set(path, status);
    },
    subscribe(path) {
      const ecdh = createECDH('prime256v1');
      const publicKey = ecdh.generateKeys();
      const authSecret = randomBytes(16);
      return {
        endpoint: `${origin}${path}`,
        keys: { p256dh: b64url(publicKey), auth: b64url(authSecret) },
        privateKey: ecdh.getPrivateKey(),
        publicKey,
        authSecret,
      };
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
