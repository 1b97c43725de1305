# FindLibRaft.cmake: canonical raft (the C library by Canonical, now cowsql/raft) with its libuv
# backend, for the peer benchmark in bench/peers. Defines LibRaft_FOUND and the imported target
# LibRaft::LibRaft, which carries libuv (raft/uv.h includes uv.h; the benchmark drives the loop).
include(${CMAKE_CURRENT_LIST_DIR}/RingraftFindHelper.cmake)
# Two packages behind one Find module: tell find_package_handle_standard_args that LibUV is
# meant to differ from the calling package's name.
set(FPHSA_NAME_MISMATCHED TRUE)
set(LibUV_FIND_QUIETLY ${LibRaft_FIND_QUIETLY})
rr_find_package_library(LibUV HEADER uv.h LIBRARY uv TARGET LibRaft::uv DEBIAN libuv1-dev)
unset(FPHSA_NAME_MISMATCHED)
rr_find_package_library(LibRaft HEADER raft/uv.h LIBRARY raft TARGET LibRaft::LibRaft
                        DEBIAN libraft-dev)
if(LibRaft_FOUND AND NOT LibUV_FOUND)
  set(LibRaft_FOUND FALSE)
endif()
if(LibRaft_FOUND)
  set_property(TARGET LibRaft::LibRaft APPEND PROPERTY INTERFACE_LINK_LIBRARIES LibRaft::uv)
  list(APPEND LibRaft_LIBRARIES ${LibUV_LIBRARIES})
endif()
