import Type from 'typebox';
import { ConfigSchema } from '../../config/schema.js';
import type { JsonObject } from '../../json.js';
import { type SettingsService, partialSettingsSchema } from '../../system/settings.js';
import type { SystemStatusService } from '../../system/status.js';
import type { App } from '../app.js';
import { principalOf } from '../guard.js';
import { Nullable, Timestamp, errors } from '../schemas.js';

const ServiceState = Type.Enum(['running', 'stopped', 'error']);
const Count = Type.Integer({ minimum: 0 });

const Status = Type.Object(
  {
    status: Type.Enum(['healthy', 'degraded']),
    version: Type.String(),
    uptime_seconds: Type.Integer(),
    resources: Type.Object(
      {
        cpu_percent: Type.Number({ description: 'All CPUs, since the previous status request (at least a second)' }),
        process_cpu_percent: Type.Number({ description: 'This service alone, as a share of all CPUs' }),
        memory_used_bytes: Type.Integer(),
        memory_total_bytes: Type.Integer({ description: 'The cgroup memory limit when one is set (LXC, systemd), else the machine' }),
        memory_source: Type.Enum(['cgroup', 'host']),
        storage_used_bytes: Type.Integer({ description: 'Of the file system holding the output directory' }),
        storage_total_bytes: Type.Integer(),
        storage_free_bytes: Type.Integer(),
      },
      { additionalProperties: false },
    ),
    services: Type.Object({ database: ServiceState, queue: ServiceState, workers: ServiceState }, { additionalProperties: false }),
    drives: Type.Object({ count: Count }, { additionalProperties: false }),
    jobs: Type.Object(
      { queued: Count, running: Count, paused: Count, verifying: Count, completed: Count, failed: Count, cancelled: Count },
      { additionalProperties: false },
    ),
    verification_tasks: Type.Object(
      { queued: Count, running: Count, completed: Count, failed: Count, cancelled: Count },
      { additionalProperties: false, description: 'Background re-hashes of archived images (finished ones are kept for storage.log_retention_days)' },
    ),
    housekeeping: Type.Object(
      {
        interval_seconds: Type.Integer({ description: 'How often a round runs (also once at start)' }),
        retention_days: Type.Object(
          {
            logs: Type.Integer({ description: 'storage.log_retention_days: job logs, the application log and ended verification tasks' }),
            audit: Type.Integer({ description: 'security.audit_retention_days' }),
            ended_api_keys: Type.Integer({ description: 'How long a revoked or expired API key stays listed' }),
          },
          { additionalProperties: false },
        ),
        last_run: Nullable(
          Type.Object(
            {
              at: Timestamp,
              error: Nullable(Type.String({ description: 'Why the round stopped early; what it removed before is counted' })),
              removed: Type.Object(
                {
                  sessions: Count,
                  login_failures: Count,
                  api_keys: Count,
                  job_logs: Count,
                  logs: Count,
                  audit_entries: Count,
                  verification_tasks: Count,
                },
                { additionalProperties: false, description: 'Rows the round deleted, by kind' },
              ),
            },
            { additionalProperties: false },
          ),
        ),
      },
      { additionalProperties: false, description: 'What the service removes so that nothing grows forever, and what its latest round removed' },
    ),
    warnings: Type.Array(Type.String(), { description: 'Why the status is degraded' }),
  },
  { additionalProperties: false },
);

const SettingsView = Type.Object(
  {
    settings: ConfigSchema,
    sources: Type.Record(Type.String(), Type.String(), {
      description: 'Where each setting comes from: default, config file …, stored settings, environment …, --set …',
    }),
    fixed: Type.Array(Type.String(), {
      description:
        'Settings the API cannot change, fixed by the environment or flags or set on the server only (readOnly in the schema); PATCH refuses them (409)',
    }),
    restart_required: Type.Array(Type.String(), { description: 'Changed settings that take effect after a restart' }),
    data_dir: Type.String(),
    config_file: Nullable(Type.String()),
  },
  { additionalProperties: false },
);

export function systemRoutes(system: SystemStatusService, settings: SettingsService) {
  return (app: App): void => {
    app.get(
      '/api/v1/system/status',
      {
        config: { permission: 'system:read' },
        schema: { tags: ['system'], summary: 'Service health and resource use', response: { 200: Status } },
      },
      async () => system.status(),
    );

    app.get(
      '/api/v1/system/config',
      {
        config: { permission: 'system:read' },
        schema: {
          tags: ['system'],
          summary: 'Effective settings and where each came from',
          description:
            'Secrets, and the user info and query values of URLs, are shown as ******** (send the value back as shown to keep it; a value with ******** in place of a credential is refused).',
          response: { 200: SettingsView },
        },
      },
      async () => settings.view(),
    );

    app.patch(
      '/api/v1/system/config',
      {
        config: { permission: 'system:write', audit: { event_type: 'config', action: 'change' } },
        schema: {
          tags: ['system'],
          summary: 'Change settings',
          description:
            'Takes any part of the settings tree, e.g. `{"imaging": {"read_attempts": 3}}`. Changes are stored in the database and apply at once (new jobs use them); `restart_required` lists those that need a restart. Settings fixed by the environment or flags give 409 `setting_fixed`; settings set on the server only (readOnly: paths, devices, listening address, trusted proxies, audit retention) give 409 `setting_server_only`. A value shown masked and sent back as shown keeps the real one.',
          body: partialSettingsSchema(),
          response: { 200: SettingsView, ...errors(400, 409, 413, 415) },
        },
      },
      async (request) => settings.update(request.body as JsonObject, principalOf(request).name),
    );
  };
}
