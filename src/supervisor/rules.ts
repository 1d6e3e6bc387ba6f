/** The numbers every child of the agent lives by, whoever started it. */

/**
 * After a child exits, how long to keep reading its pipes for output it wrote just before (counted
 * only while reading). A background grandchild that inherited the pipes can hold them open
 * indefinitely; the exit is not held back for it. One figure for commands, drivers and kernels.
 */
export const POST_EXIT_DRAIN_MS = 100;
