import type { AuditTrail } from '../audit/trail.js';
import type { Clock } from '../clock.js';
import type { ApiKeyRepository } from '../db/auth-api-key-repository.js';
import type { SessionRepository } from '../db/auth-session-repository.js';
import type { SetupTokenRepository } from '../db/auth-setup-repository.js';
import type { ThrottleRepository } from '../db/auth-throttle-repository.js';
import type { UserRepository } from '../db/auth-user-repository.js';
import type { Database } from '../db/database.js';
import type { PasswordHasher } from './password.js';
import type { AuthPolicy } from './policy.js';

/** Everything the auth services share; each factory takes the part it uses. */
export interface AuthDeps {
  database: Database;
  users: UserRepository;
  sessions: SessionRepository;
  apiKeys: ApiKeyRepository;
  throttle: ThrottleRepository;
  setupTokens: SetupTokenRepository;
  audit: AuditTrail;
  hasher: PasswordHasher;
  policy: AuthPolicy;
  now: Clock;
}
