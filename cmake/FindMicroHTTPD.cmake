# FindMicroHTTPD.cmake: GNU libmicrohttpd HTTP server library. Defines MicroHTTPD_FOUND and the imported target MicroHTTPD::MicroHTTPD.
include(${CMAKE_CURRENT_LIST_DIR}/RingraftFindHelper.cmake)
rr_find_package_library(MicroHTTPD HEADER microhttpd.h LIBRARY microhttpd TARGET MicroHTTPD::MicroHTTPD DEBIAN libmicrohttpd-dev)
