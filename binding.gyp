{
  "targets": [
    {
      "target_name": "lunlink",
      "sources": [
        "addon/module.cc",
        "addon/channel.cc",
        "addon/pool.cc",
        "addon/device.cc",
        "addon/volume.cc",
        "addon/uring.cc",
        "addon/buffer.cc",
        "addon/aead.cc",
        "addon/notify.cc",
        "addon/tun.cc",
        "addon/gso.cc",
        "addon/udp.cc"
      ],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "cflags_cc": [
        "-std=c++17", "-Wall", "-Wextra", "-Werror", "-O2", "-fno-strict-aliasing",
        "-fstack-protector-strong", "-fstack-clash-protection", "-U_FORTIFY_SOURCE", "-D_FORTIFY_SOURCE=2",
        "-D_GLIBCXX_ASSERTIONS"
      ],
      "ldflags": ["-Wl,-z,relro", "-Wl,-z,now", "-Wl,-z,noexecstack"],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"],
      "conditions": [
        ["OS!='linux'", { "sources!": ["addon/volume.cc", "addon/uring.cc", "addon/tun.cc", "addon/gso.cc", "addon/udp.cc"] }]
      ]
    }
  ]
}
