{
  "targets": [
    {
      "target_name": "fs_creds",
      "sources": ["fs_creds.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-O2"]
    }
  ]
}
