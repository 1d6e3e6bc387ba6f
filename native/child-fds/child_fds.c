/*
 * Descriptors for the stdio of the agent's children (src/supervisor/).
 *
 * Children are forked on a worker thread (the fork of a large process stalls the thread that
 * makes it), but their pipes are read on the main event loop. Node cannot move a pipe from one
 * thread's loop to another's, so the main thread makes the socketpairs itself: it keeps one end
 * (net.Socket adopts it) and the worker hands the other to the child as an inherited stdio
 * descriptor. Both ends are close-on-exec, so no other child started meanwhile inherits them.
 *
 * reap() waits for a child the fork thread can no longer wait for (it ended): libuv reaps only
 * the children its own loop started, so without it they would stay zombies.
 *
 * dup() holds a terminal's master side open while its child lives (src/supervisor/pty.ts).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <node_api.h>

static napi_value fail(napi_env env, const char *what, int err) {
  char message[160];
  snprintf(message, sizeof message, "child-fds: %s failed: %s", what, strerror(err));
  napi_throw_error(env, NULL, message);
  return NULL;
}

/* [a, b] as a JS array. */
static napi_value int_pair(napi_env env, int a, int b) {
  napi_value result, first, second;
  napi_create_array_with_length(env, 2, &result);
  napi_create_int32(env, a, &first);
  napi_create_int32(env, b, &second);
  napi_set_element(env, result, 0, first);
  napi_set_element(env, result, 1, second);
  return result;
}

/* The call's one argument, an int32 of at least `min`; false if it is not. */
static bool one_int_arg(napi_env env, napi_callback_info info, int32_t min, int32_t *out) {
  size_t argc = 1;
  napi_value argv[1];
  return napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == 1 && napi_get_value_int32(env, argv[0], out) == napi_ok && *out >= min;
}

/* socketpair(): [agentEnd, childEnd], an AF_UNIX stream pair, both close-on-exec. */
static napi_value make_socketpair(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return fail(env, "socketpair", errno);
  return int_pair(env, fds[0], fds[1]);
}

/* reap(pid): null while the child runs; else [code, signal] (-1 where not applicable), reaped. */
static napi_value reap(napi_env env, napi_callback_info info) {
  int32_t pid;
  if (!one_int_arg(env, info, 1, &pid)) return fail(env, "reap (arguments)", EINVAL);
  int status = 0;
  pid_t got = waitpid(pid, &status, WNOHANG);
  if (got == 0) {
    napi_value result;
    napi_get_null(env, &result);
    return result;
  }
  /* ECHILD: not our child, or reaped already: it is gone either way. */
  if (got < 0 && errno != ECHILD) return fail(env, "waitpid", errno);
  int exit_code = got > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  int term_signal = got > 0 && WIFSIGNALED(status) ? WTERMSIG(status) : -1;
  return int_pair(env, exit_code, term_signal);
}

/* dup(fd): a close-on-exec duplicate of fd. */
static napi_value dup_cloexec(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!one_int_arg(env, info, 0, &fd)) return fail(env, "dup (arguments)", EINVAL);
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return fail(env, "dup", errno);
  napi_value result;
  napi_create_int32(env, copy, &result);
  return result;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor props[] = {
      {"socketpair", NULL, make_socketpair, NULL, NULL, NULL, napi_default, NULL},
      {"reap", NULL, reap, NULL, NULL, NULL, napi_default, NULL},
      {"dup", NULL, dup_cloexec, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
