import { createTestDataDir, databaseEnv, openDataDirDatabase, removeTestDataDir } from '../../support/database.js';
import { type WebTestServer, type WebTestServerOptions, startWebServerOn } from './web-server.js';

export {
  INJECT_ORIGIN,
  NOTIFICATION_FORM_DEFAULTS,
  type SendOptions,
  type SentRequest,
  TEST_PASSWORD,
  type TestRole,
  type TestSession,
  type WebTestServer,
} from './web-server.js';

/**
 * The real service with a user per role signed in (./web-server.ts), its state in a data dir of the
 * engine switch: a SQLite file, or in the PostgreSQL pass a database of its own.
 */
export async function startWebTestServer(options: WebTestServerOptions = {}): Promise<WebTestServer> {
  const dataDir = await createTestDataDir('disk2iso-web-');
  const store = {
    dataDir,
    databaseEnv: databaseEnv(dataDir),
    openDatabase: () => openDataDirDatabase(dataDir),
    remove: () => removeTestDataDir(dataDir),
  };
  return startWebServerOn(store, options);
}
