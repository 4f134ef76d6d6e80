# Cross compiling the runtime-only build for 64-bit ARM Linux with Debian's cross compiler
# (apt-get install g++-aarch64-linux-gnu qemu-user). Tests run under qemu-aarch64 through
# CMAKE_CROSSCOMPILING_EMULATOR (ctest and Catch2's test discovery both use it).
# scripts/test_aarch64.sh configures, builds and tests with it (docs/deploy.md).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(BFCN_AARCH64_SYSROOT /usr/aarch64-linux-gnu CACHE PATH "target libraries (libc, libstdc++, libgomp)")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L ${BFCN_AARCH64_SYSROOT})
# Target libraries come from the sysroot only; the header-only packages (nlohmann_json, Catch2)
# are architecture independent and are found in the host's /usr as well.
set(CMAKE_FIND_ROOT_PATH ${BFCN_AARCH64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
