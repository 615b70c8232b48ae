import type { ArchiveEvents } from '../archive/events.js';
import { type EventBus, createEventBus } from '../events/bus.js';
import type { JobEvents } from '../jobs/events.js';
import { type JobRecord, isFinished } from '../jobs/model.js';
import type { DomainEvent } from '../notifications/model.js';
import type { NotificationService } from '../notifications/service.js';
import type { EventBridge } from './event-bridge.js';

type DomainFeed = { 'domain.recorded': DomainEvent };
type FollowDomainEvents = Pick<NotificationService, 'follow'>;

export interface SharedLiveEvents {
  /** The domain events recorded by this instance and by the others, as the live streams follow them. */
  domainEvents: FollowDomainEvents;
  stop(): void;
}

export interface ShareLiveEventsDeps {
  bridge: Pick<EventBridge, 'attachBus' | 'onResync'>;
  /** What happens here: the buses whose listeners act on it (event log, notifications, metrics, the runner). */
  local: { jobs: EventBus<JobEvents>; archive: EventBus<ArchiveEvents>; domain: FollowDomainEvents };
  /** What live streams show: the local events and those of every other instance. */
  live: { jobs: EventBus<JobEvents>; archive: EventBus<ArchiveEvents> };
  onListenerError: (error: unknown) => void;
  /** The most recently changed jobs, newest first: their states are shown again after events were missed. */
  recentJobs: () => Promise<JobRecord[]>;
}

/**
 * Lets every instance's live streams show what happens anywhere in the cluster: a job running on a
 * worker's drive is watched through any web instance. Only the live buses carry the others'
 * events; the local buses' listeners do their work where the event happened, once in the cluster.
 */
export function shareLiveEvents(deps: ShareLiveEventsDeps): SharedLiveEvents {
  const { bridge, local, live } = deps;
  const recorded = createEventBus<DomainFeed>(deps.onListenerError);
  const shown = createEventBus<DomainFeed>(deps.onListenerError);
  const links = [
    bridge.attachBus(local.jobs, 'jobs', live.jobs),
    bridge.attachBus(local.archive, 'archive', live.archive),
    local.domain.follow((event) => recorded.emit('domain.recorded', event)),
    bridge.attachBus(recorded, 'domain', shown),
    // Events of other instances were missed (the link was down, or a publisher could not send): the
    // live streams get the current state of the jobs that may have changed meanwhile.
    bridge.onResync(() => {
      deps
        .recentJobs()
        .then((jobs) => {
          for (const job of jobs.toReversed()) live.jobs.emit(isFinished(job.status) ? 'job.finished' : 'job.updated', { job });
        })
        .catch(deps.onListenerError);
    }),
  ];
  return {
    domainEvents: { follow: (listener) => shown.on('domain.recorded', listener) },
    stop() {
      for (const unlink of links) unlink();
    },
  };
}
