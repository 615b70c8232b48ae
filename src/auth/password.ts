import bcrypt from 'bcrypt';
import { ValidationError } from '../errors.js';

/** The specification's cost factor; every stored hash records it (`$2b$12$…`). */
export const BCRYPT_COST = 12;

export const PASSWORD_MIN_LENGTH = 12;
/** bcrypt reads only the first 72 bytes; a longer password would be accepted on its prefix alone. */
export const PASSWORD_MAX_BYTES = 72;

interface PasswordRule {
  rule: string;
  message: string;
  broken: (password: string) => boolean;
}

const RULES: readonly PasswordRule[] = [
  {
    rule: 'min_length',
    message: `must be at least ${PASSWORD_MIN_LENGTH} characters long`,
    broken: (password) => [...password].length < PASSWORD_MIN_LENGTH,
  },
  {
    rule: 'max_bytes',
    message: `must be at most ${PASSWORD_MAX_BYTES} bytes long (bcrypt ignores the rest)`,
    broken: (password) => Buffer.byteLength(password, 'utf8') > PASSWORD_MAX_BYTES,
  },
  { rule: 'uppercase', message: 'must contain an upper-case letter', broken: (password) => !/\p{Lu}/u.test(password) },
  { rule: 'lowercase', message: 'must contain a lower-case letter', broken: (password) => !/\p{Ll}/u.test(password) },
  { rule: 'digit', message: 'must contain a digit', broken: (password) => !/\p{Nd}/u.test(password) },
  { rule: 'no_control', message: 'must not contain control characters', broken: (password) => /\p{Cc}/u.test(password) },
];

/** @internal exported for its tests */
export interface PasswordProblem {
  rule: string;
  message: string;
}

/** Every rule the password breaks, each with a message a person can act on; empty when it is acceptable. */
export function passwordProblems(password: string): PasswordProblem[] {
  return RULES.filter((entry) => entry.broken(password)).map(({ rule, message }) => ({ rule, message }));
}

export function assertPasswordPolicy(password: string): void {
  const problems = passwordProblems(password);
  if (problems.length > 0) {
    throw new ValidationError(
      'weak_password',
      `Password ${problems.map((problem) => problem.message).join('; ')}`,
      problems.map((problem) => ({ ...problem })),
    );
  }
}

/** Hashing and checking, as a dependency so tests can observe that a path ran bcrypt. */
export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(password: string, hash: string): Promise<boolean>;
}

export const bcryptHasher: PasswordHasher = {
  hash: (password) => bcrypt.hash(password, BCRYPT_COST),
  verify: (password, hash) => bcrypt.compare(password, hash),
};

/** The cost factor a stored hash was made with. */
export function hashCost(hash: string): number {
  return bcrypt.getRounds(hash);
}

/**
 * A cost-12 hash of a random string nobody knows. Logins for unknown names are checked against it,
 * so they take as long as logins for existing names and the answer time does not reveal which exist.
 */
export const DUMMY_PASSWORD_HASH = '$2b$12$ulOhH3fvpIUocFoylc4ed.p1IjinbMyCFR11WwIExjqSb28k.1cZe';
