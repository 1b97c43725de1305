# FindCK.cmake: Concurrency Kit (ck_ring, ck_pr). Defines CK_FOUND and the imported target CK::CK.
include(${CMAKE_CURRENT_LIST_DIR}/RingraftFindHelper.cmake)
rr_find_package_library(CK HEADER ck_ring.h LIBRARY ck TARGET CK::CK DEBIAN libck-dev)
