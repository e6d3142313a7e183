# Strips an installed program and links it to its debug file (made at build
# time by split-debug.cmake), as dh_strip does: --strip-unneeded, then a
# .gnu_debuglink naming OUT/lib/debug/.build-id/xx/yyyy.debug (gdb finds the
# file by build-id under /usr/lib/debug once the -dbgsym package is
# installed). Included by the install rules of packaging/CMakeLists.txt with
#   AGRI_STRIP_FILE (the installed program), AGRI_STRIP_DEBUG_DIR (OUT),
#   AGRI_STRIP_OBJCOPY.
file(GLOB_RECURSE debug ${AGRI_STRIP_DEBUG_DIR}/lib/debug/.build-id/*.debug)
list(LENGTH debug n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "install-strip.cmake: expected one debug file under ${AGRI_STRIP_DEBUG_DIR}, found ${n} (build the target agri-dbgsym)")
endif()
execute_process(COMMAND ${AGRI_STRIP_OBJCOPY} --strip-unneeded --remove-section=.comment
  --remove-section=.note --add-gnu-debuglink=${debug} ${AGRI_STRIP_FILE} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "install-strip.cmake: ${AGRI_STRIP_OBJCOPY} could not strip ${AGRI_STRIP_FILE}")
endif()
