# Imported targets for the FreeRADIUS 3.2 server libraries that rlm_rust.so
# resolves its undefined symbols against (radiusd has them loaded already; a
# test program must provide them itself):
#
#   FreeRADIUS::radius   libfreeradius-radius.so  (+ talloc)
#   FreeRADIUS::server   libfreeradius-server.so  (needs rad_fork/rad_waitpid
#                        from the executable: see tests/c/radiusd_stubs.c)
#
# They live in /usr/lib/freeradius (Debian), outside the loader's search
# path: FREERADIUS_LIBDIR is returned so callers can set an rpath.
#
# FreeRADIUS::headers (only when FREERADIUS_INCLUDE points at the header set
# scripts/setup lays out): include dir + `-include freeradius/build.h`, as
# upstream compiles every file.

set(FREERADIUS_LIBDIR "/usr/lib/freeradius" CACHE PATH "Directory of libfreeradius-*.so")

find_library(FREERADIUS_RADIUS_LIB NAMES freeradius-radius PATHS "${FREERADIUS_LIBDIR}" NO_DEFAULT_PATH)
find_library(FREERADIUS_SERVER_LIB NAMES freeradius-server PATHS "${FREERADIUS_LIBDIR}" NO_DEFAULT_PATH)
find_library(TALLOC_LIB NAMES talloc libtalloc.so.2)
foreach(var FREERADIUS_RADIUS_LIB FREERADIUS_SERVER_LIB TALLOC_LIB)
  if(NOT ${var})
    message(FATAL_ERROR "${var} not found: install freeradius and libtalloc-dev (scripts/setup)")
  endif()
endforeach()

add_library(FreeRADIUS::radius SHARED IMPORTED)
set_target_properties(FreeRADIUS::radius PROPERTIES
  IMPORTED_LOCATION "${FREERADIUS_RADIUS_LIB}"
  IMPORTED_NO_SONAME TRUE
  INTERFACE_LINK_LIBRARIES "${TALLOC_LIB}")

add_library(FreeRADIUS::server SHARED IMPORTED)
set_target_properties(FreeRADIUS::server PROPERTIES
  IMPORTED_LOCATION "${FREERADIUS_SERVER_LIB}"
  IMPORTED_NO_SONAME TRUE
  INTERFACE_LINK_LIBRARIES "FreeRADIUS::radius")

if(NOT DEFINED FREERADIUS_INCLUDE AND DEFINED ENV{FREERADIUS_INCLUDE})
  set(FREERADIUS_INCLUDE "$ENV{FREERADIUS_INCLUDE}")
endif()
set(FREERADIUS_INCLUDE "${FREERADIUS_INCLUDE}" CACHE PATH
  "FreeRADIUS header set laid out by scripts/setup (contains freeradius/radiusd.h)")
if(FREERADIUS_INCLUDE AND EXISTS "${FREERADIUS_INCLUDE}/freeradius/radiusd.h")
  add_library(FreeRADIUS::headers INTERFACE IMPORTED)
  set_target_properties(FreeRADIUS::headers PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${FREERADIUS_INCLUDE}"
    INTERFACE_COMPILE_OPTIONS "SHELL:-include freeradius/build.h")
endif()
