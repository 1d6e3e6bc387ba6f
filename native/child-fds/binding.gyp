{
  "targets": [
    {
      "target_name": "child_fds",
      "sources": ["child_fds.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-O2"]
    }
  ]
}
