# FindSDT.cmake: USDT probe macros (sys/sdt.h, header only). Defines SDT_FOUND and the
# interface target SDT::SDT.
include(FindPackageHandleStandardArgs)
find_path(SDT_INCLUDE_DIR NAMES sys/sdt.h)
find_package_handle_standard_args(SDT REQUIRED_VARS SDT_INCLUDE_DIR
  REASON_FAILURE_MESSAGE "sys/sdt.h not found: install the Debian package 'systemtap-sdt-dev' (sudo apt-get install systemtap-sdt-dev, or run scripts/deps.sh)")
if(SDT_FOUND AND NOT TARGET SDT::SDT)
  add_library(SDT::SDT INTERFACE IMPORTED)
  set_target_properties(SDT::SDT PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${SDT_INCLUDE_DIR}")
endif()
mark_as_advanced(SDT_INCLUDE_DIR)
