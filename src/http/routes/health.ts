import Type from 'typebox';
import type { CheckResult, Readiness } from '../../system/readiness.js';
import type { App } from '../app.js';
import { ErrorResponse, errors } from '../schemas.js';

const Check = Type.Object(
  {
    ok: Type.Boolean(),
    code: Type.Union([Type.String(), Type.Null()], { description: 'Why it failed (an error code), null when ok' }),
    message: Type.Optional(Type.String({ description: 'Details with paths and figures: only for callers holding system:read' })),
  },
  { additionalProperties: false },
);

const ReadinessView = Type.Object(
  {
    status: Type.Enum(['ready', 'not_ready']),
    checks: Type.Object(
      {
        database: Check,
        output_dir: Type.Object(Check.properties, { additionalProperties: false, description: 'Writable, and no fuller than storage.stop_threshold_percent' }),
        job_runner: Type.Object(Check.properties, { additionalProperties: false, description: 'Looks for queued work (at least every 30 s)' }),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

/** For load balancers and monitoring: answers without credentials and says nothing about the system. */
export function healthRoutes(check: () => Promise<void>, readiness: () => Promise<Readiness>) {
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

    app.get(
      '/api/v1/health/ready',
      {
        config: { permission: 'public' },
        schema: {
          tags: ['system'],
          summary: 'Readiness check',
          description:
            '200 when the service can do its work: the database takes a write, the output directory takes a file and is no fuller than the stop threshold, and the job runner looks for work; 503 with the failed checks otherwise (and while the service shuts down). Without credentials each check says only ok and its error code; a caller holding system:read also gets the details. `disk2iso health` asks this.',
          response: { 200: ReadinessView, 503: Type.Union([ReadinessView, ErrorResponse]) },
        },
      },
      async (request, reply) => {
        const result = await readiness();
        const detailed = request.principal?.can('system:read') === true;
        const shown = (outcome: CheckResult) => (detailed ? outcome : { ok: outcome.ok, code: outcome.code });
        const { database, output_dir, job_runner } = result.checks;
        const checks = { database: shown(database), output_dir: shown(output_dir), job_runner: shown(job_runner) };
        return reply.status(result.ready ? 200 : 503).send({ status: result.ready ? 'ready' : 'not_ready', checks });
      },
    );
  };
}
