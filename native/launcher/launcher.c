/*
 * The launcher every program the agent starts goes through (src/user-spawn.ts explains why), as a
 * small executable: the same steps as src/programs/launcher.pl, without starting a Perl
 * interpreter first (1.6 ms of every process start, measured: 2.45 ms per `perl -e launcher -- keep
 * /bin/true` against 0.85 ms for `/bin/true`).
 *
 * Arguments: `keep` or `unseal`, the program, its arguments. It closes every descriptor above 2
 * (close_range(2), else each one /proc/self/fd lists, and a launcher that can do neither stops
 * there), puts glibc's signals 32 and 33 back to their default (see below), with `unseal` makes the sealed environment (SANDBOX_AGENT_ENV_<i> = "NAME=value", i from
 * 0 while present) the whole environment, then execs the program, searching PATH (the unsealed
 * one) as execvp does. It fails as setpriv does: 127 when the program is not found, else 126.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436 /* the same number on every architecture */
#endif

extern char **environ;

static void die(const char *what) {
  fprintf(stderr, "sandbox-agent: %s: %s\n", what, strerror(errno));
  exit(126);
}

/* Closes every descriptor above stderr. */
static void close_inherited(void) {
  if (syscall(SYS_close_range, 3U, ~0U, 0) == 0) return;
  DIR *dir = opendir("/proc/self/fd");
  if (dir == NULL) die("cannot close inherited descriptors");
  int own = dirfd(dir);
  size_t count = 0, room = 64;
  int *fds = malloc(room * sizeof *fds);
  if (fds == NULL) die("cannot close inherited descriptors");
  struct dirent *entry;
  /* Collected first, closed after: the listing is read through one of them. */
  while ((entry = readdir(dir)) != NULL) {
    char *end;
    long fd = strtol(entry->d_name, &end, 10);
    if (*entry->d_name == '\0' || *end != '\0' || fd <= 2 || fd == own) continue;
    if (count == room) {
      room *= 2;
      int *more = realloc(fds, room * sizeof *fds);
      if (more == NULL) die("cannot close inherited descriptors");
      fds = more;
    }
    fds[count++] = (int)fd;
  }
  closedir(dir);
  for (size_t i = 0; i < count; i++) close(fds[i]);
  free(fds);
}

/*
 * Signals 32 and 33 (glibc's own, for thread cancellation and set*id) at their default. A child
 * started with posix_spawn from the agent gets them ignored: glibc's spawn cannot reset them
 * (sigaddset refuses them) and sets them to SIG_IGN where the parent had handlers, and ignored
 * signals stay ignored across exec. Reset by the raw system call, which glibc's sigaction refuses
 * too; a kernel sigaction of all zeros is SIG_DFL with no flags and no mask, whatever its layout.
 */
static void default_glibc_signals(void) {
  unsigned long zeros[8] = {0};
  for (int sig = 32; sig <= 33; sig++) syscall(SYS_rt_sigaction, sig, zeros, NULL, 8);
}

/* The sealed environment, as an environ array: SANDBOX_AGENT_ENV_0, _1, ... while present. */
static char **unsealed(void) {
  size_t count = 0;
  char name[48];
  for (;; count++) {
    snprintf(name, sizeof name, "SANDBOX_AGENT_ENV_%zu", count);
    if (getenv(name) == NULL) break;
  }
  char **env = calloc(count + 1, sizeof *env);
  if (env == NULL) die("cannot unseal the environment");
  size_t kept = 0;
  for (size_t i = 0; i < count; i++) {
    snprintf(name, sizeof name, "SANDBOX_AGENT_ENV_%zu", i);
    const char *value = getenv(name);
    /* "NAME=value"; anything else is not a variable and is left out. */
    if (value != NULL && strchr(value, '=') != NULL && *value != '=') env[kept++] = (char *)value;
  }
  env[kept] = NULL;
  return env;
}

int main(int argc, char **argv) {
  if (argc < 3 || (strcmp(argv[1], "keep") != 0 && strcmp(argv[1], "unseal") != 0)) {
    fprintf(stderr, "sandbox-agent: launcher: usage: launcher keep|unseal program [argument...]\n");
    return 126;
  }
  close_inherited();
  default_glibc_signals();
  if (strcmp(argv[1], "unseal") == 0) environ = unsealed();
  char **program = argv + 2;
  execvp(program[0], program);
  int err = errno;
  fprintf(stderr, "sandbox-agent: cannot execute %s: %s\n", program[0], strerror(err));
  return err == ENOENT ? 127 : 126;
}
