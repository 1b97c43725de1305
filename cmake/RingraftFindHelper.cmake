# rr_find_package_library(<Name> HEADER <h> LIBRARY <l> TARGET <ns::t> DEBIAN <pkg>
#                         [PATH_SUFFIXES <dir>...])
#
# Shared body of the Find<Name>.cmake modules beside this file: finds one header and one
# library, defines <Name>_FOUND, <Name>_INCLUDE_DIRS, <Name>_LIBRARIES and an IMPORTED
# target. When the package is REQUIRED and missing, configuration stops with a message
# naming the Debian package that provides it.
include_guard(GLOBAL)
include(FindPackageHandleStandardArgs)

function(rr_find_package_library name)
  cmake_parse_arguments(A "" "HEADER;LIBRARY;TARGET;DEBIAN" "PATH_SUFFIXES" ${ARGN})
  find_path(${name}_INCLUDE_DIR NAMES ${A_HEADER} PATH_SUFFIXES ${A_PATH_SUFFIXES})
  find_library(${name}_LIBRARY NAMES ${A_LIBRARY})
  set(msg "${name} not found: install the Debian package '${A_DEBIAN}' "
          "(sudo apt-get install ${A_DEBIAN}, or run scripts/deps.sh)")
  string(CONCAT msg ${msg})
  find_package_handle_standard_args(${name}
    REQUIRED_VARS ${name}_LIBRARY ${name}_INCLUDE_DIR
    REASON_FAILURE_MESSAGE "${msg}")
  set(${name}_FOUND ${${name}_FOUND} PARENT_SCOPE)
  if(${name}_FOUND)
    set(${name}_INCLUDE_DIRS ${${name}_INCLUDE_DIR} PARENT_SCOPE)
    set(${name}_LIBRARIES ${${name}_LIBRARY} PARENT_SCOPE)
    if(NOT TARGET ${A_TARGET})
      add_library(${A_TARGET} UNKNOWN IMPORTED)
      set_target_properties(${A_TARGET} PROPERTIES
        IMPORTED_LOCATION "${${name}_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${${name}_INCLUDE_DIR}")
    endif()
  endif()
  mark_as_advanced(${name}_INCLUDE_DIR ${name}_LIBRARY)
endfunction()
