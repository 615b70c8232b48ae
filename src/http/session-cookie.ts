import type { FastifyReply, FastifyRequest } from 'fastify';
import type { LoginResult, LoginService } from '../auth/login.js';
import type { UserRecord } from '../auth/model.js';
import type { StartedSession } from '../auth/sessions.js';
import type { UserService } from '../auth/users.js';
import { SESSION_COOKIE, clientOf, credentialsOf, principalOf } from './guard.js';

/** Sets the session cookie: HttpOnly, SameSite=Lax, Secure whenever the browser came over HTTPS. */
function setSessionCookie(request: FastifyRequest, reply: FastifyReply, session: StartedSession): void {
  void reply.setCookie(SESSION_COOKIE, session.id, {
    httpOnly: true,
    sameSite: 'lax',
    secure: request.protocol === 'https',
    path: '/',
    expires: new Date(session.expiresAt),
  });
}

export function clearSessionCookie(request: FastifyRequest, reply: FastifyReply): void {
  void reply.clearCookie(SESSION_COOKIE, { httpOnly: true, sameSite: 'lax', secure: request.protocol === 'https', path: '/' });
}

/**
 * Signs a browser in with a password: a new session whose cookie replaces (and ends) whatever
 * session the browser still sent, so a planted id never becomes an authenticated one. Shared by
 * POST /api/v1/auth/login, the sign-in and setup pages, and the own-password change.
 */
export async function signIn(login: LoginService['login'], request: FastifyRequest, reply: FastifyReply, name: string, password: string): Promise<LoginResult> {
  const replacing = credentialsOf(request).cookie;
  const signedIn = await login(name, password, clientOf(request), replacing === undefined ? {} : { replacingSessionId: replacing });
  setSessionCookie(request, reply, signedIn.session);
  return signedIn;
}

export interface OwnPasswordDeps {
  users: Pick<UserService, 'changeOwnPassword'>;
  login: LoginService['login'];
}

/**
 * Changes the password of the user the request acts for (the current one is required). The change
 * ends every session of the user, this one included; a browser signed in by cookie is signed in
 * again with the new password (a new session and cookie), so it stays signed in. Keys and tokens
 * have no session to renew. Shared by PUT /api/v1/auth/password and the web's password page.
 */
export async function changeOwnPassword(
  deps: OwnPasswordDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  currentPassword: string,
  newPassword: string,
): Promise<{ user: UserRecord; renewed: LoginResult | null }> {
  const principal = principalOf(request);
  const client = clientOf(request);
  const user = await deps.users.changeOwnPassword(principal, currentPassword, newPassword, client);
  if (principal.via !== 'session') return { user, renewed: null };
  return { user, renewed: await signIn(deps.login, request, reply, user.name, newPassword) };
}
