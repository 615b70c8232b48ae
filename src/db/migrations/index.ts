import type { Migration, MigrationProvider } from 'kysely';
import { initialMigration } from './0001-initial.js';
import { authMigration } from './0002-auth.js';
import { listIndexesMigration } from './0003-list-indexes.js';
import { jobListMigration } from './0004-job-list.js';
import { credentialsVersionMigration } from './0005-credentials-version.js';
import { apiKeyParentMigration } from './0006-api-key-parent.js';
import { leaseHolderMigration } from './0007-lease-holder.js';
import { jobWorkersMigration } from './0008-job-workers.js';
import { verificationTasksMigration } from './0009-verification-tasks.js';
import { driveAutomationMigration } from './0010-drive-automation.js';
import { notificationsMigration } from './0011-notifications.js';
import { retireCompressionMigration } from './0012-retire-compression.js';
import { discNoticesMigration } from './0013-disc-notices.js';
import { fileIndexMigration } from './0014-file-index.js';
import { catalogueMigration } from './0015-catalogue.js';
import { integrityMigration } from './0016-integrity.js';
import { fileSearchPrefixesMigration } from './0017-file-search-prefixes.js';
import { pushSubscriptionsMigration } from './0018-push-subscriptions.js';
import { clusterNodesMigration } from './0019-cluster-nodes.js';
import { serviceSecretsMigration } from './0020-service-secrets.js';

/**
 * Every migration, imported statically: compiled code cannot count on a migrations folder at
 * run time. Names sort in the order they must run; append new ones, never rename or edit old ones.
 */
const MIGRATIONS: Record<string, Migration> = {
  '0001_initial': initialMigration,
  '0002_auth': authMigration,
  '0003_list_indexes': listIndexesMigration,
  '0004_job_list': jobListMigration,
  '0005_credentials_version': credentialsVersionMigration,
  '0006_api_key_parent': apiKeyParentMigration,
  '0007_lease_holder': leaseHolderMigration,
  '0008_job_workers': jobWorkersMigration,
  '0009_verification_tasks': verificationTasksMigration,
  '0010_drive_automation': driveAutomationMigration,
  '0011_notifications': notificationsMigration,
  '0012_retire_compression': retireCompressionMigration,
  '0013_disc_notices': discNoticesMigration,
  '0014_file_index': fileIndexMigration,
  '0015_catalogue': catalogueMigration,
  '0016_integrity': integrityMigration,
  '0017_file_search_prefixes': fileSearchPrefixesMigration,
  '0018_push_subscriptions': pushSubscriptionsMigration,
  '0019_cluster_nodes': clusterNodesMigration,
  '0020_service_secrets': serviceSecretsMigration,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => MIGRATIONS,
};

export const MIGRATION_NAMES: readonly string[] = Object.keys(MIGRATIONS);
