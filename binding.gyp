{
  "variables": {
    "asan%": "0"
  },
  "target_defaults": {
    "cflags": ["-Wall", "-Wextra", "-O2"],
    "conditions": [
      ["asan==1", {
        "cflags": ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"],
        "ldflags": ["-fsanitize=address"]
      }]
    ]
  },
  "targets": [
    { "target_name": "tripwire", "sources": ["src/native/tripwire.c"] },
    { "target_name": "rawbatch", "sources": ["src/native/rawbatch.c"] },
    { "target_name": "netlink", "sources": ["src/native/netlink.c"] }
  ]
}
