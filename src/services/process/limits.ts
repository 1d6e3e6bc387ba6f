/**
 * The numbers that bound what one process may cost the agent, in one place so that the trade-offs
 * can be read (and tuned) together.
 */

/**
 * Output is gathered for this long after the first chunk of a burst before the rest goes out as one
 * frame. The first chunk after a quiet spell is sent at once, so an interactive echo pays nothing;
 * a flood of tiny writes becomes one frame per window instead of one per write.
 */
export const COALESCE_WINDOW_MS = 5;

/** A pending burst this large is sent without waiting for the window to close. */
export const COALESCE_MAX_BYTES = 64 * 1024;

/**
 * The bytes of a UTF-8 character cut by a read boundary are held back until the rest arrives, so no
 * frame ends in half a character (clients such as the JS SDK decode every frame on its own). Bytes
 * that never complete — binary output — are released after this long.
 */
export const UTF8_CARRY_MAX_MS = 500;

/** The most recent output each process keeps for clients that attach later (Connect). */
export const REPLAY_BYTES = 1024 * 1024;

/**
 * Output queued for one subscriber that has not been sent yet. A subscriber further behind than this
 * (because a faster one keeps the process going) is disconnected with `resource_exhausted`; the
 * process and the other subscribers carry on.
 */
export const SUBSCRIBER_QUEUE_BYTES = 16 * 1024 * 1024;

/**
 * Reading from the child pauses while every attached subscriber has at least this much queued, and
 * resumes when one is down to RESUME_BYTES: the child then runs at the pace of its fastest reader.
 * Small, so a hundred streaming processes cost a few MiB each, not tens.
 */
export const PAUSE_BYTES = 1024 * 1024;
export const RESUME_BYTES = 256 * 1024;

/** While the child waits for its subscribers, one that takes nothing for this long is cut off. */
export const SUBSCRIBER_STALL_MS = 30_000;

/** How long an exited process's end event (and replay) stays available to Connect. */
export const EXITED_RETENTION_MS = 30_000;

/**
 * After the process exits, how long to keep reading its pipes for output it wrote just before. A
 * background grandchild that inherited the pipes can hold them open indefinitely; the end event
 * does not wait for it.
 */
export const POST_EXIT_DRAIN_MS = 100;

/**
 * The command's time limit (`Connect-Timeout-Ms` on Start) is enforced this much early, at most a
 * tenth of the limit, so that the end event reaches a client whose own deadline fires at the limit.
 */
export const DEADLINE_MARGIN_MS = 50;

/** How long dispose() waits for killed process groups to be reaped. */
export const DISPOSE_WAIT_MS = 5_000;

export const DEFAULT_PTY_COLS = 80;
export const DEFAULT_PTY_ROWS = 24;
/** The largest terminal we agree to, at start and on resize (the kernel takes 16 bits; nothing real is near this). */
export const MAX_PTY_SIDE = 10_000;
