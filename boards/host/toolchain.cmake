# Native build for the development host (x86_64 Debian 12): nothing to set.
set(AGRI_BOARD "host" CACHE STRING "" FORCE)
