/** The ids every node event carries, so the stream can filter on them. */
export function nodeIds(node: { id: string; hardwareId: string }): { nodeId: string; hardwareId: string } {
  return { nodeId: node.id, hardwareId: node.hardwareId };
}
