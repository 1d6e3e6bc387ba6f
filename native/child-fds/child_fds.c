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
 *
 * spawn() starts a child with posix_spawn, which glibc makes with CLONE_VM | CLONE_VFORK: no copy
 * of the agent's page tables, so 0.1-0.3 ms where libuv's fork() took 2 ms in the agent (more as
 * it grows). The child leads a new session, with every signal at its default and none blocked,
 * the given descriptors as its stdio (-1: /dev/null) and `cwd` as its directory. Nobody waits for
 * it but reap(): the caller must (src/supervisor/fork-thread.ts does, on SIGCHLD).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
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

/* A JS string as UTF-8 in `out` (room for `room` bytes); false if it does not fit or holds a NUL,
 * which C would silently cut it at. */
static bool c_string(napi_env env, napi_value value, char *out, size_t room) {
  size_t size;
  return napi_get_value_string_utf8(env, value, out, room, &size) == napi_ok && size < room - 1 && strlen(out) == size;
}

/* A JS array of strings as a NULL-terminated char* array; NULL on bad input (see c_string). */
static char **string_array(napi_env env, napi_value array) {
  uint32_t length;
  if (napi_get_array_length(env, array, &length) != napi_ok) return NULL;
  char **out = calloc((size_t)length + 1, sizeof *out);
  if (out == NULL) return NULL;
  for (uint32_t i = 0; i < length; i++) {
    napi_value item;
    size_t size;
    if (napi_get_element(env, array, i, &item) != napi_ok || napi_get_value_string_utf8(env, item, NULL, 0, &size) != napi_ok) goto bad;
    out[i] = malloc(size + 2);
    if (out[i] == NULL || !c_string(env, item, out[i], size + 2)) goto bad;
  }
  return out;
bad:
  for (uint32_t i = 0; i < length; i++) free(out[i]);
  free(out);
  return NULL;
}

static void free_strings(char **strings) {
  if (strings == NULL) return;
  for (char **s = strings; *s != NULL; s++) free(*s);
  free(strings);
}

/* The errno's name, as Node gives it in err.code, for the errors posix_spawn reports. */
static const char *errno_name(int err) {
  switch (err) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case E2BIG: return "E2BIG";
    case ENOTDIR: return "ENOTDIR";
    case ENOMEM: return "ENOMEM";
    case EAGAIN: return "EAGAIN";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOEXEC: return "ENOEXEC";
    default: return "EIO";
  }
}

/* spawn(file, argv, envp, cwd, [stdin, stdout, stderr]): the child's pid; throws with .code = errno name. */
static napi_value spawn_child(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5) return fail(env, "spawn (arguments)", EINVAL);
  char file[4096], cwd[4096];
  if (!c_string(env, argv[0], file, sizeof file)) return fail(env, "spawn (file)", EINVAL);
  if (!c_string(env, argv[3], cwd, sizeof cwd)) return fail(env, "spawn (cwd)", EINVAL);
  int stdio[3];
  for (uint32_t i = 0; i < 3; i++) {
    napi_value item;
    if (napi_get_element(env, argv[4], i, &item) != napi_ok || napi_get_value_int32(env, item, &stdio[i]) != napi_ok) return fail(env, "spawn (stdio)", EINVAL);
    /* A descriptor already at 0-2 would be a no-op dup2 that keeps its close-on-exec flag. */
    if (stdio[i] >= 0 && stdio[i] <= 2) return fail(env, "spawn (stdio below 3)", EINVAL);
  }
  char **args = string_array(env, argv[1]);
  char **envp = string_array(env, argv[2]);
  if (args == NULL || envp == NULL) {
    free_strings(args);
    free_strings(envp);
    return fail(env, "spawn (argv or envp)", EINVAL);
  }

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  int err = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (err == 0) err = posix_spawnattr_setsigmask(&attr, &none);
  if (err == 0) err = posix_spawnattr_setsigdefault(&attr, &all);
  for (int i = 0; i < 3 && err == 0; i++) {
    err = stdio[i] < 0 ? posix_spawn_file_actions_addopen(&actions, i, "/dev/null", O_RDWR, 0) : posix_spawn_file_actions_adddup2(&actions, stdio[i], i);
  }
  if (err == 0) err = posix_spawn_file_actions_addchdir_np(&actions, cwd);
  pid_t pid = -1;
  if (err == 0) err = posix_spawn(&pid, file, &actions, &attr, args, envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  free_strings(args);
  free_strings(envp);
  if (err != 0) {
    napi_value error, message, code;
    char text[4200];
    snprintf(text, sizeof text, "spawn %s: %s", file, strerror(err));
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &error);
    napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code);
    napi_set_named_property(env, error, "code", code);
    napi_throw(env, error);
    return NULL;
  }
  napi_value result;
  napi_create_int32(env, pid, &result);
  return result;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor props[] = {
      {"socketpair", NULL, make_socketpair, NULL, NULL, NULL, napi_default, NULL},
      {"reap", NULL, reap, NULL, NULL, NULL, napi_default, NULL},
      {"dup", NULL, dup_cloexec, NULL, NULL, NULL, napi_default, NULL},
      {"spawn", NULL, spawn_child, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
