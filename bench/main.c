/* main.c: rr-bench-micro's entry point; the benchmarks register themselves (rr_bench.h). */
#include "rr_bench.h"

int main(int argc, char **argv)
{
    return rr_bench_main(argc, argv);
}
