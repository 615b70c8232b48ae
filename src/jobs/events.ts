import type { EventBus } from '../events/bus.js';
import type { LogLevel } from '../log.js';
import type { JobRecord } from './model.js';

/** What happens to jobs, for live streams (SSE, WebSocket), metrics and notifications. */
export interface JobEvents {
  'job.created': { job: JobRecord };
  /** Status or progress changed. */
  'job.updated': { job: JobRecord };
  /** Reached completed, failed, cancelled or paused. */
  'job.finished': { job: JobRecord };
  'job.removed': { jobId: string };
  'job.log': { jobId: string; level: LogLevel; message: string; at: string };
  /** Asks the in-process runner to stop a job now instead of at its next progress update. */
  'job.stop_requested': { jobId: string; action: 'pause' | 'cancel' };
}

export type JobEventBus = EventBus<JobEvents>;
