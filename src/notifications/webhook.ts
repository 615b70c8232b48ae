import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, type LookupFunction, isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import { Webhook } from 'standardwebhooks';

/**
 * Sending one webhook: the Standard Webhooks signature (https://www.standardwebhooks.com), the
 * guard against requests into the service's own network, and a POST that cannot hang.
 */

/** A new signing secret: `whsec_` and 32 random bytes in base64, as Standard Webhooks receivers expect. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** The three headers that let a receiver check who sent the body, and when (replays outside its tolerance are refused). */
export function signatureHeaders(secret: string, messageId: string, sentAt: Date, body: string): Record<string, string> {
  return {
    'webhook-id': messageId,
    'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
    'webhook-signature': new Webhook(secret).sign(messageId, sentAt, body),
  };
}

/**
 * Loopback, link-local, private, shared (CGNAT), unique-local, multicast and unspecified addresses:
 * a webhook there would let whoever edits webhooks probe and call services inside the LAN or on
 * the host itself.
 */
const INTERNAL = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  INTERNAL.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
  ['2002::', 16],
] as const) {
  INTERNAL.addSubnet(network, prefix, 'ipv6');
}

/** Whether an address is one of those above (a name that is no address counts as internal). */
export function isInternalAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return INTERNAL.check(address, 'ipv4');
  if (family !== 6) return true;
  // ::ffff:10.0.0.1 reaches 10.0.0.1: an IPv4-mapped address is judged by the IPv4 address it carries.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1] !== undefined) return INTERNAL.check(mapped[1], 'ipv4');
  return INTERNAL.check(address, 'ipv6');
}

export class DestinationRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DestinationRefusedError';
  }
}

export interface ResolvedDestination {
  address: string;
  family: 4 | 6;
}

/**
 * Resolves the URL's host once and checks every address it has; the request then connects to the
 * address checked here (pinned), so a DNS answer that changes between check and connect cannot
 * lead it inside.
 */
export async function resolveDestination(
  url: URL,
  allowInternal: boolean,
  allowedBy = 'notifications.allow_private_destinations',
): Promise<ResolvedDestination> {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const addresses = await lookup(host, { all: true, verbatim: true });
  const first = addresses[0];
  if (first === undefined) throw new DestinationRefusedError(`${host} has no address`);
  if (!allowInternal) {
    const internal = addresses.find((entry) => isInternalAddress(entry.address));
    if (internal !== undefined) {
      throw new DestinationRefusedError(`${host} resolves to ${internal.address}, a loopback, link-local or private address; ${allowedBy} allows it`);
    }
  }
  return { address: first.address, family: first.family === 6 ? 6 : 4 };
}

export interface PostResult {
  statusCode: number;
}

/** The longest piece of a receiver's answer read (and then dropped): an endless answer must not keep the connection. */
const MAX_RESPONSE_BYTES = 64 * 1024;

/** POSTs `body` to `url` at the pinned address; `signal` (the caller's timeout) ends the whole exchange, answered or not. */
export function postJson(url: URL, destination: ResolvedDestination, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<PostResult> {
  return postBody(url, destination, { 'content-type': 'application/json', 'user-agent': 'disk2iso-webhooks', ...headers }, body, signal);
}

/**
 * POSTs `body` as it is, with `headers`, to `url` at the pinned address. `ca`: certificates to trust
 * besides the system's (a private CA of the receiver).
 */
export function postBody(
  url: URL,
  destination: ResolvedDestination,
  headers: Record<string, string>,
  body: string | Buffer,
  signal: AbortSignal,
  ca: string[] = [],
): Promise<PostResult> {
  const pinned: LookupFunction = (_hostname, options, callback) => {
    if (options.all) callback(null, [{ address: destination.address, family: destination.family }]);
    else callback(null, destination.address, destination.family);
  };
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const request = send(
      url,
      {
        method: 'POST',
        lookup: pinned,
        signal,
        headers: { ...headers, 'content-length': Buffer.byteLength(body) },
        ...(ca.length === 0 ? {} : { ca: [...rootCertificates, ...ca] }),
      },
      (response) => {
        let received = 0;
        response.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received > MAX_RESPONSE_BYTES) response.destroy();
        });
        response.on('close', () => resolve({ statusCode: response.statusCode ?? 0 }));
        response.on('error', () => resolve({ statusCode: response.statusCode ?? 0 }));
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}
