# FindGoogleBenchmark.cmake: Google Benchmark (C++). Defines GoogleBenchmark_FOUND and the imported target GoogleBenchmark::GoogleBenchmark.
include(${CMAKE_CURRENT_LIST_DIR}/RingraftFindHelper.cmake)
rr_find_package_library(GoogleBenchmark HEADER benchmark/benchmark.h LIBRARY benchmark TARGET GoogleBenchmark::GoogleBenchmark DEBIAN libbenchmark-dev)
