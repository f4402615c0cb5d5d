// ES module entry of @bisman/cache: the same single instance as the
// CommonJS entry (index.js), whose exports it re-exports by name.
import cache from './index.js';

export const {
  sessionCache,
  permissionCache,
  invalidate,
  redis,
  configure,
  close,
  stats,
  health,
  EVENTS,
} = cache;

export default cache;
