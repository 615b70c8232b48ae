import Type, { type Static } from 'typebox';
import { HASH_ALGORITHMS, READ_ATTEMPTS } from '../config/schema.js';
import { ValidationError } from '../errors.js';

/**
 * What a drive does with a disc put into it: `manual` nothing (someone starts a job), `notify`
 * announce it with a notice and a one-click job on the dashboard, `automatic` queue it at once with
 * the drive's profile.
 */
export const AUTOMATION_MODES = ['manual', 'notify', 'automatic'] as const;
export type AutomationMode = (typeof AUTOMATION_MODES)[number];

/** In automatic mode, what happens to a disc that looks like one already archived: not queued, announced instead, or imaged again. */
export const DUPLICATE_POLICIES = ['skip', 'ask', 'image'] as const;
export type DuplicatePolicy = (typeof DUPLICATE_POLICIES)[number];

const NAME_TEMPLATE_MAX_LENGTH = 200;
const PLACEHOLDER = /\{([^{}]*)\}/g;
const KNOWN_PLACEHOLDERS = new Set(['label', 'date', 'counter']);

export const DriveAutomationSchema = Type.Object(
  {
    mode: Type.Enum([...AUTOMATION_MODES], { description: 'manual: nothing happens; notify: a notice with "Image this disc"; automatic: queued at once' }),
    name_template: Type.String({
      minLength: 1,
      maxLength: NAME_TEMPLATE_MAX_LENGTH,
      description: 'Image name: text with {label} (the volume label), {date} (YYYY-MM-DD) and {counter} (1, 2, … per drive)',
    }),
    read_attempts: Type.Union([Type.Integer(READ_ATTEMPTS), Type.Null()], {
      description: 'Retry passes over bad sectors; null: the setting imaging.read_attempts',
    }),
    checksums: Type.Union([Type.Array(Type.Enum([...HASH_ALGORITHMS]), { minItems: 1, uniqueItems: true }), Type.Null()], {
      description: 'Checksums to compute; null: the setting imaging.checksums',
    }),
    verify: Type.Union([Type.Boolean(), Type.Null()], { description: 'Re-read and compare the finished image; null: the setting imaging.verify' }),
    eject: Type.Boolean({ description: 'Open the tray once the image is complete and verified (optical drives only)' }),
    duplicates: Type.Enum([...DUPLICATE_POLICIES], {
      description: 'In automatic mode, a disc whose volume id, size and creation date match an archived image: skip, ask (notify instead), or image again',
    }),
  },
  { additionalProperties: false },
);
export type DriveAutomation = Static<typeof DriveAutomationSchema>;

export type DriveAutomationRecord = DriveAutomation & {
  deviceId: string;
  /** How many images the {counter} placeholder has numbered so far. */
  counter: number;
  updatedAt: string | null;
  updatedBy: string | null;
};

/** Every drive without stored settings: as before automation existed. */
export const DEFAULT_AUTOMATION: DriveAutomation = {
  mode: 'manual',
  name_template: '{label}',
  read_attempts: null,
  checksums: null,
  verify: null,
  eject: false,
  duplicates: 'skip',
};

/** Refuses a template with an unknown or unclosed placeholder; the name it makes is checked again as an image name when a job is created. */
export function validateNameTemplate(template: string): string {
  const fail = (reason: string): never => {
    throw new ValidationError('invalid_name_template', `invalid name template: ${reason}`, [{ field: 'name_template', reason }]);
  };
  const trimmed = template.trim();
  if (trimmed === '') fail('it is empty');
  for (const match of trimmed.matchAll(PLACEHOLDER)) {
    if (!KNOWN_PLACEHOLDERS.has(match[1] ?? '')) fail(`unknown placeholder {${match[1] ?? ''}}; use {label}, {date} or {counter}`);
  }
  if (/[{}]/.test(trimmed.replace(PLACEHOLDER, ''))) fail('it has an unmatched { or }');
  return trimmed;
}

/** The template with its placeholders filled in; `label` is already a valid image name. */
export function renderNameTemplate(template: string, values: { label: string; date: Date; counter: number }): string {
  const date = values.date.toISOString().slice(0, 10);
  return template.replace(PLACEHOLDER, (_, name: string) => (name === 'label' ? values.label : name === 'date' ? date : String(values.counter)));
}

/** An archived image that looks like the same disc: same volume id, image size and volume creation time. */
export interface DuplicateMatch {
  archiveId: string;
  filename: string;
}

/** A disc someone is asked about on the dashboard: `inserted` in notify mode, `duplicate` when automatic mode asks. */
export interface DiscNotice {
  driveId: string;
  label: string | null;
  sizeBytes: number;
  /** What "Image this disc" names the image: the drive's name template filled in. */
  name: string;
  reason: 'inserted' | 'duplicate';
  duplicateOf: DuplicateMatch | null;
  /** The drive's profile for "Image this disc"; null: the settings. */
  options: Pick<DriveAutomation, 'read_attempts' | 'checksums' | 'verify'> & { eject?: boolean };
  at: string;
}
