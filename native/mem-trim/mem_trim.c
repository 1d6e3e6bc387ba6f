/*
 * Gives the allocator's free memory back to the system (src/idle-memory.ts). Output buffers of
 * the agent's children are malloc'd in chunks glibc keeps in its arenas once freed, one arena per
 * thread that allocated: after a burst of output the agent's RSS stayed 300 MB above its live
 * data until malloc_trim(0) returned the free pages of every arena.
 */
#include <malloc.h>
#include <node_api.h>

/* trim(): whether any memory was returned. */
static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_get_boolean(env, malloc_trim(0) != 0, &result);
  return result;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor props[] = {
      {"trim", NULL, trim, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
