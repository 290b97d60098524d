{
  "targets": [
    {
      "target_name": "tripwire",
      "sources": ["src/native/tripwire.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "rawbatch",
      "sources": ["src/native/rawbatch.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "netlink",
      "sources": ["src/native/netlink.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
