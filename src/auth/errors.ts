import type { ErrorCode } from '../error-codes.js';
import { ForbiddenError, TooManyRequestsError, UnauthenticatedError } from '../errors.js';

/**
 * Wrong or missing credentials. One message for an unknown name, a wrong password and a disabled
 * account, so the answer never tells which names exist.
 */
export class AuthenticationError extends UnauthenticatedError {
  constructor(code: ErrorCode = 'invalid_credentials', message = 'Invalid user name or password') {
    super(code, message);
  }
}

/** Too many failed logins for this account or from this address; try again after `retry_after_seconds`. */
export class LockedOutError extends TooManyRequestsError {
  constructor(retryAfterSeconds: number) {
    super('locked_out', `Too many failed logins; try again in ${Math.ceil(retryAfterSeconds / 60)} minute(s)`, retryAfterSeconds);
  }
}

/** The password is older than the policy allows or was set by an administrator; only changing it is allowed. */
export class PasswordChangeRequiredError extends ForbiddenError {
  constructor(message = 'Your password has expired or was reset; change it before doing anything else') {
    super('password_change_required', message);
  }
}
