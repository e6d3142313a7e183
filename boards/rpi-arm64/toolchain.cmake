# Cross build for aarch64 Debian / Raspberry Pi OS (64-bit) boards, with
# Debian's gcc-aarch64-linux-gnu and the :arm64 dev packages installed by
# scripts/install-deps (multiarch), plus the sysroot of scripts/arm64-sysroot
# for the two that are not multi-arch co-installable (see below). Binaries run
# here under qemu-aarch64:
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
# libpq-dev:arm64 and libgsl-dev:arm64 would replace the amd64 ones (not
# Multi-Arch: same): scripts/arm64-sysroot (run by scripts/install-deps,
# cross-build and package) unpacks them, with libpq5, libgsl27 and
# libgslcblas0, into build-sysroot-arm64/, whose libpq.pc and gsl.pc point
# into it (libcurl's and libmicrohttpd's arm64 dev packages are multiarch).
# The runtime libraries are also installed as :arm64 (co-installable) for qemu
# and for the linker's look-up of libpq's own dependencies (libssl3, libldap,
# gssapi).
get_filename_component(AGRI_ARM64_SYSROOT ${CMAKE_CURRENT_LIST_DIR}/../../build-sysroot-arm64 ABSOLUTE)
set(ENV{PKG_CONFIG_LIBDIR}
  ${AGRI_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,-rpath-link,${AGRI_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu")
get_property(agri_warned GLOBAL PROPERTY AGRI_SYSROOT_WARNED) # once, not per inclusion
get_property(agri_try GLOBAL PROPERTY IN_TRY_COMPILE)
if(NOT EXISTS ${AGRI_ARM64_SYSROOT}/.stamp AND NOT agri_warned AND NOT agri_try
   AND (NOT DEFINED AGRI_WITH_GATEWAY OR AGRI_WITH_GATEWAY))
  set_property(GLOBAL PROPERTY AGRI_SYSROOT_WARNED TRUE)
  message(WARNING "No ${AGRI_ARM64_SYSROOT}: run scripts/arm64-sysroot (libpq and GSL "
    "for the gateway), or configure with -DAGRI_WITH_GATEWAY=OFF")
endif()
set(ENV{PKG_CONFIG_PATH} "")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/)
set(AGRI_BOARD "rpi-arm64" CACHE STRING "" FORCE)
