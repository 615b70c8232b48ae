import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, link, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SignJWT, jwtVerify } from 'jose';
import type { SharedSecrets } from '../db/secret-repository.js';
import { UnavailableError, errnoCode, errorMessage } from '../errors.js';
import type { ApiKeyService } from './api-keys.js';
import type { CredentialChecker } from './credentials.js';
import type { AuthDeps } from './deps.js';
import { AuthenticationError, PasswordChangeRequiredError } from './errors.js';
import { type ClientInfo, type Principal, createPrincipal, passwordMustChange, userPrincipal } from './principal.js';
import { PERMISSIONS } from './roles.js';

export const SIGNING_KEY_FILE = 'jwt.key';
/** Its name among the cluster's shared secrets. */
const SHARED_SIGNING_KEY = 'jwt_signing_key';
const SIGNING_KEY_BYTES = 64;
const SECRET_FILE_MODE = 0o600;
const ISSUER = 'disk2iso';
const AUDIENCE = 'disk2iso-api';

/**
 * The HS256 key, created on first use as DATA_DIR/jwt.key with mode 0600. Creation writes a
 * private temporary file and links it into place, so two processes starting together agree on one key
 * and neither ever reads a half-written file.
 * @internal exported for its tests
 */
export async function loadOrCreateSigningKey(file: string): Promise<Uint8Array> {
  try {
    return await readSigningKey(file);
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error;
  }
  const draft = join(dirname(file), `.${SIGNING_KEY_FILE}.${randomBytes(6).toString('hex')}`);
  try {
    await writeFile(draft, `${newSigningKey()}\n`, { mode: SECRET_FILE_MODE, flag: 'wx' });
    await link(draft, file).catch((error: unknown) => {
      if (errnoCode(error) !== 'EEXIST') throw error;
    });
  } finally {
    await rm(draft, { force: true });
  }
  return readSigningKey(file);
}

const newSigningKey = (): string => randomBytes(SIGNING_KEY_BYTES).toString('base64url');

/** The key from its base64url text, refused when it is too short to sign with. */
const signingKeyOf =
  (where: string) =>
  (text: string): Uint8Array => {
    const key = Buffer.from(text.trim(), 'base64url');
    if (key.length < 32)
      throw new UnavailableError('signing_key_invalid', `${where} holds no usable signing key; remove it to have a new one made`, { source: where });
    return key;
  };

async function readSigningKey(file: string): Promise<Uint8Array> {
  const mode = (await stat(file)).mode & 0o777;
  // A key others could read signs tokens for anyone; take the access away before using it.
  if (mode !== SECRET_FILE_MODE) await chmod(file, SECRET_FILE_MODE);
  return signingKeyOf(file)(await readFile(file, 'utf8'));
}

interface IssuedToken {
  token: string;
  tokenType: 'Bearer';
  expiresAt: string;
  expiresIn: number;
}

/**
 * Short-lived bearer tokens (HS256). Claims: sub (user id), role, cv (the user's credentials version),
 * jti, and for a key's token its id (akid) and scope. A token dies when it expires, when the
 * user's password or role changes or the user is disabled (cv), and when its key is revoked. A key's
 * token never exceeds the key: its scope is the key's rights, and it expires no later than the key.
 */
export interface TokenService {
  issueForPassword(name: string, password: string, client: ClientInfo): Promise<IssuedToken>;
  issueForApiKey(key: string, client: ClientInfo): Promise<IssuedToken>;
  /** The principal a bearer token stands for, or null for any token that is not valid now. */
  verify(token: string): Promise<Principal | null>;
}

type Deps = Pick<AuthDeps, 'users' | 'audit' | 'policy' | 'now'> & {
  signingKeyFile: string;
  /** In the cluster the key lives in the database instead of the file, so a token of one instance is good at every other. */
  sharedSecrets?: SharedSecrets;
  credentials: CredentialChecker;
  apiKeyService: ApiKeyService;
};

interface TokenClaims {
  sub: string;
  role: string;
  cv: number;
  akid?: string;
  scope?: string;
}

function claimsOf(payload: Record<string, unknown>): TokenClaims | null {
  const { sub, role, cv, akid, scope } = payload;
  if (typeof sub !== 'string' || typeof role !== 'string' || typeof cv !== 'number') return null;
  if (akid !== undefined && typeof akid !== 'string') return null;
  if (scope !== undefined && typeof scope !== 'string') return null;
  return { sub, role, cv, ...(akid === undefined ? {} : { akid }), ...(scope === undefined ? {} : { scope }) };
}

export function createTokenService(deps: Deps): TokenService {
  const { users, audit, policy, now, credentials, apiKeyService } = deps;
  let signingKey: Promise<Uint8Array> | undefined;
  const where = deps.sharedSecrets === undefined ? deps.signingKeyFile : 'the cluster database';
  const load = (): Promise<Uint8Array> =>
    deps.sharedSecrets === undefined
      ? loadOrCreateSigningKey(deps.signingKeyFile)
      : deps.sharedSecrets.getOrCreate(SHARED_SIGNING_KEY, newSigningKey).then(signingKeyOf(where));
  const key = (): Promise<Uint8Array> => {
    signingKey ??= load().catch((error: unknown) => {
      signingKey = undefined;
      throw new UnavailableError('signing_key_unavailable', `Cannot use the signing key in ${where}: ${errorMessage(error)}`, { source: where });
    });
    return signingKey;
  };

  /** `notAfter`: the end of the credential the token stands for; the token expires at it if that comes sooner. */
  async function sign(claims: TokenClaims, audited: { method: string; user: string; client: ClientInfo }, notAfter?: string): Promise<IssuedToken> {
    const issuedAt = now();
    const iat = Math.floor(issuedAt.getTime() / 1000);
    const limit = notAfter === undefined ? Number.POSITIVE_INFINITY : Math.floor(Date.parse(notAfter) / 1000);
    const lifetimeSeconds = Math.min(Math.floor(policy.tokenLifetimeMs / 1000), limit - iat);
    // A key within its last second: any token would be dead on arrival.
    if (lifetimeSeconds <= 0) throw new AuthenticationError('invalid_api_key', 'Invalid API key');
    const jti = randomUUID();
    const token = await new SignJWT({ role: claims.role, cv: claims.cv, ...(claims.akid === undefined ? {} : { akid: claims.akid, scope: claims.scope }) })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(claims.sub)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setJti(jti)
      .setIssuedAt(iat)
      .setExpirationTime(iat + lifetimeSeconds)
      .sign(await key());
    const expiresAt = new Date((iat + lifetimeSeconds) * 1000).toISOString();
    await audit.record({
      event_type: 'authentication',
      action: 'token_issued',
      user: audited.user,
      ip_address: audited.client.ip,
      user_agent: audited.client.userAgent,
      details: { method: audited.method, jti, expires_at: expiresAt, ...(claims.akid === undefined ? {} : { api_key_id: claims.akid }) },
    });
    return { token, tokenType: 'Bearer', expiresAt, expiresIn: lifetimeSeconds };
  }

  return {
    async issueForPassword(name, password, client) {
      const user = await credentials.verify(name, password, client, 'token');
      // Such a token could do nothing but change the password, which is done with a session (the sign-in
      // page or POST /api/v1/auth/login); refusing it says so instead of handing out a token refused everywhere.
      if (passwordMustChange(user, now(), policy.passwordMaxAgeMs)) {
        await audit.record({
          event_type: 'authentication',
          action: 'login_failure',
          user: user.name,
          ip_address: client.ip,
          user_agent: client.userAgent,
          details: { reason: 'password_change_required', method: 'password', purpose: 'token' },
        });
        throw new PasswordChangeRequiredError(
          'Your password has expired or was reset: sign in (POST /api/v1/auth/login or the sign-in page) and change it (PUT /api/v1/auth/password) before asking for a token',
        );
      }
      return sign({ sub: user.id, role: user.role, cv: user.credentialsVersion }, { method: 'password', user: user.name, client });
    },

    async issueForApiKey(apiKey, client) {
      const principal = await apiKeyService.authenticate(apiKey);
      if (principal === null || principal.apiKeyId === undefined) throw new AuthenticationError('invalid_api_key', 'Invalid API key');
      const user = await users.get(principal.userId);
      if (user === null) throw new AuthenticationError('invalid_api_key', 'Invalid API key');
      return sign(
        { sub: user.id, role: user.role, cv: user.credentialsVersion, akid: principal.apiKeyId, scope: [...principal.permissions].join(' ') },
        { method: 'api_key', user: user.name, client },
        principal.expiresAt,
      );
    },

    async verify(token) {
      let payload: Record<string, unknown>;
      try {
        ({ payload } = await jwtVerify(token, await key(), {
          algorithms: ['HS256'],
          issuer: ISSUER,
          audience: AUDIENCE,
          currentDate: now(),
          requiredClaims: ['exp', 'iat', 'jti', 'sub'],
        }));
      } catch (error) {
        if (error instanceof UnavailableError) throw error;
        return null;
      }
      const claims = claimsOf(payload);
      if (claims === null || typeof payload.exp !== 'number') return null;
      const tokenExpiresAt = new Date(payload.exp * 1000).toISOString();
      const user = await users.get(claims.sub);
      if (user === null || user.disabled || user.credentialsVersion !== claims.cv || user.role !== claims.role) return null;
      if (claims.akid === undefined) return userPrincipal(user, now(), policy.passwordMaxAgeMs, { tokenExpiresAt });

      const keyPrincipal = await apiKeyService.principalForKey(claims.akid, 'jwt');
      if (keyPrincipal === null || keyPrincipal.userId !== user.id) return null;
      const granted = new Set((claims.scope ?? '').split(' '));
      const keyExpiresAt = keyPrincipal.expiresAt;
      return createPrincipal({
        kind: 'api_key',
        via: 'jwt',
        user,
        permissions: new Set(PERMISSIONS.filter((permission) => keyPrincipal.permissions.has(permission) && granted.has(permission))),
        mustChangePassword: false,
        apiKeyId: claims.akid,
        expiresAt: keyExpiresAt !== undefined && Date.parse(keyExpiresAt) < Date.parse(tokenExpiresAt) ? keyExpiresAt : tokenExpiresAt,
      });
    },
  };
}
