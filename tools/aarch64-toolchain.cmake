# Cross-compiles for aarch64 with Debian's cross compiler against the arm64 multiarch libraries
# that tools/deps_aarch64.sh installs; ctest runs the test executables under qemu-user.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_AR aarch64-linux-gnu-ar CACHE FILEPATH "")
set(CMAKE_RANLIB aarch64-linux-gnu-ranlib CACHE FILEPATH "")
set(CMAKE_STRIP aarch64-linux-gnu-strip CACHE FILEPATH "")

# Debian's cross compiler searches the multiarch directories (/usr/lib/aarch64-linux-gnu,
# /usr/include/aarch64-linux-gnu) itself; find_library looks there first too.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# pkg-config must read the arm64 .pc files only: with the default search path it would hand
# the amd64 flags and libraries to the cross linker. Set here so that every configure, also a
# re-run from `cmake --build`, sees it.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")

# No -L /usr/aarch64-linux-gnu: the executables then run on the multiarch arm64 runtime alone
# (/lib/ld-linux-aarch64.so.1, libc6:arm64, libgomp1:arm64), as on an arm64 Debian machine.
# With it, qemu takes the loader from the cross compiler's libc6-arm64-cross but libc.so.6 from
# /lib/aarch64-linux-gnu, which is searched first; the two builds differ and the first OpenMP
# parallel region never returns.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)

# Only the amd64 Open MPI is installed, and FindMPI would pick up its libraries; `heads` under
# mpirun is not part of the aarch64 build.
set(CMAKE_DISABLE_FIND_PACKAGE_MPI TRUE)
