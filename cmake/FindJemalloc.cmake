# FindJemalloc.cmake: jemalloc allocator. Defines Jemalloc_FOUND and the imported target Jemalloc::Jemalloc.
include(${CMAKE_CURRENT_LIST_DIR}/RingraftFindHelper.cmake)
rr_find_package_library(Jemalloc HEADER jemalloc/jemalloc.h LIBRARY jemalloc TARGET Jemalloc::Jemalloc DEBIAN libjemalloc-dev)
