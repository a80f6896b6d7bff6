{
  "targets": [
    {
      "target_name": "periscope",
      "sources": ["periscope.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror", "-O2"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}
