// ESM entry of vp-bridge: the same functions as the CommonJS entry (one
// module instance, so both entries share one runner connection).
import { createRequire } from 'node:module';

const bridge = createRequire(import.meta.url)('./index.js');

export const { ignoreInput, ignoreOutput, disableCache, getEnv, getEnvs } = bridge;
export default bridge;
