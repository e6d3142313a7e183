# Splits a program's debug sections into a build-id file, as Debian's
# dh_strip does for -dbgsym packages (docs/packaging.md):
#   cmake -DPROG=<built program> -DOUT=<dir> -DOBJCOPY=... -DREADELF=... -P split-debug.cmake
#     → OUT/lib/debug/.build-id/xx/yyyy.debug (OUT emptied first)
# Run at build time by the target agri-dbgsym (packaging/CMakeLists.txt);
# the program in the build tree stays whole. install-strip.cmake strips the
# installed copy and links it to this file.
foreach(v PROG OUT OBJCOPY READELF)
  if(NOT ${v})
    message(FATAL_ERROR "split-debug.cmake: ${v} is not set")
  endif()
endforeach()
execute_process(COMMAND ${READELF} -n ${PROG} OUTPUT_VARIABLE notes RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT notes MATCHES "Build ID: ([0-9a-f][0-9a-f])([0-9a-f]+)")
  message(FATAL_ERROR "split-debug.cmake: ${PROG} has no build-id (link with --build-id)")
endif()
set(dir ${OUT}/lib/debug/.build-id/${CMAKE_MATCH_1})
set(debug ${dir}/${CMAKE_MATCH_2}.debug)
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${dir})
execute_process(COMMAND ${OBJCOPY} --only-keep-debug --compress-debug-sections ${PROG} ${debug}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "split-debug.cmake: ${OBJCOPY} --only-keep-debug ${PROG} failed")
endif()
file(CHMOD ${debug} PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
