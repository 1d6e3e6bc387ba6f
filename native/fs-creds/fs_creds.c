/*
 * Per-thread file-system credentials for the agent's file workers (src/user-fs/).
 *
 * Linux keeps credentials per thread. The raw setfsuid, setfsgid and setgroups system calls change
 * only the calling thread; glibc's setgroups() would broadcast to every thread of the process, so
 * it is not used. While a worker thread wears a user's credentials, every path the kernel resolves
 * for it is checked as that user: permissions, supplementary groups, ACLs, fs.protected_symlinks
 * and fs.protected_regular. The rest of the agent keeps root's credentials.
 *
 * Also the extended attributes Node has no API for: a file's metadata under `user.e2b.` (envd's
 * file metadata), read by path as the thread's user, written on a descriptor.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
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

#define META_PREFIX "user.e2b."
#define META_PREFIX_LEN (sizeof META_PREFIX - 1)
#define MAX_XATTR_LIST 65536
#define MAX_XATTR_VALUE 4096

static napi_value string_arg(napi_env env, napi_value value, char *out, size_t size, const char *what) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, out, size, &length) != napi_ok || length >= size - 1) return fail(env, what, EINVAL);
  return value;
}

/* readMetadata(path): {key: value} of the `user.e2b.*` attributes of path itself (no link followed). */
static napi_value read_metadata(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  char path[4097];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1) return fail(env, "readMetadata (arguments)", EINVAL);
  if (string_arg(env, argv[0], path, sizeof path, "readMetadata (path)") == NULL) return NULL;
  napi_create_object(env, &result);
  char *names = malloc(MAX_XATTR_LIST);
  if (names == NULL) return fail(env, "readMetadata", ENOMEM);
  ssize_t size = llistxattr(path, names, MAX_XATTR_LIST);
  if (size < 0) {
    int err = errno;
    free(names);
    /* No attributes where the file system keeps none. */
    if (err == ENOTSUP || err == ENODATA) return result;
    return fail(env, "llistxattr", err);
  }
  char value[MAX_XATTR_VALUE + 1];
  for (char *name = names; name < names + size; name += strlen(name) + 1) {
    if (strncmp(name, META_PREFIX, META_PREFIX_LEN) != 0) continue;
    ssize_t length = lgetxattr(path, name, value, MAX_XATTR_VALUE);
    if (length < 0) continue; /* removed meanwhile, or larger than any metadata written here */
    napi_value text;
    napi_create_string_utf8(env, value, (size_t)length, &text);
    napi_set_named_property(env, result, name + META_PREFIX_LEN, text);
  }
  free(names);
  return result;
}

/* writeMetadata(fd, {key: value}): the file's `user.e2b.*` attributes become exactly these. */
static napi_value write_metadata(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], keys;
  int32_t fd;
  uint32_t count;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_property_names(env, argv[1], &keys) != napi_ok || napi_get_array_length(env, keys, &count) != napi_ok) {
    return fail(env, "writeMetadata (arguments)", EINVAL);
  }
  char *names = malloc(MAX_XATTR_LIST);
  if (names == NULL) return fail(env, "writeMetadata", ENOMEM);
  ssize_t size = flistxattr(fd, names, MAX_XATTR_LIST);
  for (char *name = names; size > 0 && name < names + size; name += strlen(name) + 1) {
    if (strncmp(name, META_PREFIX, META_PREFIX_LEN) == 0) fremovexattr(fd, name);
  }
  free(names);
  for (uint32_t i = 0; i < count; i++) {
    napi_value key, value;
    char name[META_PREFIX_LEN + 256] = META_PREFIX;
    char text[MAX_XATTR_VALUE + 1];
    size_t length;
    napi_get_element(env, keys, i, &key);
    if (string_arg(env, key, name + META_PREFIX_LEN, sizeof name - META_PREFIX_LEN, "writeMetadata (key)") == NULL) return NULL;
    if (napi_get_property(env, argv[1], key, &value) != napi_ok ||
        napi_get_value_string_utf8(env, value, text, sizeof text, &length) != napi_ok || length >= sizeof text - 1) {
      return fail(env, "writeMetadata (value)", EINVAL);
    }
    if (fsetxattr(fd, name, text, length, 0) != 0) return fail(env, "fsetxattr", errno);
  }
  return NULL;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor props[] = {
      {"become", NULL, become, NULL, NULL, NULL, napi_default, NULL},
      {"restore", NULL, restore, NULL, NULL, NULL, napi_default, NULL},
      {"current", NULL, current, NULL, NULL, NULL, napi_default, NULL},
      {"readMetadata", NULL, read_metadata, NULL, NULL, NULL, napi_default, NULL},
      {"writeMetadata", NULL, write_metadata, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
