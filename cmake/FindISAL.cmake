# FindISAL.cmake: Intel ISA-L (CRC32C via crc32_iscsi). Defines ISAL_FOUND and the imported target ISAL::ISAL.
include(${CMAKE_CURRENT_LIST_DIR}/RingraftFindHelper.cmake)
rr_find_package_library(ISAL HEADER isa-l/crc.h LIBRARY isal TARGET ISAL::ISAL DEBIAN libisal-dev)
