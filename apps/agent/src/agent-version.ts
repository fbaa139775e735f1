/** The agent's version, reported in its inventory; a spec keeps it equal to package.json's. */
export const AGENT_VERSION = '0.1.0';
