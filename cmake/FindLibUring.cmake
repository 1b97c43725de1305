# FindLibUring.cmake: io_uring userspace library (liburing). Defines LibUring_FOUND and the imported target LibUring::LibUring.
include(${CMAKE_CURRENT_LIST_DIR}/RingraftFindHelper.cmake)
rr_find_package_library(LibUring HEADER liburing.h LIBRARY uring TARGET LibUring::LibUring DEBIAN liburing-dev)
