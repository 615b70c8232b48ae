import type { AutomationMode } from '../jobs/automation-model.js';
import type { JobView } from '../jobs/view.js';
import type { DeviceView } from '../system/devices.js';
import type { CardTone } from './job-card.js';

/**
 * What the dashboard says a drive is doing, in the words of the specification's device status:
 * reading a disc, waiting (a queued job or a disc notice wants it), a disc that cannot be imaged,
 * a disc ready to image, no disc, or an answer still pending.
 */
export type DriveState = 'imaging' | 'waiting' | 'unimageable' | 'disc' | 'empty' | 'checking';

export const DRIVE_STATE_TONE: Record<DriveState, CardTone | 'info'> = {
  imaging: 'running',
  waiting: 'queued',
  unimageable: 'failed',
  disc: 'info',
  empty: 'finished',
  checking: 'finished',
};

export interface DriveStatusRow {
  device: DeviceView;
  state: DriveState;
  /** Why the disc cannot be imaged (translated), for `unimageable`. */
  problem: string | null;
  /** The job reading from the drive, or the first one waiting for it. */
  job: Pick<JobView, 'id' | 'name'> | null;
  /** The drive's automation, for users who may see the settings. */
  mode: AutomationMode | null;
}

/**
 * `problem` is the page's mediaProblem for the drive (null when its disc can be imaged); `waitingJob`
 * the first unfinished job queued for it; `notice` whether a disc notice waits for someone's decision.
 */
export function driveState(device: DeviceView, problem: string | null, waiting: { job: boolean; notice: boolean }): DriveState {
  if (device.status === 'busy') return 'imaging';
  if (device.media_state === 'not_responding' || device.media_error !== null) return 'unimageable';
  if (waiting.job || waiting.notice) return 'waiting';
  // An older answer that refused the disc is being checked again (mediaProblem says so).
  if (device.media_state === 'probing' && (problem !== null || !device.has_media)) return 'checking';
  if (!device.has_media) return 'empty';
  return problem === null ? 'disc' : 'unimageable';
}
