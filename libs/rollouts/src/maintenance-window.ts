import type { MaintenanceWindow } from '#otter/contracts';

/** True when `now` (UTC) falls inside the window; a window whose end is before its start wraps midnight. */
export function insideWindow(window: MaintenanceWindow | null, now: Date): boolean {
  if (!window) return true;
  const minutes = now.getUTCHours() * 60 + now.getUTCMinutes();
  const start = toMinutes(window.start);
  const end = toMinutes(window.end);
  // The API refuses such a window (maintenanceWindowProblem); one stored before it did keeps the meaning it was
  // created with.
  if (start === end) return true;
  return start < end ? minutes >= start && minutes < end : minutes >= start || minutes < end;
}

function toMinutes(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h! * 60 + m!;
}
