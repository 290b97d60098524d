{
  "targets": [
    {
      "target_name": "tripwire",
      "sources": ["src/native/tripwire.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
