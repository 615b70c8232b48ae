/** Where services and repositories take the time from, so tests can set it. */
export type Clock = () => Date;
export const systemClock: Clock = () => new Date();
