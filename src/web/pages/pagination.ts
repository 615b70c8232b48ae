/** Page links as the archive drawing shows them: `[← Previous] [1] [2] [3] … [Next →]`. */
export interface Pagination {
  page: number;
  pageCount: number;
  total: number;
  /** 1-based index of the first and last item shown ("Showing 1-20 of 156"). */
  first: number;
  last: number;
  previous: number | null;
  next: number | null;
  /** Page numbers to link, with null where pages are left out. */
  links: Array<number | null>;
}

/** Pages shown on each side of the current one before the list is shortened with a gap. */
const NEIGHBOURS = 2;

export function pagination(page: number, perPage: number, total: number): Pagination {
  const pageCount = Math.max(1, Math.ceil(total / perPage));
  const current = Math.min(Math.max(1, page), pageCount);
  const shown = new Set<number>([1, pageCount]);
  for (let candidate = current - NEIGHBOURS; candidate <= current + NEIGHBOURS; candidate++) {
    if (candidate >= 1 && candidate <= pageCount) shown.add(candidate);
  }
  const links: Array<number | null> = [];
  let previousShown = 0;
  for (const number of [...shown].sort((a, b) => a - b)) {
    // A gap of a single page shows that page: a "…" would take as much room.
    if (number - previousShown === 2) links.push(number - 1);
    else if (number - previousShown > 2) links.push(null);
    links.push(number);
    previousShown = number;
  }
  return {
    page: current,
    pageCount,
    total,
    first: total === 0 ? 0 : (current - 1) * perPage + 1,
    last: Math.min(total, current * perPage),
    previous: current > 1 ? current - 1 : null,
    next: current < pageCount ? current + 1 : null,
    links,
  };
}
