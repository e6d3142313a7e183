# Cross build for aarch64 Debian / Raspberry Pi OS (64-bit) boards, with
# Debian's gcc-aarch64-linux-gnu and the :arm64 dev packages installed by
# scripts/install-deps (multiarch). Binaries run here under qemu-aarch64:
#   qemu-aarch64 -L / build-arm64/bin/agri-station --help
# `-L /`, not `-L /usr/aarch64-linux-gnu`: that prefix makes qemu take the
# dynamic loader from libc6-arm64-cross (the toolchain's glibc, 2.36-8cross1)
# while the libraries, found through /etc/ld.so.cache, come from the multiarch
# /lib/aarch64-linux-gnu (libc6:arm64, 2.36-9+deb12uN). ld.so and libc.so.6
# share a private ABI (_rtld_global: 4512 vs 4520 bytes), so the mixed pair
# runs single-threaded code but the first pthread_create() spins for ever in
# libc's stack cache walk. With `-L /` loader and libc are both libc6:arm64.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
# Debian multiarch: arm64 libraries live in /usr/lib/aarch64-linux-gnu, headers in /usr/include.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/)
set(AGRI_BOARD "rpi-arm64" CACHE STRING "" FORCE)
