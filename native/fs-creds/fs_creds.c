/*
 * Per-thread file-system credentials for the agent's file workers (src/user-fs/).
 *
 * Linux keeps credentials per thread. The raw setfsuid, setfsgid and setgroups system calls change
 * only the calling thread; glibc's setgroups() would broadcast to every thread of the process, so
 * it is not used. While a worker thread wears a user's credentials, every path the kernel resolves
 * for it is checked as that user: permissions, supplementary groups, ACLs, fs.protected_symlinks
 * and fs.protected_regular. The rest of the agent keeps root's credentials.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <node_api.h>

#define MAX_GROUPS 256

static gid_t agent_groups[MAX_GROUPS];
static long agent_group_count = -1;
static uid_t agent_fsuid;
static gid_t agent_fsgid;

static napi_value fail(napi_env env, const char *what, int err) {
  char message[160];
  snprintf(message, sizeof message, "fs-creds: %s failed: %s", what, strerror(err));
  napi_throw_error(env, NULL, message);
  return NULL;
}

/* The current fsuid/fsgid: setfsuid returns the previous value and -1 is never accepted. */
static uid_t current_fsuid(void) { return (uid_t)syscall(SYS_setfsuid, (uid_t)-1); }
static gid_t current_fsgid(void) { return (gid_t)syscall(SYS_setfsgid, (gid_t)-1); }

static int apply(uid_t uid, gid_t gid, const gid_t *groups, size_t count) {
  if (syscall(SYS_setgroups, count, groups) != 0) return errno;
  syscall(SYS_setfsgid, gid);
  syscall(SYS_setfsuid, uid);
  /* setfsuid and setfsgid report no errors: read back what is in force. */
  if (current_fsuid() != uid || current_fsgid() != gid) return EPERM;
  return 0;
}

/* become(uid, gid, groups): this thread acts on files as that user until restore(). */
static napi_value become(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3) return fail(env, "become (arguments)", EINVAL);
  uint32_t uid, gid, length;
  if (napi_get_value_uint32(env, argv[0], &uid) != napi_ok || napi_get_value_uint32(env, argv[1], &gid) != napi_ok ||
      napi_get_array_length(env, argv[2], &length) != napi_ok || length > MAX_GROUPS) {
    return fail(env, "become (arguments)", EINVAL);
  }
  gid_t groups[MAX_GROUPS];
  for (uint32_t i = 0; i < length; i++) {
    napi_value item;
    uint32_t value;
    if (napi_get_element(env, argv[2], i, &item) != napi_ok || napi_get_value_uint32(env, item, &value) != napi_ok) {
      return fail(env, "become (groups)", EINVAL);
    }
    groups[i] = value;
  }
  if (agent_group_count < 0) {
    agent_group_count = syscall(SYS_getgroups, MAX_GROUPS, agent_groups);
    if (agent_group_count < 0) return fail(env, "getgroups", errno);
    agent_fsuid = current_fsuid();
    agent_fsgid = current_fsgid();
  }
  int err = apply(uid, gid, groups, length);
  if (err != 0) {
    apply(agent_fsuid, agent_fsgid, agent_groups, (size_t)agent_group_count);
    return fail(env, "become", err);
  }
  return NULL;
}

/* restore(): back to the agent's own credentials. Failing here leaves a thread that must not be used. */
static napi_value restore(napi_env env, napi_callback_info info) {
  (void)info;
  if (agent_group_count < 0) return NULL;
  int err = apply(agent_fsuid, agent_fsgid, agent_groups, (size_t)agent_group_count);
  if (err != 0) return fail(env, "restore", err);
  return NULL;
}

/* current(): [fsuid, fsgid] of this thread, for tests and assertions. */
static napi_value current(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result, uid, gid;
  napi_create_array_with_length(env, 2, &result);
  napi_create_uint32(env, current_fsuid(), &uid);
  napi_create_uint32(env, current_fsgid(), &gid);
  napi_set_element(env, result, 0, uid);
  napi_set_element(env, result, 1, gid);
  return result;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor props[] = {
      {"become", NULL, become, NULL, NULL, NULL, napi_default, NULL},
      {"restore", NULL, restore, NULL, NULL, NULL, napi_default, NULL},
      {"current", NULL, current, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
