/** Default time a node gets from admission to a proven success before it counts as failed. */
export const DEFAULT_NODE_DEADLINE_SECONDS = 3600;
