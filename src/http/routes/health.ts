import Type from 'typebox';
import type { App } from '../app.js';
import { errors } from '../schemas.js';

/** For load balancers and monitoring: answers without credentials and says nothing about the system. */
export function healthRoutes(check: () => Promise<void>) {
  return (app: App): void => {
    app.get(
      '/api/v1/health',
      {
        config: { permission: 'public' },
        schema: {
          tags: ['system'],
          summary: 'Liveness check',
          description: '200 {"status":"ok"} while the service and its database answer; 503 otherwise.',
          response: { 200: Type.Object({ status: Type.Literal('ok') }, { additionalProperties: false }), ...errors(503) },
        },
      },
      async () => {
        await check();
        return { status: 'ok' as const };
      },
    );
  };
}
