# FindCmocka.cmake: cmocka unit test framework. Defines Cmocka_FOUND and the imported target Cmocka::Cmocka.
include(${CMAKE_CURRENT_LIST_DIR}/RingraftFindHelper.cmake)
rr_find_package_library(Cmocka HEADER cmocka.h LIBRARY cmocka TARGET Cmocka::Cmocka DEBIAN libcmocka-dev)
