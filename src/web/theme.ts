import type { FastifyRequest } from 'fastify';

/** The colour schemes a user chooses from; `system` follows the device's setting (prefers-color-scheme). */
export const THEMES = ['system', 'light', 'dark'] as const;
export type Theme = (typeof THEMES)[number];

/** The user_preferences key the choice is kept under: server-side, so it follows the user to every device. */
export const THEME_PREFERENCE = 'theme';

declare module 'fastify' {
  interface FastifyRequest {
    /** The signed-in user's colour scheme, read before the page renders so it arrives in the HTML (no flash); set by the web scope's hook. */
    theme: Theme | undefined;
  }
}

export function isTheme(value: unknown): value is Theme {
  return typeof value === 'string' && (THEMES as readonly string[]).includes(value);
}

/** A stored value that is no theme (or none at all) means the default: following the system. */
export function storedTheme(value: string | null): Theme {
  return isTheme(value) ? value : 'system';
}

export function themeOf(request: FastifyRequest): Theme {
  return request.theme ?? 'system';
}
