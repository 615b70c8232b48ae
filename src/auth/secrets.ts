import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A random secret of `bytes` bytes (256 bits unless asked otherwise), URL- and cookie-safe. */
export function randomSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** What the database keeps instead of a high-entropy secret: its SHA-256, hex. */
export function secretHash(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Compares two strings without an early exit, so timing does not reveal how much of a guess was right. */
export function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** `user_3f9c…`: what it names, then 80 random bits in hex (the same shape as job and archive ids). */
export function newAuthId(prefix: 'user' | 'key'): string {
  return `${prefix}_${randomBytes(10).toString('hex')}`;
}
