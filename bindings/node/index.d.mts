// Types of the ES module entry (index.mjs): the CommonJS entry's names,
// and the same object as the default export.
export * from './index.js';
import * as cache from './index.js';
export default cache;
