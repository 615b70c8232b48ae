import type { FastifyInstance } from 'fastify';

/**
 * Stricter than the specification's nginx sample: no 'unsafe-inline' or 'unsafe-eval' anywhere, so
 * an injected <script> or style attribute does nothing even if escaping ever failed. Pages load
 * their scripts and styles from /static/ only.
 * @internal exported for its tests
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  // The installable app: its manifest and its service worker, both from this origin only.
  "manifest-src 'self'",
  "worker-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'self'",
].join('; ');

const FIXED_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-frame-options': 'SAMEORIGIN',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/** One year, as the specification's sample; only sent over HTTPS, where a browser honours it. */
const HSTS = 'max-age=31536000; includeSubDomains';

/**
 * Adds the security headers to every response, errors and 404s included. `request.protocol` is
 * `https` when the connection is TLS or a trusted proxy said so in X-Forwarded-Proto.
 */
export function installSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onSend', async (request, reply) => {
    // A route's own policy stays: the files inside an image are sent with a sandbox, stricter than the pages' policy.
    const ownPolicy = reply.getHeader('content-security-policy');
    reply.headers(FIXED_HEADERS);
    if (typeof ownPolicy === 'string') reply.header('content-security-policy', ownPolicy);
    if (request.protocol === 'https') reply.header('strict-transport-security', HSTS);
  });
}
