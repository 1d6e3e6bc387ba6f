/*
 * Descriptors for the stdio of the agent's children (src/supervisor/).
 *
 * Children are forked on a worker thread (the fork of a large process stalls the thread that
 * makes it), but their pipes are read on the main event loop. Node cannot move a pipe from one
 * thread's loop to another's, so the main thread makes the socketpairs itself: it keeps one end
 * (net.Socket adopts it) and the worker hands the other to the child as an inherited stdio
 * descriptor. Both ends are close-on-exec, so no other child started meanwhile inherits them.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <node_api.h>

static napi_value fail(napi_env env, const char *what, int err) {
  char message[160];
  snprintf(message, sizeof message, "child-fds: %s failed: %s", what, strerror(err));
  napi_throw_error(env, NULL, message);
  return NULL;
}

/* socketpair(): [agentEnd, childEnd], an AF_UNIX stream pair, both close-on-exec. */
static napi_value make_socketpair(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return fail(env, "socketpair", errno);
  napi_value result, a, b;
  napi_create_array_with_length(env, 2, &result);
  napi_create_int32(env, fds[0], &a);
  napi_create_int32(env, fds[1], &b);
  napi_set_element(env, result, 0, a);
  napi_set_element(env, result, 1, b);
  return result;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor props[] = {
      {"socketpair", NULL, make_socketpair, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
