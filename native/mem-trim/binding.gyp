{
  "targets": [
    {
      "target_name": "mem_trim",
      "sources": ["mem_trim.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-O2"]
    }
  ]
}
