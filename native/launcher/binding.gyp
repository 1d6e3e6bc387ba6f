{
  "targets": [
    {
      "target_name": "launcher",
      "type": "executable",
      "sources": ["launcher.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-O2"]
    }
  ]
}
